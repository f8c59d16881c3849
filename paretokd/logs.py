"""Log set-up shared by the CLI and the worker processes: our lines on, the libraries' noise off."""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 60.0
"""How often :func:`progress_lines` logs: a 2,000-step final takes 20 minutes on 2 CPU cores."""


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


def progress_lines(label: str, total: int) -> Callable[[int, float], None]:
    """A training's progress as a log line every :data:`PROGRESS_EVERY_S` seconds.

    For output that is not a terminal (CI logs, pipes, ``nohup``), where a bar
    draws nothing: the step, the loss and the time left. The end is not logged
    here; the stage that trains says when it is done.
    """
    start = last = time.perf_counter()

    def update(step: int, loss: float) -> None:
        nonlocal last
        now = time.perf_counter()
        if now - last < PROGRESS_EVERY_S or step >= total:
            return
        last = now
        left = (now - start) / step * (total - step)
        log.info("%s: step %d/%d, loss %.4f, about %.0f s left", label, step, total, loss, left)

    return update
