"""The stages of ``paretokd run``: set up, search, recommend, distil the picks, evaluate, report.

:func:`run` reads as the list of stages; each stage is a function with typed
inputs and outputs. The CLI parses and prints; tests drive a whole run in-process.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import tempfile
import time
from contextlib import suppress
from dataclasses import dataclass, replace
from pathlib import Path

import optuna
from transformers import PreTrainedModel

from paretokd import config, finals, latency, logs, report
from paretokd.config import StudySpec
from paretokd.distill import device as devices
from paretokd.distill import final, scoring
from paretokd.errors import ParetokdError
from paretokd.finals import ProgressFactory
from paretokd.latency.graph import GraphModel
from paretokd.models import data
from paretokd.models import teacher as teacher_mod
from paretokd.records import (
    FP32,
    Evaluation,
    FinalStudent,
    Fingerprint,
    LatencyStats,
    Objective,
    Pick,
    ReferenceStudent,
    RunRecord,
    SearchSpend,
    TeacherRecord,
    TrialRecord,
)
from paretokd.search import (
    confirm,
    context,
    loop,
    recommend,
    reference,
    space,
    storage,
    teacher_timing,
    trial,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Where:
    """Where a study lives."""

    out_dir: Path
    storage: str
    study_name: str

    @property
    def recommendations(self) -> Path:
        """The run's record."""
        return self.out_dir / "recommendations.json"


def locate(spec: StudySpec, out: str | Path | None, url: str | None) -> Where:
    """Resolve the output folder (``runs/<study>`` by default) and the storage URL."""
    out_dir = Path(out) if out is not None else Path("runs") / spec.name
    return Where(out_dir, url or storage.default_storage(out_dir), spec.name)


@dataclass(frozen=True)
class RunResult:
    """Everything a run produced."""

    where: Where
    record: RunRecord
    search: loop.SearchResult
    trials: list[TrialRecord]
    report: Path
    seconds: float


@dataclass
class Setup:
    """What the stages share: loaded and checked before anything is written."""

    spec: StudySpec
    where: Where
    fingerprint: Fingerprint
    teacher: teacher_mod.Teacher
    splits: data.Splits
    evalset: scoring.EvalSet | None

    @property
    def objective(self) -> Objective:
        """Objective 1 of the study."""
        return storage.objective(self.spec)


@dataclass
class Searched:
    """The search stage's outcome."""

    study: optuna.Study
    ctx: context.Context
    teacher_latency: LatencyStats
    reference: ReferenceStudent
    quantized_teacher: ReferenceStudent
    result: loop.SearchResult
    spent: SearchSpend
    """Where the trials' time went (every worker's)."""
    trials: list[TrialRecord]
    """Every complete trial, with the confirmations of the picks and candidates near a budget."""


def run(
    spec: StudySpec,
    *,
    out: str | Path | None = None,
    storage: str | None = None,
    do_final: bool = True,
    show_progress: bool = True,
    progress: ProgressFactory | None = None,
    workers: int = 1,
) -> RunResult:
    """Search, recommend, distil the picks, and write the record and the report.

    Everything a user can get wrong is checked before anything is written.

    Args:
        spec: The study spec; its space is derived from the teacher here (``space.resolve``).
        out: Output folder; ``runs/<study name>`` by default.
        storage: Optuna storage URL; SQLite in the output folder by default.
        do_final: Distil and export the picks (``--no-final`` skips it).
        show_progress: Draw Optuna's progress bar over trials.
        progress: Draws progress of the final distillations.
        workers: Search processes on this machine sharing the study (this one included).

    Raises:
        ParetokdError: For any problem the user can fix.
    """
    start = time.perf_counter()
    setup = prepare(spec, out, storage, workers)
    searched = search(setup, show_progress, workers)
    trials = searched.trials
    picks = recommend.pick(trials, spec.budgets, setup.objective)
    shipping = finals.Shipping(
        setup.splits, searched.study, searched.ctx, setup.where.out_dir, progress
    )
    students: list[FinalStudent] = []
    teacher = TeacherRecord(
        setup.teacher.name, setup.teacher.source, setup.teacher.params, searched.teacher_latency
    )
    try:
        if do_final:
            with_reference = setup.evalset is not None
            picks, students = finals.ship(shipping, picks, searched.reference, with_reference)
        # A student distilled on another machine, whose files are not here, keeps no score.
        here = [f for f in students if f.folder not in shipping.elsewhere]
        evaluation, scored = evaluate(setup, searched, teacher, here, shipping.models)
        students = finals.with_scores(students, scored)
    finally:
        clean_workdir(searched.ctx.workdir)  # the teacher's graphs, every timing's anchor
    record = RunRecord(
        study=setup.where.study_name,
        storage=storage_redacted(setup.where),
        objective=setup.objective,
        fingerprint=setup.fingerprint,
        teacher=teacher,
        reference=searched.reference,
        picks=tuple(picks),
        finals=tuple(students),
        evaluation=evaluation,
        search=searched.spent,
        quantized_teacher=searched.quantized_teacher,
    )
    record.write(setup.where.recommendations)
    report_path = write_report(searched.study, trials, record, setup.where.out_dir)
    elapsed = time.perf_counter() - start
    return RunResult(setup.where, record, searched.result, trials, report_path, elapsed)


def storage_redacted(where: Where) -> str:
    """The storage URL with any password hidden, as records and reports show it."""
    return storage.redact(where.storage)


# --- the stages ---------------------------------------------------------------------------


def prepare(spec: StudySpec, out: str | Path | None, url: str | None, workers: int) -> Setup:
    """Load the teacher, the data and the evaluation set, and check everything a user can fix.

    Raises:
        ParetokdError: Before anything is written, for any of those problems.
    """
    where = locate(spec, out, url)
    fp = latency.fingerprint(spec.latency)
    if workers < 1:
        raise ParetokdError(f"--workers must be at least 1, got {workers}")
    teacher = teacher_mod.load(spec.teacher, spec.task)
    spec = space.resolve(spec, teacher.dims)
    log.info("search space: %s", space.describe(spec.space))
    devices.resolve(spec.distill.device)  # logs it; no CUDA for distill.device: cuda stops here
    splits = data.load_splits(spec.data, spec.seed, config.cache_dir())
    spec = final.resolve_steps(spec, splits)
    evalset = scoring.load(spec, teacher, config.cache_dir())
    log.info(
        "corpus: %d texts from %s (proxy %d train / %d eval)",
        len(splits.full_train) + len(splits.proxy_eval),
        splits.source,
        len(splits.proxy_train),
        len(splits.proxy_eval),
    )
    if url is not None:
        storage.storage(url)  # a bad URL or an unreachable server fails before any write
    _writable(where.out_dir)
    return Setup(spec, where, fp, teacher, splits, evalset)


def search(setup: Setup, show_progress: bool, workers: int) -> Searched:
    """Open the study, calibrate the teacher, measure the reference, and run the trials.

    With ``workers`` above 1, that many minus one extra processes search the same
    study; they start once the teacher's calibration is stored, so every process
    reads figures on the same scale.
    """
    spec, where = setup.spec, setup.where
    study = storage.open_study(spec, where.storage, where.study_name, setup.fingerprint)
    workdir = _workdir(where)
    # Training threads are split between the workers so they do not fight over cores.
    threads = max(1, (os.cpu_count() or 1) // workers)
    helpers = [
        _SPAWN.Process(target=search_worker, args=(spec, where, i, threads), daemon=True)
        for i in range(1, workers)
    ]
    try:
        ctx = context.prepare(
            spec, setup.teacher, setup.splits, workdir, setup.fingerprint, where.out_dir
        )
        teacher_stats = teacher_timing.calibrate(study, ctx)
        log.info(
            "teacher %s: p50 %.2f ms (%s), the scale of every latency of the study",
            setup.teacher.name,
            teacher_stats.p50_ms,
            setup.fingerprint.hardware,
        )
        for proc in helpers:
            proc.start()
        reference.enqueue(study, ctx)  # first, while the study is empty
        trial.requeue_now_fitting(study, ctx)  # after a budget grew: logs what it queues
        ref, quantized = reference.measure_both(study, ctx)
        log.info(
            "reference %s (%s): p50 %.2f ms, proxy loss %.4f",
            ref.name,
            ref.arch.id,
            ref.latency.p50_ms,
            ref.proxy_loss,
        )
        log.info(
            "%s: p50 %.2f ms, proxy loss %.4f",
            quantized.name,
            quantized.latency.p50_ms,
            quantized.proxy_loss,
        )
        result = loop.run(study, ctx, show_progress=show_progress, torch_threads=threads)
    except BaseException:
        clean_workdir(workdir)  # otherwise the run removes it after the finals (the anchor)
        raise
    finally:
        for proc in helpers:
            if proc.pid is not None:
                proc.join()
            if proc.exitcode:
                log.warning("search worker %s exited with status %s", proc.name, proc.exitcode)
    if helpers:
        result = loop.summary(study, result)
    spent = loop.spend(study)
    log.info(
        "search: %d trials, %.1f s; %d over the largest budget took %.1f s (%.1f%%)",
        spent.trials,
        spent.seconds,
        spent.never_pickable,
        spent.never_pickable_seconds,
        100 * spent.never_pickable_share,
    )
    trials = recommend.trials(study)
    confirmed = confirm.confirm(study, ctx, trials, spec.budgets, setup.objective)
    return Searched(study, ctx, teacher_stats, ref, quantized, result, spent, confirmed)


def evaluate(
    setup: Setup,
    searched: Searched,
    teacher: TeacherRecord,
    finals: list[FinalStudent],
    models: dict[str, PreTrainedModel],
) -> tuple[Evaluation | None, list[FinalStudent]]:
    """Score the teacher (fp32 and quantised) and every final student on the evaluation set.

    Returns:
        The evaluation (``None`` without a set) and the finals with their scores.
    """
    evalset = setup.evalset
    if evalset is None or not finals:
        return None, finals
    tok, spec = setup.teacher.tokenizer, setup.spec
    teacher_score = scoring.score(setup.teacher.model, tok, evalset, spec)
    qt = searched.quantized_teacher
    quantized = GraphModel(context.anchor_onnx(searched.ctx, qt.arch.precision), spec.latency)
    evaluation = Evaluation(
        evalset.description,
        evalset.metric,
        teacher_score.examples,
        teacher_score.value,
        scoring.score(quantized, tok, evalset, spec).value,
    )
    log.info(
        "evaluation on %s: teacher %s %.4f", evaluation.set, evaluation.metric, evaluation.teacher
    )
    scored = []
    for f in finals:
        # What ships is scored: the int8 (or fp16) graph in ONNX Runtime, else the model.
        model = models[f.folder] if f.arch.precision == FP32 else GraphModel(f.onnx, spec.latency)
        f = replace(f, score=scoring.score(model, tok, evalset, spec).value)
        log.info(
            "evaluation: %s %s %.4f (%.1f%% of the teacher) at %.2f ms (%.1fx)",
            f.folder,
            evaluation.metric,
            f.score,
            evaluation.percent_of_teacher(f.score or 0.0) or 0.0,
            f.latency.p50_ms,
            teacher.speedup(f.latency.p50_ms),
        )
        scored.append(f)
    return evaluation, scored


def write_report(
    study: optuna.Study, trials: list[TrialRecord], record: RunRecord, out_dir: Path
) -> Path:
    """Write ``report.html`` and publish the run to optuna-dashboard (artifacts, note, figures)."""
    figures = report.figures(trials, record)
    path = report.write_report(out_dir / "report.html", trials, record, figures)
    report.publish(study, out_dir, record, figures, path)
    return path


# --- worker processes and scratch folders -------------------------------------------------


_SPAWN = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools


def search_worker(spec: StudySpec, where: Where, worker: int, threads: int) -> None:
    """One extra search process of ``paretokd run --workers N`` (runs in a child process)."""
    logs.to_stderr(logging.StreamHandler(), f"%(asctime)s [worker {worker}] %(message)s")
    logs.quiet_libraries()
    fp = latency.fingerprint(spec.latency)
    teacher = teacher_mod.load(spec.teacher, spec.task)
    splits = data.load_splits(spec.data, spec.seed, config.cache_dir())
    study = storage.open_study(spec, where.storage, where.study_name, fp, worker=worker)
    workdir = _workdir(where)
    try:
        ctx = context.prepare(spec, teacher, splits, workdir, fp, where.out_dir)
        teacher_timing.calibrate(study, ctx)  # stored by the main process: read back
        loop.run(study, ctx, show_progress=False, torch_threads=threads)
    finally:
        clean_workdir(workdir)


def _workdir(where: Where) -> Path:
    """This process's scratch folder: workers sharing an output folder keep theirs apart."""
    path = where.out_dir / "tmp" / str(os.getpid())
    path.mkdir(parents=True, exist_ok=True)
    return path


def clean_workdir(path: Path) -> None:
    """Remove a process's scratch folder (exports of trials that were timed and dropped).

    Its parent goes too once no other worker uses it.
    """
    shutil.rmtree(path, ignore_errors=True)
    with suppress(OSError):
        path.parent.rmdir()


def _writable(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_dir):
            pass
    except OSError as exc:
        raise ParetokdError(
            f"cannot write to output folder {str(out_dir)!r}: {exc.strerror}; pass --out DIR"
        ) from None


# --- re-picking a stored study ------------------------------------------------------------


def repick(
    url: str, study_name: str | None, budgets: tuple[float, ...]
) -> tuple[list[Pick], Objective]:
    """Recommend for other budgets from a stored study, without training.

    ``study_name`` may be omitted when the storage holds exactly one study.

    Returns:
        The picks, and objective 1 of the study.

    Raises:
        ParetokdError: If the study cannot be found.
    """
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).exists():
        raise ParetokdError(
            f"no study database at {url[len('sqlite:///') :]}; pass --out DIR or --storage URL"
        )
    study = storage.load_study(url, study_name)
    objective = storage.objective_of(study)
    return recommend.pick(recommend.trials(study), budgets, objective), objective
