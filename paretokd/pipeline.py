"""The stages of ``paretokd run`` connected: search, recommend, final distillation, report.

The CLI parses and prints; this module calls the library in order and returns
typed results, so tests can drive a whole run in-process.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from paretokd import (
    config,
    data,
    files,
    final,
    latency,
    recommend,
    report,
    scoring,
    search,
    space,
    student,
)
from paretokd.models import teacher as teacher_mod
from paretokd.config import StudySpec, format_budget
from paretokd.errors import ParetokdError

log = logging.getLogger(__name__)

ProgressFactory = Callable[[str, int], Callable[[int, float], None]]
"""Given a label and a total, returns a per-step callback (the CLI draws a bar)."""


@dataclass(frozen=True)
class Where:
    """Where a study lives."""

    out_dir: Path
    storage: str
    study_name: str


def locate(spec: StudySpec, out: str | Path | None, storage: str | None) -> Where:
    """Resolve the output folder (``runs/<study>`` by default) and the storage URL."""
    out_dir = Path(out) if out is not None else Path("runs") / spec.name
    return Where(out_dir, storage or search.default_storage(out_dir), spec.name)


@dataclass
class RunResult:
    """Everything a run produced."""

    where: Where
    teacher: dict[str, Any]
    latency_setup: dict[str, Any]
    search: search.SearchResult
    reference: dict[str, Any]
    picks: list[recommend.Pick]
    finals: dict[float, final.FinalResult] = field(default_factory=dict)
    evaluation: dict[str, Any] | None = None
    """Scores on the evaluation set (see :func:`evaluate`); ``None`` without one."""
    objective: str = "loss"
    """The name of objective 1: ``loss`` or the task metric."""
    report: Path | None = None
    recommendations: Path | None = None
    seconds: float = 0.0


def _workdir(where: Where) -> Path:
    """This process's scratch folder: workers sharing an output folder keep theirs apart."""
    path = where.out_dir / "tmp" / str(os.getpid())
    path.mkdir(parents=True, exist_ok=True)
    return path


def _writable(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_dir):
            pass
    except OSError as exc:
        raise ParetokdError(
            f"cannot write to output folder {str(out_dir)!r}: {exc.strerror}; pass --out DIR"
        ) from None


def recommendations(
    where: Where,
    latency_setup: dict[str, Any],
    teacher: dict[str, Any],
    reference: dict[str, Any],
    picks: list[recommend.Pick],
    finals: dict[float, dict[str, Any]],
    evaluation: dict[str, Any] | None = None,
    spent: search.Spend | None = None,
) -> dict[str, Any]:
    """The content of ``recommendations.json``.

    Args:
        finals: Budget → the final student's record (:meth:`final.FinalResult.to_dict`
            with its ``speedup`` over the teacher re-timed beside it).
    """
    out_picks = []
    scores = (evaluation or {}).get("picks", {})
    for p in picks:
        done = finals.get(p.budget_ms)
        out_picks.append(
            {
                "budget": format_budget(p.budget_ms),
                "budget_ms": p.budget_ms,
                "trial": p.trial,
                "reason": p.reason,
                "arch": p.arch,
                "arch_id": space.Arch.from_dict(p.arch).id if p.arch else None,
                "params": p.params,
                "proxy_loss": p.proxy_loss,
                "latency_ms": p.latency_ms,
                "final": done,
                # How far the shipped student's p50 moved from the search's figure.
                "final_vs_search": (
                    done["latency_ms"] / p.latency_ms - 1 if done and p.latency_ms else None
                ),
                "score": scores.get(format_budget(p.budget_ms)),
            }
        )
    return {
        "study": where.study_name,
        "storage": search.redact(where.storage),
        "latency_setup": latency_setup,
        "teacher": teacher,
        "reference": reference,
        "evaluation": evaluation,
        "search": spent.to_dict() if spent else None,
        "picks": out_picks,
    }


def _scored(value: scoring.Score, teacher: scoring.Score, latency_ms: float) -> dict[str, Any]:
    return {
        **value.to_dict(),
        "percent_of_teacher": 100.0 * value.value / teacher.value if teacher.value else None,
        "latency_ms": latency_ms,
    }


def evaluate(
    spec: StudySpec,
    teacher: teacher_mod.Teacher,
    teacher_latency_ms: float,
    evalset: scoring.EvalSet,
    students: dict[str, tuple[final.FinalResult, Any]],
) -> dict[str, Any]:
    """Score the teacher and every final student on the evaluation set.

    Args:
        students: Folder name (a budget, or ``reference``) → the final result and model.

    Returns:
        ``recommendations.json``'s ``evaluation`` entry: the set, the metric, the
        teacher's score, and per student its score, percentage of the
        teacher's and speed-up at its final latency.
    """
    tok = teacher.tokenizer
    teacher_score = scoring.score(teacher.model, tok, evalset, spec)
    log.info(
        "evaluation on %s: teacher %s %.4f",
        evalset.description,
        evalset.metric,
        teacher_score.value,
    )
    out: dict[str, Any] = {
        "set": evalset.description,
        "metric": evalset.metric,
        "examples": teacher_score.examples,
        "teacher": _scored(teacher_score, teacher_score, teacher_latency_ms),
        "reference": None,
        "picks": {},
    }
    for name, (result, model) in students.items():
        score = scoring.score(model, tok, evalset, spec)
        entry = _scored(score, teacher_score, result.latency.p50_ms)
        entry["speedup"] = teacher_latency_ms / result.latency.p50_ms
        log.info(
            "evaluation: %s %s %.4f (%.1f%% of the teacher) at %.2f ms (%.1fx)",
            name,
            evalset.metric,
            entry["value"],
            entry["percent_of_teacher"] or 0.0,
            entry["latency_ms"],
            entry["speedup"],
        )
        if name == REFERENCE_FOLDER:
            out["reference"] = entry
        else:
            out["picks"][name] = entry
    return out


REFERENCE_FOLDER = "reference"
"""Where the hand-crafted student's final distillation goes (``students/reference``)."""


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
    """Search, recommend, distil the picks, and write the report.

    Everything a user can get wrong is checked before anything is written.

    Args:
        spec: The resolved study spec.
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
    where = locate(spec, out, storage)
    fp = latency.fingerprint(spec.latency)
    if workers < 1:
        raise ParetokdError(f"--workers must be at least 1, got {workers}")
    teacher = teacher_mod.load(spec.teacher, spec.task)
    space.check_against_teacher(spec.space, teacher.dims)
    splits = data.load_splits(spec.data, spec.seed, config.cache_dir())
    evalset = scoring.load(spec, teacher, config.cache_dir())
    log.info(
        "corpus: %d texts from %s (proxy %d train / %d eval)",
        len(splits.full_train) + len(splits.proxy_eval),
        splits.source,
        len(splits.proxy_train),
        len(splits.proxy_eval),
    )
    if storage is not None:
        search.storage(storage)  # a bad URL or an unreachable server fails before any write
    _writable(where.out_dir)
    study = search.open_study(spec, where.storage, where.study_name, fp)
    workdir = _workdir(where)
    # Training threads are split between the workers so they do not fight over cores.
    threads = max(1, (os.cpu_count() or 1) // workers)
    helpers = [
        _SPAWN.Process(target=search_worker, args=(spec, where, i, threads), daemon=True)
        for i in range(1, workers)
    ]
    for proc in helpers:
        proc.start()
    try:
        ctx = search.prepare(spec, teacher, splits, workdir, out_dir=where.out_dir)
        teacher_stats = search.measure_teacher(study, ctx)
        log.info("teacher %s: p50 %.2f ms (%s)", teacher.name, teacher_stats.p50_ms, fp.hardware)
        reference = search.measure_reference(study, ctx)
        log.info(
            "reference %s (%s): p50 %.2f ms, proxy loss %.4f",
            reference["name"],
            reference["arch_id"],
            reference["latency_ms"],
            reference["proxy_loss"],
        )
        search.enqueue_reference(study, ctx)
        result = search.run(study, ctx, show_progress=show_progress, torch_threads=threads)
    finally:
        for proc in helpers:
            proc.join()
            if proc.exitcode:
                log.warning("search worker %s exited with status %s", proc.name, proc.exitcode)
        search.clean_workdir(workdir)
    if helpers:
        result = search.summary(study, result)

    points = recommend.points(study)
    picks = recommend.pick(points, spec.budgets, maximise=search.maximise(spec))
    finals: dict[float, final.FinalResult] = {}
    students: dict[str, tuple[final.FinalResult, Any]] = {}
    jobs = [final.Job.for_pick(p) for p in picks if p.trial is not None]
    if evalset is not None and jobs:
        # Scored against the picks, the reference gets the same final training
        # (or a copy, when a pick is the reference's architecture).
        jobs.append(final.Job(REFERENCE_FOLDER, reference["arch"], None, None))
    if do_final and jobs:
        full_train = final.training_targets(spec, teacher, splits)
        done: dict[str, Path] = {}  # architecture id -> its finished folder in this run
        for job in jobs:
            label = f"final {job.folder}"
            arch_id = space.Arch.from_dict(job.arch).id
            if arch_id in done:
                final.copy_student(done[arch_id], job, where.out_dir)
            else:
                log.info("%s: distilling %s for %d steps", label, arch_id, spec.distill.final_steps)
            students[job.folder] = final.distill_and_export(
                job,
                spec,
                teacher,
                full_train,
                ctx.proxy_eval,
                ctx.residual_order,
                ctx.unit_order,
                where.out_dir,
                progress=progress(label, spec.distill.final_steps) if progress else None,
            )
            done[arch_id] = students[job.folder][0].dir
            if job.budget_ms is not None:
                finals[job.budget_ms] = students[job.folder][0]
    teacher_ms = teacher_stats.p50_ms
    teacher_now = None
    if finals or students:
        teacher_now = search.retime_teacher(ctx)
        teacher_ms = teacher_now.p50_ms
        log.info(
            "teacher re-timed beside the final students: p50 %.2f ms (%+.1f%% from the search's)",
            teacher_ms,
            100 * (teacher_ms / teacher_stats.p50_ms - 1),
        )
    evaluation = None
    if evalset is not None and students:
        evaluation = evaluate(spec, teacher, teacher_ms, evalset, students)

    teacher_info = {
        "name": teacher.name,
        "source": teacher.source,
        "params": teacher.params,
        "latency_ms": teacher_stats.p50_ms,
        "latency": teacher_stats.to_dict(),
        # Timed again beside the final students: their speed-ups use this one.
        "latency_final_ms": teacher_now.p50_ms if teacher_now else None,
    }
    setup = fp.to_dict()
    spent = search.spend(study)
    log.info(
        "search: %d trials, %.1f s; %d over the largest budget took %.1f s (%.1f%%)",
        spent.trials,
        spent.seconds,
        spent.never_pickable,
        spent.never_pickable_seconds,
        100 * spent.never_pickable_share,
    )
    # Speed-ups against the teacher timed beside the finals, in the JSON and the report alike.
    final_dicts = {
        b: {**f.to_dict(), "speedup": teacher_ms / f.latency.p50_ms} for b, f in finals.items()
    }
    rec_path = files.write_text(
        where.out_dir / "recommendations.json",
        json.dumps(
            recommendations(
                where, setup, teacher_info, reference, picks, final_dicts, evaluation, spent
            ),
            indent=2,
        )
        + "\n",
    )
    teacher_ref = report.teacher_reference(teacher_info)
    objective, maximise = search.objective_name(spec), search.maximise(spec)
    references = [teacher_ref, report.reference_point(reference, objective)]
    figures = report.figures(points, picks, references, objective=objective, maximise=maximise)
    summary = report.run_summary(teacher_info, setup, result.complete, search.redact(where.storage))
    summary["time on never-pickable trials"] = (
        f"{spent.never_pickable_seconds:.1f} s of {spent.seconds:.1f} s "
        f"({100 * spent.never_pickable_share:.1f}%, {spent.never_pickable} of {spent.trials} "
        "trials over the largest budget)"
    )
    report_path = report.write_report(
        where.out_dir / "report.html",
        title=f"paretokd study {where.study_name}",
        points=points,
        picks=picks,
        references=references,
        summary=summary,
        finals=final_dicts,
        report_figures=figures,
        objective=objective,
        maximise=maximise,
        evaluation=evaluation,
    )
    # Artifacts (picks' files, the report), the study note and the figures for
    # optuna-dashboard (`paretokd dashboard`); without optuna-dashboard, artifacts only.
    from paretokd.report import dashboard

    dashboard.publish(
        study,
        where.out_dir,
        picks=picks,
        finals=final_dicts,
        figures=figures,
        report_path=report_path,
        teacher=teacher_ref,
        summary=summary,
        evaluation=evaluation,
    )
    return RunResult(
        where=where,
        teacher=teacher_info,
        latency_setup=setup,
        search=result,
        reference=reference,
        picks=picks,
        finals=finals,
        evaluation=evaluation,
        objective=objective,
        report=report_path,
        recommendations=rec_path,
        seconds=time.perf_counter() - start,
    )


def quiet_libraries() -> None:
    """Turn off the libraries' own progress bars and notices; paretokd logs what matters."""
    import datasets
    import optuna
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    # Heartbeats and metric names are marked experimental; we rely on them knowingly.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.WARNING)


_SPAWN = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools


def search_worker(spec: StudySpec, where: Where, worker: int, threads: int) -> None:
    """One extra search process of ``paretokd run --workers N`` (runs in a child process)."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        logging.Formatter(f"%(asctime)s [worker {worker}] %(message)s", datefmt="%H:%M:%S")
    )
    root = logging.getLogger("paretokd")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False
    quiet_libraries()
    fp = latency.fingerprint(spec.latency)
    teacher = teacher_mod.load(spec.teacher, spec.task)
    splits = data.load_splits(spec.data, spec.seed, config.cache_dir())
    study = search.open_study(spec, where.storage, where.study_name, fp, worker=worker)
    workdir = _workdir(where)
    try:
        ctx = search.prepare(spec, teacher, splits, workdir, out_dir=where.out_dir)
        search.run(study, ctx, show_progress=False, torch_threads=threads)
    finally:
        search.clean_workdir(workdir)


def repick(
    storage: str, study_name: str | None, budgets: tuple[float, ...]
) -> tuple[list[recommend.Pick], str]:
    """Recommend for other budgets from a stored study, without training.

    ``study_name`` may be omitted when the storage holds exactly one study.

    Returns:
        The picks, and the name of objective 1 (``loss`` or a task metric).

    Raises:
        ParetokdError: If the study cannot be found.
    """
    if storage.startswith("sqlite:///") and not Path(storage[len("sqlite:///") :]).exists():
        raise ParetokdError(
            f"no study database at {storage[len('sqlite:///') :]}; pass --out DIR or --storage URL"
        )
    study = search.load_study(storage, study_name)
    maximise = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    objective = study.metric_names[0] if study.metric_names else "loss"
    return recommend.pick(recommend.points(study), budgets, maximise=maximise), objective


def measure_target(
    target: str, spec: config.StudySpec, teacher: Any | None = None
) -> dict[str, Any]:
    """Measure ``target`` under ``spec.latency``, as ``paretokd latency`` does.

    Args:
        target: An architecture as JSON (built from the teacher, as the search
            builds students), a model directory or hub id, or an ``.onnx`` file.
        spec: The study spec; its latency section is the setup, its teacher
            builds architectures.
        teacher: An already loaded :class:`paretokd.teacher.Teacher` to build
            architectures from (default: load ``spec.teacher``).

    Returns:
        The statistics (``p50_ms``, ``p90_ms``, ``p99_ms``, ``ci_ms``, ``runs``, ...),
        what was measured, the cost in seconds and the fingerprint.

    Raises:
        ParetokdError: If the target cannot be read or the device is missing.
    """
    lat = spec.latency
    fp = latency.fingerprint(lat)  # a missing GPU is said before anything loads
    start = time.perf_counter()
    out: dict[str, Any] = {"target": target}
    path = Path(target)
    if target.lstrip().startswith("{"):
        try:
            raw = json.loads(target)
            arch = space.Arch.from_dict(raw)
        except (ValueError, KeyError, TypeError) as exc:
            raise ParetokdError(
                f"architecture {target!r} is not valid: {exc}; write e.g. "
                '\'{"num_layers":3,"hidden_size":256,"num_heads":4,"intermediate_size":512}\''
            ) from None
        if min(arch.to_dict().values()) < 1 or arch.hidden_size % arch.num_heads:
            raise ParetokdError(
                f"architecture {arch.id}: sizes must be positive and hidden_size divisible "
                "by num_heads"
            )
        if teacher is None:
            teacher = teacher_mod.load(spec.teacher, spec.task)
        model = student.build(arch, teacher.model, spec.distill.teacher_init)
        input_names = teacher.tokenizer.model_input_names
        out.update(kind="architecture", arch=arch.to_dict(), teacher=teacher.name)
    elif path.suffix == ".onnx":
        if not path.is_file():
            raise ParetokdError(f"ONNX file {target!r} does not exist")
        model = None
        out.update(kind="onnx")
    elif path.exists() or (target.count("/") == 1 and not target.startswith((".", "/", "~"))):
        # With a task spec (--study), the model is timed with its head, as it ships.
        loaded = teacher_mod.load(
            config.TeacherSpec(target, spec.teacher.trust_remote_code), spec.task
        )
        model, input_names = loaded.model, loaded.tokenizer.model_input_names
        out.update(kind="model")
    else:
        raise ParetokdError(
            f"{target!r} is neither an architecture as JSON, a model directory, a hub id "
            "nor an .onnx file"
        )
    with tempfile.TemporaryDirectory(prefix="paretokd-latency-") as tmp:
        if model is not None:
            limit = getattr(model.config, "max_position_embeddings", None)
            if limit is not None and lat.seq_len > limit:
                raise ParetokdError(
                    f"latency.seq_len {lat.seq_len} exceeds the model's "
                    f"max_position_embeddings ({limit}); pass --seq-len {limit} or less"
                )
            out["params"] = student.count_params(model)
            t0 = time.perf_counter()
            path = latency.export_onnx(model, input_names, Path(tmp) / "model.onnx", lat)
            out["export_s"] = time.perf_counter() - t0
        stats = latency.measure(path, lat, model.config.vocab_size if model else None)
    out.update(stats.to_dict())
    out["cost_s"] = time.perf_counter() - start
    out["fingerprint"] = fp.to_dict()
    return out
