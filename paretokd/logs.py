"""Log set-up shared by the CLI and the worker processes: our lines on, the libraries' noise off."""

from __future__ import annotations

import logging
import warnings


def quiet_libraries() -> None:
    """Turn off the libraries' own progress bars and notices; paretokd logs what matters.

    Every command calls this before it imports a library that warns on use
    (Optuna marks heartbeats and metric names experimental; we rely on them knowingly).
    """
    warnings.filterwarnings("ignore", message=".*is experimental.*")
    import datasets
    import optuna
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def to_stderr(handler: logging.Handler, fmt: str, verbose: bool = False) -> None:
    """Send paretokd's log lines (only) through ``handler`` with format ``fmt``."""
    handler.setFormatter(logging.Formatter(fmt, datefmt="%H:%M:%S"))
    root = logging.getLogger("paretokd")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False
