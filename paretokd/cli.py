"""The ``paretokd`` command line: parse flags, call the library, print.

Heavy imports (torch, transformers, optuna) happen inside the commands, so
``paretokd --help`` stays fast.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

# Training threads wait for each other passively: spinning OpenMP threads on a
# shared machine made a 4 s distillation take 13 s (and once 75 s) when another
# process held a core. Set before torch is imported (the commands import it).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from paretokd import config
from paretokd.config import SAMPLERS
from paretokd.errors import ParetokdError

_F = TypeVar("_F", bound=Callable[..., Any])


def _user_errors(func: _F) -> _F:
    """Print a :class:`ParetokdError` as one line and exit with status 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ParetokdError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


class _TqdmHandler(logging.Handler):
    """Log lines that do not break the progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        tqdm.write(self.format(record), file=sys.stderr)


def _setup_logging(verbose: bool) -> None:
    """Our log lines on stderr; the libraries' own bars and notices off (every command)."""
    from paretokd import logs

    logs.quiet_libraries()
    logs.to_stderr(_TqdmHandler(), "%(asctime)s %(message)s", verbose)


def _progress_bar(label: str, total: int) -> Callable[[int, float], None]:
    if not sys.stderr.isatty():  # CI logs, pipes, nohup: a line now and then instead
        from paretokd.logs import progress_lines

        return progress_lines(label, total)
    from tqdm import tqdm

    bar = tqdm(total=total, desc=label, unit="step", file=sys.stderr, leave=False)

    def update(step: int, loss: float) -> None:
        bar.update(step - bar.n)
        bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
        if step >= total:
            bar.close()

    return update


def _parse_budgets(value: str | None) -> tuple[float, ...] | None:
    return None if value is None else config.parse_budgets(value)


@click.group()
@click.version_option(package_name="paretokd")
def main() -> None:
    """Find the best student to distil from a teacher for each latency budget."""


@main.command()
@click.option("--study", "study_file", help="Study spec (YAML).")
@click.option("--budgets", help="Latency budgets, e.g. 10ms,20ms.")
@click.option("--trials", type=int, help="Total complete trials the study should hold.")
@click.option("--teacher", help="Teacher: a hub id or a local model directory.")
@click.option("--data", help="Corpus: a text/CSV/TSV/JSON(L)/Parquet file or a datasets name.")
@click.option("--storage", help="Optuna storage URL (default: SQLite in the output folder).")
@click.option("--study-name", help="Study name (default: the spec's name).")
@click.option("--out", help="Output folder (default runs/<study>).")
@click.option("--sampler", type=click.Choice(SAMPLERS), help="Optuna sampler.")
@click.option("--seed", type=int, help="Random seed.")
@click.option("--data-root", help="Folder that relative data paths in the spec are read from.")
@click.option(
    "--device", type=click.Choice(["cpu", "cuda"]), help="Where latency is measured (spec's)."
)
@click.option("--workers", type=int, default=1, show_default=True, help="Local search processes.")
@click.option("--no-final", is_flag=True, help="Stop after the search and recommendation.")
@click.option(
    "--strict", is_flag=True, help="Exit with status 3 if a budget cannot be kept (else warn)."
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@_user_errors
def run(
    study_file: str | None,
    budgets: str | None,
    trials: int | None,
    teacher: str | None,
    data: str | None,
    storage: str | None,
    study_name: str | None,
    out: str | None,
    sampler: str | None,
    seed: int | None,
    data_root: str | None,
    device: str | None,
    workers: int,
    no_final: bool,
    strict: bool,
    quiet: bool,
) -> None:
    """Search student architectures, recommend one per budget, distil and export them.

    Every shipped student is timed again and kept within its budget (or replaced
    by the next best candidate that fits); a budget nothing keeps is warned about
    loudly, and with --strict ends the run with exit status 3.
    """
    start = time.perf_counter()
    _use_data_root(data_root)
    spec = config.override(
        config.load(study_file),
        budgets=_parse_budgets(budgets),
        trials=trials,
        seed=seed,
        name=study_name,
        **{
            "teacher.name": teacher,
            "data.source": data,
            "search.sampler": sampler,
            "latency.device": device,
        },
    )
    _setup_logging(verbose=False)
    from paretokd import pipeline

    result = pipeline.run(
        spec,
        out=out,
        storage=storage,
        do_final=not no_final,
        show_progress=not quiet and sys.stderr.isatty(),
        progress=None if quiet else _progress_bar,
        workers=workers,
    )
    _print_run(result)
    click.echo(
        f"\n{result.search.complete} trials in the study ({result.search.ran} new); "
        f"total time {time.perf_counter() - start:.0f} s"
    )
    click.echo(f"report:          {result.report}")
    click.echo(f"recommendations: {result.where.recommendations}")
    if result.record.finals:
        click.echo(f"students:        {result.where.out_dir / 'students'}")
    click.echo(f"dashboard:       paretokd dashboard --out {result.where.out_dir}")
    unkept = [p for p in result.record.picks if p.trial is None]
    for p in unkept:
        click.secho(f"WARNING: budget {p.budget} is not kept: {p.reason}", fg="red", err=True)
    if strict and unkept:
        sys.exit(STRICT_EXIT)


STRICT_EXIT = 3
"""``paretokd run --strict``'s exit status when a budget cannot be kept."""


def _print_run(result: Any) -> None:
    from paretokd import report

    run = result.record
    click.echo()
    t, ref = run.teacher, run.reference
    click.echo(
        f"teacher {t.name}: {t.params / 1e6:.1f}M params, p50 {t.latency.p50_ms:.2f} ms "
        "(the scale of every latency below: each a ratio to the teacher, or to a graph cut "
        "from it, timed side by side)"
    )
    if ref is not None:
        click.echo(
            f"reference {ref.name} ({ref.arch.id}): {ref.params / 1e6:.1f}M params, "
            f"p50 {ref.latency.p50_ms:.2f} ms, proxy loss {ref.proxy_loss:.4f}"
        )
    qt = run.quantized_teacher
    if qt is not None:
        click.echo(
            f"{qt.name}: p50 {qt.latency.p50_ms:.2f} ms "
            f"({run.teacher.speedup(qt.latency.p50_ms):.1f}x), proxy loss {qt.proxy_loss:.4f}"
        )
    click.echo(report.render_console(report.picks_table(run.picks, run.objective, run)))
    evaluation = report.evaluation_table(run)
    if evaluation is not None:
        click.echo(f"\nevaluation: {evaluation.caption}")
        click.echo(report.render_console(evaluation))


@main.command()
@click.option("--budgets", required=True, help="Latency budgets, e.g. 5ms,15ms.")
@click.option("--out", help="Output folder of the run.")
@click.option("--storage", help="Optuna storage URL (instead of --out).")
@click.option("--study-name", help="Study name (needed when the storage holds several).")
@click.option("--json", "as_json", is_flag=True, help="Print the picks as JSON.")
@_user_errors
def recommend(
    budgets: str,
    out: str | None,
    storage: str | None,
    study_name: str | None,
    as_json: bool,
) -> None:
    """Re-pick one architecture per budget from a stored study, without training."""
    if out is None and storage is None:
        raise ParetokdError("pass --out DIR (a run's folder) or --storage URL")
    _setup_logging(verbose=False)
    from paretokd import pipeline, report
    from paretokd.search import storage as storage_mod

    url = storage or storage_mod.default_storage(Path(out or "."))
    picks, objective = pipeline.repick(url, study_name, config.parse_budgets(budgets))
    if as_json:
        import json

        click.echo(json.dumps([p.to_json() for p in picks], indent=2))
    else:
        click.echo(report.render_console(report.picks_table(picks, objective)))


def _use_data_root(data_root: str | None) -> None:
    """Relative data paths are looked up under ``data_root`` (workers inherit it)."""
    if data_root is None:
        return
    if not Path(data_root).expanduser().is_dir():
        raise ParetokdError(f"--data-root {data_root!r} is not a folder")
    from paretokd.models.data import DATA_ROOT_ENV

    os.environ[DATA_ROOT_ENV] = str(Path(data_root).expanduser().resolve())


@main.command("latency")
@click.argument("target")
@click.option("--study", "study_file", help="Study spec (YAML) whose latency settings to use.")
@click.option("--teacher", help="Teacher an architecture is built from (default: the spec's).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), help="Where to run the model.")
@click.option("--threads", type=int, help="ONNX Runtime intra-op threads.")
@click.option("--batch", type=int, help="Batch size.")
@click.option("--seq-len", type=int, help="Tokens per sequence.")
@_user_errors
def latency_command(
    target: str,
    study_file: str | None,
    teacher: str | None,
    device: str | None,
    threads: int | None,
    batch: int | None,
    seq_len: int | None,
) -> None:
    """Measure TARGET's latency and print the statistics as JSON.

    TARGET is an architecture as JSON (built from the teacher, e.g.
    '{"num_layers":3,"hidden_size":256,"num_heads":4,"intermediate_size":512}'),
    a model directory (or hub id), or an .onnx file. The study spec's latency
    settings apply, overridden by the flags.
    """
    import json

    spec = config.override(
        config.load(study_file),
        **{
            "teacher.name": teacher,
            "latency.device": device,
            "latency.threads": threads,
            "latency.batch": batch,
            "latency.seq_len": seq_len,
        },
    )
    _setup_logging(verbose=False)
    from paretokd import measure

    click.echo(json.dumps(measure.measure_target(target, spec), indent=2))


@main.command("dashboard")
@click.option("--out", type=click.Path(file_okay=False), help="Output folder of the run.")
@click.option("--storage", help="Optuna storage URL (instead of --out).")
@click.option(
    "--study-name", help="Study whose artifacts to serve, when the storage holds several."
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind; the dashboard has no login, so keep it on loopback unless you mean it.",
)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@_user_errors
def dashboard_command(
    out: str | None, storage: str | None, study_name: str | None, host: str, port: int
) -> None:
    """Serve the study in optuna-dashboard, with the picks' files and the report as artifacts."""
    if out is None and storage is None:
        raise ParetokdError("pass --out DIR (a run's folder) or --storage URL")
    _setup_logging(verbose=False)
    from paretokd import report

    report.serve(
        out_dir=Path(out) if out is not None else None,
        storage=storage,
        study_name=study_name,
        host=host,
        port=port,
        echo=click.echo,
    )


@main.command("validate-proxy")
@click.option("--study", "study_file", help="Study spec (YAML) whose settings to check.")
@click.option("--teacher", help="Teacher: a hub id or a local model directory.")
@click.option("--data", help="Corpus: a text/CSV/TSV/JSON(L)/Parquet file or a datasets name.")
@click.option("--archs", type=int, default=10, show_default=True, help="Architectures to rank.")
@click.option(
    "--factor", type=int, default=4, show_default=True, help="Long run = factor x proxy steps."
)
@click.option(
    "--against",
    type=click.Choice(["long", "final"]),
    default="long",
    show_default=True,
    help="Compare with FACTOR x the proxy steps, or with the finals' recipe and evaluation.",
)
@click.option("--seed", type=int, help="Random seed (default: the spec's).")
@click.option("--data-root", help="Folder that relative data paths in the spec are read from.")
@_user_errors
def validate_proxy(
    study_file: str | None,
    teacher: str | None,
    data: str | None,
    archs: int,
    factor: int,
    against: str,
    seed: int | None,
    data_root: str | None,
) -> None:
    """Check that the proxy distillation ranks students as a longer one does; print JSON.

    Samples architectures spread over the latency range, distils each with the
    search's recipe and with FACTOR times the steps, and prints Kendall's tau and
    Spearman's rho between the two held-out losses. With --against final, the
    second distillation is the finals' (distill.final_steps on the full training
    split) and the ranking compared is the evaluation set's score.
    """
    import json

    _use_data_root(data_root)
    spec = config.override(
        config.load(study_file),
        seed=seed,
        **{"teacher.name": teacher, "data.source": data},
    )
    _setup_logging(verbose=False)
    from paretokd.distill import final
    from paretokd.models import data as data_mod
    from paretokd.models import teacher as teacher_mod
    from paretokd.search import proxy, space

    loaded = teacher_mod.load(spec.teacher, spec.task)
    spec = space.resolve(spec, loaded.dims)
    splits = data_mod.load_splits(spec.data, spec.seed, config.cache_dir())
    spec = final.resolve_steps(spec, splits)
    evalset = None
    if against == "final":
        from paretokd.distill import scoring

        evalset = scoring.load(spec, loaded, config.cache_dir())
        if evalset is None:
            raise ParetokdError(
                "--against final scores each student on the study's evaluation set, and the "
                "spec names none (evaluation.source)"
            )
    log = logging.getLogger("paretokd.proxy")
    result = proxy.validate(
        spec,
        loaded,
        splits,
        k=archs,
        factor=factor,
        seed=spec.seed,
        progress=log.info,
        evalset=evalset,
    )
    click.echo(json.dumps(result.to_dict(), indent=2))


if __name__ == "__main__":
    main()
