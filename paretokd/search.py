"""The Optuna study: storage, sampler, and the objective that measures one student."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy.exc
import torch
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState
from transformers import PreTrainedModel

from paretokd import dashboard, distill, latency, metrics, sampler, scoring, space, student
from paretokd.config import StudySpec
from paretokd.data import Splits, Text
from paretokd.errors import ParetokdError
from paretokd.teacher import Teacher

log = logging.getLogger(__name__)

CONSTRAINT = "latency_over_budget_ms"


def objective_name(spec: StudySpec) -> str:
    """What objective 1 is: ``loss``, or the task metric's name."""
    return spec.task.resolved_metric if spec.task.objective == "metric" else "loss"


def maximise(spec: StudySpec) -> bool:
    """Whether objective 1 is maximised (a task metric) rather than minimised (a loss)."""
    return spec.task.objective == "metric"


def untrained_value(spec: StudySpec) -> float:
    """Objective 1 of a student that was never trained: the worst value it can take."""
    return metrics.worst(objective_name(spec))


def default_storage(out_dir: Path) -> str:
    """The SQLite URL of the study database inside ``out_dir``."""
    return f"sqlite:///{(out_dir / 'study.db').resolve()}"


def redact(url: str) -> str:
    """``url`` with any password replaced, for logs and reports."""
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return "<invalid storage URL>"


def storage(url: str, heartbeat_seconds: int = 30) -> RDBStorage:
    """An RDB storage with heartbeats, so a killed worker leaves no trial stuck RUNNING.

    A trial whose worker stops beating for four heartbeats is marked failed and
    queued again (up to three times) for the next worker that asks for a trial.

    Raises:
        ParetokdError: If the URL is malformed or the database cannot be reached.
    """
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        # Wait for a lock held by another process instead of failing at once.
        engine_kwargs["connect_args"] = {"timeout": 60}
    try:
        return RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=heartbeat_seconds,
            grace_period=4 * heartbeat_seconds,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=3),
        )
    except (sqlalchemy.exc.ArgumentError, ValueError) as exc:
        raise ParetokdError(f"invalid storage URL {redact(url)!r}: {exc}") from None
    except (sqlalchemy.exc.OperationalError, ModuleNotFoundError, ImportError) as exc:
        reason = str(exc).strip().splitlines()[0]
        raise ParetokdError(f"cannot open storage {redact(url)}: {reason}") from None


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def spec_differences(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Dotted keys whose values differ between two spec identities."""
    a, b = _flatten(stored), _flatten(current)
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def versions() -> dict[str, str]:
    """Versions of the packages that decide what a trial measures."""
    names = ["paretokd", "optuna", "torch", "transformers", "onnxruntime", "onnx"]
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = version(name)
        except Exception:  # not installed as a distribution (e.g. run from a checkout)
            out[name] = "unknown"
    return out


def open_study(
    spec: StudySpec,
    url: str,
    study_name: str,
    fingerprint: latency.Fingerprint,
    worker: int = 0,
) -> optuna.Study:
    """Create the study, or load it and check that it was made by the same spec on this hardware.

    Raises:
        ParetokdError: If a stored study differs in spec identity or hardware fingerprint.
    """
    stor = storage(url, spec.search.heartbeat_seconds)
    n_existing = 0
    try:
        summary = optuna.study.get_all_study_summaries(stor)
        existing = next((s for s in summary if s.study_name == study_name), None)
        n_existing = existing.n_trials if existing else 0
    except sqlalchemy.exc.OperationalError as exc:
        raise ParetokdError(f"cannot read storage {redact(url)}: {exc.orig}") from None
    study = optuna.create_study(
        study_name=study_name,
        storage=stor,
        directions=["maximize" if maximise(spec) else "minimize", "minimize"],
        sampler=sampler.make(spec, n_existing + 7919 * worker),
        load_if_exists=True,
    )
    attrs = study.user_attrs
    if "spec_identity" in attrs:
        diff = spec_differences(attrs["spec_identity"], spec.identity())
        if diff:
            raise ParetokdError(
                f"study {study_name!r} in {redact(url)} was made with a different spec "
                f"({', '.join(diff[:5])} differ); keep the old settings or pass a new --study-name"
            )
        if attrs.get("fingerprint") != fingerprint.to_dict():
            stored = attrs.get("fingerprint", {})
            diff = spec_differences(stored, fingerprint.to_dict())
            raise ParetokdError(
                f"study {study_name!r} holds latencies measured on other hardware or settings "
                f"({', '.join(diff)} differ: {stored.get('hardware')}); latencies from different "
                "machines cannot share one front, so pass a new --study-name"
            )
    else:
        study.set_metric_names([objective_name(spec), "latency_ms"])
        study.set_user_attr("spec_identity", spec.identity())
        study.set_user_attr("spec_hash", spec.hash)
        study.set_user_attr("fingerprint", fingerprint.to_dict())
        study.set_user_attr("versions", versions())
    study.set_user_attr("spec", spec.to_dict())  # the latest run's full spec (budgets may change)
    return study


def load_study(url: str, study_name: str | None) -> optuna.Study:
    """Load an existing study for reading; without a name, the storage's only study.

    Raises:
        ParetokdError: If the study does not exist, or no name is given and the
            storage does not hold exactly one study.
    """
    stor = storage(url)
    names = [s.study_name for s in optuna.study.get_all_study_summaries(stor)]
    if study_name is None:
        if len(names) != 1:
            raise ParetokdError(
                f"{redact(url)} holds {len(names)} studies ({', '.join(names) or 'none'}); "
                "pass --study-name"
            )
        study_name = names[0]
    if study_name not in names:
        raise ParetokdError(
            f"no study named {study_name!r} in {redact(url)} "
            f"(it holds: {', '.join(names) or 'none'})"
        )
    return optuna.load_study(study_name=study_name, storage=stor)


@dataclass
class Context:
    """What every trial of a run shares: computed once, before the first trial."""

    spec: StudySpec
    teacher: Teacher
    proxy_train: distill.TeacherTargets
    proxy_eval: distill.TeacherTargets
    workdir: Path
    residual_order: list[int]
    """The teacher's residual dimensions, most energetic first (see ``student.build``)."""
    unit_order: list[list[int]]
    """Per teacher layer, its FFN units, most important first (``student.unit_orders``)."""
    out_dir: Path | None = None
    """The run's folder: trials attach their ``latency.json`` to its artifact store."""
    fingerprint: dict[str, Any] | None = None
    """This machine and latency setup (``latency.fingerprint``), stored in each trial's file."""
    proxy_eval_labels: list[float] | None = None
    """Gold labels of the held-out proxy texts, in batch order (task metric objective)."""


def build_student(arch: space.Arch, ctx: Context) -> PreTrainedModel:
    """A student of ``arch``, initialised from the teacher as the spec says."""
    teacher_init = ctx.spec.distill.teacher_init
    return student.build(arch, ctx.teacher.model, teacher_init, ctx.residual_order, ctx.unit_order)


def time_student(model: PreTrainedModel, ctx: Context) -> latency.LatencyStats:
    """Export ``model`` to a scratch file and time it under the study's latency setup."""
    with tempfile.TemporaryDirectory(dir=ctx.workdir) as tmp:
        return latency.measure_model(
            model, ctx.teacher.tokenizer.model_input_names, ctx.spec.latency, Path(tmp) / "m.onnx"
        )


def proxy_distill(
    model: PreTrainedModel, ctx: Context, steps: int | None = None
) -> tuple[distill.DistillResult, float]:
    """The search's distillation on the proxy split, then the held-out loss.

    ``steps`` defaults to the spec's ``proxy_steps`` (``validate-proxy`` asks for more).
    """
    spec = ctx.spec
    result, proj = distill.train(
        model,
        ctx.proxy_train,
        steps=steps or spec.distill.proxy_steps,
        learning_rate=spec.distill.learning_rate,
        weight_decay=spec.distill.weight_decay,
        seed=spec.seed,
        task=spec.task,
        kept_dims=student.kept_dims(ctx.residual_order, model.config.hidden_size),
    )
    return result, distill.evaluate(model, proj, ctx.proxy_eval, spec.task)


def proxy_metric(model: PreTrainedModel, ctx: Context) -> float:
    """The task metric of ``model`` on the held-out proxy texts' gold labels."""
    assert ctx.proxy_eval_labels is not None, "the metric objective needs data.label_column"
    logits = distill.predict(model, ctx.proxy_eval.batches)
    task = ctx.spec.task
    return scoring.metric_of(logits, ctx.proxy_eval_labels, task.kind, task.resolved_metric)


def _targets_key(spec: StudySpec, teacher: Teacher, texts: list[Text]) -> str:
    """Names the teacher's outputs on ``texts``: changes with the teacher, texts or batching."""
    blob = json.dumps(
        [
            2,  # the file's layout: a dict of states (and logits) per batch
            teacher.name,
            teacher.config.to_json_string(),
            spec.distill.batch_size,
            spec.data.max_length,
            hashlib.sha256(json.dumps(texts).encode()).hexdigest(),
        ]
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def prepare(
    spec: StudySpec, teacher: Teacher, splits: Splits, workdir: Path, out_dir: Path | None = None
) -> Context:
    """Tokenise the proxy splits and get the teacher's outputs on them once.

    With ``out_dir`` (the run's folder), the outputs are kept on disk in
    ``out_dir/teacher/``, so a rerun or another worker of the study reads them
    back instead of running the teacher again.
    """
    cache = out_dir / "teacher" if out_dir is not None else None
    tok, d = teacher.tokenizer, spec.data
    start = time.perf_counter()
    targets, read = [], []
    eval_order: list[int] = []
    for name, texts in (("proxy_train", splits.proxy_train), ("proxy_eval", splits.proxy_eval)):
        batches, eval_order = distill.make_batches(
            texts, tok, spec.distill.batch_size, d.max_length
        )
        targets.append(distill.TeacherTargets(teacher.model, batches, keep=True))
        path = cache / f"{name}-{_targets_key(spec, teacher, texts)}.pt" if cache else None
        read.append(targets[-1].precompute(path))
    log.info(
        "teacher outputs on %d + %d proxy texts %s in %.1f s",
        len(splits.proxy_train),
        len(splits.proxy_eval),
        "read from disk" if all(read) else "computed",
        time.perf_counter() - start,
    )
    # One more teacher pass over the proxy texts (not kept on disk: a few
    # seconds, against the activations of every FFN unit it would store).
    start = time.perf_counter()
    unit_order = student.unit_orders(teacher.model, targets[0].batches)
    log.info("FFN unit importance measured in %.1f s", time.perf_counter() - start)
    labels = None
    if spec.task.kind != "agnostic" and splits.proxy_eval_labels is not None:
        encoded = teacher.encode_labels(splits.proxy_eval_labels, spec.task, "data.label_column")
        labels = [encoded[i] for i in eval_order]
    return Context(
        spec,
        teacher,
        proxy_train=targets[0],
        proxy_eval=targets[1],
        workdir=workdir,
        residual_order=distill.residual_order(targets[0]),
        unit_order=unit_order,
        out_dir=out_dir,
        fingerprint=latency.fingerprint(spec.latency).to_dict(),
        proxy_eval_labels=labels,
    )


@dataclass(frozen=True)
class _Known:
    """Figures the study already holds for an architecture."""

    source: str
    """Where they come from: ``trial N`` or ``reference``."""
    latency: dict[str, Any]
    value: float | None
    """Objective 1; ``None`` when it was over the budget then, and not trained."""
    attrs: dict[str, float]
    """``proxy_loss`` and, for a task with labels, ``proxy_metric``."""


def _known(study: optuna.Study, arch_id: str, number: int, spec: StudySpec) -> _Known | None:
    """The figures of an earlier trial of ``arch_id``, or of the reference when it is that.

    The reference is measured and proxy-distilled before the search
    (:func:`measure_reference`), under the trials' own settings: the trial that
    starts the search from it reuses those figures instead of paying twice.
    """
    keys = ("proxy_loss", "proxy_metric")
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if t.number != number and t.user_attrs.get("arch_id") == arch_id:
            assert t.values is not None
            attrs = {k: t.user_attrs[k] for k in keys if k in t.user_attrs}
            value = t.values[0] if t.user_attrs.get("trained") else None
            return _Known(f"trial {t.number}", t.user_attrs["latency"], value, attrs)
    ref = study.user_attrs.get("reference")
    if ref is not None and ref["arch_id"] == arch_id:
        attrs = {k: ref[k] for k in keys if k in ref}
        value = attrs["proxy_metric"] if maximise(spec) else attrs["proxy_loss"]
        return _Known("reference", ref["latency"], value, attrs)
    return None


def _others(study: optuna.Study, number: int) -> int:
    """Trials other than ``number`` that are complete or still running (in any worker)."""
    states = (TrialState.COMPLETE, TrialState.RUNNING)
    return sum(1 for t in study.get_trials(deepcopy=False, states=states) if t.number != number)


def objective(trial: optuna.Trial, ctx: Context) -> tuple[float, float]:
    """Measure one sampled student: latency first, then, if it fits a budget, a proxy distillation.

    An architecture slower than the largest budget is recorded as infeasible
    through an Optuna constraint and is not trained: its loss is
    :data:`paretokd.distill.UNTRAINED_LOSS`. An architecture already measured in
    this study (same fingerprint, checked when the study opened), the reference
    included, reuses its figures.
    """
    spec = ctx.spec
    if _others(trial.study, trial.number) >= spec.trials:
        # Another worker already holds the last trials the study needs: stop
        # here rather than overshoot the study's total.
        trial.study.stop()
        raise optuna.TrialPruned("the study already has its trials")
    arch = space.suggest(trial, spec.space)
    trial.set_user_attr("worker", f"{platform.node()}:{os.getpid()}")
    trial.set_user_attr("arch", arch.to_dict())
    trial.set_user_attr("arch_id", arch.id)
    budget = max(spec.budgets)
    timings: dict[str, float] = {}

    known = _known(trial.study, arch.id, trial.number, spec)
    t0 = time.perf_counter()
    model = build_student(arch, ctx)
    timings["build_s"] = time.perf_counter() - t0
    params = student.count_params(model)
    if known is not None:
        stats = latency.LatencyStats(**known.latency)
        trial.set_user_attr("cached_from", known.source)
    else:
        t0 = time.perf_counter()
        stats = time_student(model, ctx)
        timings["latency_s"] = time.perf_counter() - t0
        if ctx.out_dir is not None:  # shown with the trial in optuna-dashboard
            record = {"arch": arch.to_dict(), **stats.to_dict()}
            record["fingerprint"] = ctx.fingerprint
            dashboard.attach_to_trial(trial, "latency.json", record, ctx.out_dir)
    trial.set_user_attr("params", params)
    trial.set_user_attr("latency", stats.to_dict())
    trial.set_constraint(CONSTRAINT, stats.p50_ms - budget)

    trained = stats.p50_ms <= budget
    if not trained:
        value = untrained_value(spec)
    elif known is not None and known.value is not None:
        value = known.value
        for key, figure in known.attrs.items():
            trial.set_user_attr(key, figure)
    else:
        result, loss = proxy_distill(model, ctx)
        timings["distill_s"] = result.seconds
        trial.set_user_attr("train_loss", result.train_loss)
        trial.set_user_attr("proxy_loss", loss)
        value = loss
        if ctx.proxy_eval_labels is not None:
            t0 = time.perf_counter()
            metric = proxy_metric(model, ctx)
            timings["metric_s"] = time.perf_counter() - t0
            trial.set_user_attr("proxy_metric", metric)
            if maximise(spec):
                value = metric
    trial.set_user_attr("trained", trained)
    trial.set_user_attr("timings", timings)
    return value, stats.p50_ms


def _log_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    if trial.state == TrialState.PRUNED:
        return  # not run: the study had its trials (see objective)
    if trial.state != TrialState.COMPLETE or trial.values is None:
        log.warning("trial %d ended %s", trial.number, trial.state.name)
        return
    a = trial.user_attrs
    if "cached_from" in a:
        note = f"figures of {a['cached_from']}"
    elif a["trained"]:
        note = "trained"
    else:
        note = "over budget, not trained"
    seconds = trial.duration.total_seconds() if trial.duration else 0.0
    log.info(
        "trial %3d  %-20s %5.1fM params  p50 %6.2f ms  %s %.4f  (%s, %.1f s)",
        trial.number,
        a["arch_id"],
        a["params"] / 1e6,
        trial.values[1],
        study.metric_names[0] if study.metric_names else "loss",
        trial.values[0],
        note,
        seconds,
    )


@dataclass(frozen=True)
class SearchResult:
    """What a search run did."""

    study_name: str
    complete: int
    """Complete trials in the study after this run."""
    ran: int
    """Trials this run added."""
    seconds: float


def _complete(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def run(
    study: optuna.Study, ctx: Context, show_progress: bool = True, torch_threads: int = 0
) -> SearchResult:
    """Run trials until the study holds ``spec.trials`` complete ones (a finished one runs none).

    Workers sharing the study stop at the study's total, not their own.

    Args:
        study: The study (see :func:`open_study`).
        ctx: What every trial shares (see :func:`prepare`).
        show_progress: Draw Optuna's progress bar.
        torch_threads: Threads for training; 0 means every core.
    """
    start = time.perf_counter()
    # Trials of a killed worker, stale for longer than the grace period, are
    # failed and queued again before anything is counted.
    optuna.storages.fail_stale_trials(study)
    before = _complete(study)
    remaining = ctx.spec.trials - before
    if remaining <= 0:
        log.info("study %s already has %d complete trials: no new trial", study.study_name, before)
    else:
        log.info(
            "study %s: %d complete trials, running %d more", study.study_name, before, remaining
        )
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        # Training uses every core; latency is measured between trainings, in
        # its own session with its own fixed thread count, never concurrently.
        torch.set_num_threads(torch_threads or os.cpu_count() or 1)
        if before:  # resuming: is the machine as fast as when the study began?
            check_drift(study, ctx)
        study.optimize(
            lambda t: objective(t, ctx),
            n_trials=remaining,
            callbacks=[
                # Counts trials of every worker on the storage, so workers sharing
                # a study stop at the study's total.
                optuna.study.MaxTrialsCallback(ctx.spec.trials, states=(TrialState.COMPLETE,)),
                _log_trial,
                _drift_guard(ctx, DRIFT_EVERY),
            ],
            show_progress_bar=show_progress,
        )
    optuna.storages.fail_stale_trials(study)
    after = _complete(study)
    return SearchResult(study.study_name, after, after - before, time.perf_counter() - start)


def summary(study: optuna.Study, result: SearchResult) -> SearchResult:
    """``result`` with the study's complete trials counted again (other workers add some too)."""
    after = _complete(study)
    return SearchResult(
        result.study_name, after, after - (result.complete - result.ran), result.seconds
    )


@dataclass(frozen=True)
class Spend:
    """Where a study's trial time went."""

    trials: int
    seconds: float
    """Wall time of every complete trial, summed (over all workers)."""
    never_pickable: int
    """Trials slower than the largest budget: measured, never trained, never pickable."""
    never_pickable_seconds: float

    @property
    def never_pickable_share(self) -> float:
        """The fraction of trial time spent on trials that could never be picked."""
        return self.never_pickable_seconds / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with the share."""
        return {**asdict(self), "never_pickable_share": self.never_pickable_share}


def spend(study: optuna.Study) -> Spend:
    """Sum the time of the study's complete trials, and of those that could never be picked."""
    total = wasted = 0.0
    n = n_wasted = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        seconds = t.duration.total_seconds() if t.duration else 0.0
        total += seconds
        n += 1
        if any(v > 0 for v in t.constraints.values()):
            wasted += seconds
            n_wasted += 1
    return Spend(n, total, n_wasted, wasted)


def measure_teacher(study: optuna.Study, ctx: Context) -> latency.LatencyStats:
    """The teacher's latency under the study's setup, measured once and stored in the study."""
    stored = study.user_attrs.get("teacher_latency")
    if stored is not None:
        return latency.LatencyStats(**stored)
    # Kept in the workdir: the drift guard re-times this very graph.
    stats = latency.measure(_teacher_onnx(ctx), ctx.spec.latency, ctx.teacher.config.vocab_size)
    study.set_user_attr("teacher_latency", stats.to_dict())
    return stats


def retime_teacher(ctx: Context) -> latency.LatencyStats:
    """The teacher timed again now, e.g. side by side with the final students.

    A CPU that has been training for minutes runs inference measurably slower
    (up to +12% seen here) than the fresh one the study's first measurement
    saw; speed-ups of final students are honest only against a teacher timed
    in the same state.
    """
    with tempfile.TemporaryDirectory(prefix="paretokd-teacher-") as tmp:
        names = ctx.teacher.tokenizer.model_input_names
        path = Path(tmp) / "teacher.onnx"
        return latency.measure_model(ctx.teacher.model, names, ctx.spec.latency, path)


DRIFT_EVERY = 8
"""The drift guard re-times the teacher after every this many complete trials of a run."""


def _teacher_onnx(ctx: Context) -> Path:
    path = ctx.workdir / "teacher.onnx"
    if not path.exists():
        names = ctx.teacher.tokenizer.model_input_names
        latency.export_onnx(ctx.teacher.model, names, path, ctx.spec.latency)
    return path


def check_drift(study: optuna.Study, ctx: Context, trial: int | None = None) -> bool:
    """Re-time the teacher and compare with the p50 the study stored for it.

    A change beyond :data:`paretokd.latency.DRIFT_THRESHOLD` means the machine
    is not running at the speed the study's earlier latencies were measured at
    (other load, thermal or frequency changes): it is logged as a warning and
    appended to the study's ``latency_drift`` user attribute.

    Returns:
        Whether the machine drifted.
    """
    stored = study.user_attrs.get("teacher_latency")
    if stored is None:
        return False
    baseline = float(stored["p50_ms"])
    check = latency.check_drift(
        _teacher_onnx(ctx), ctx.spec.latency, baseline, ctx.teacher.config.vocab_size
    )
    if not check.drifted:
        log.debug("drift guard: teacher p50 %.2f ms (study: %.2f ms)", check.p50_ms, baseline)
        return False
    log.warning(
        "latency drift: the teacher now runs at p50 %.2f ms, %+.0f%% from the %.2f ms this "
        "study stored; latencies measured now may not be comparable with earlier ones",
        check.p50_ms,
        100 * (check.ratio - 1),
        baseline,
    )
    events = list(study.user_attrs.get("latency_drift", []))
    events.append({**check.to_dict(), "after_trial": trial})
    study.set_user_attr("latency_drift", events)
    return True


def _drift_guard(
    ctx: Context, every: int
) -> Callable[[optuna.Study, optuna.trial.FrozenTrial], None]:
    done = 0

    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        nonlocal done
        if trial.state != TrialState.COMPLETE:
            return
        done += 1
        if done % every == 0:
            check_drift(study, ctx, trial.number)

    return callback


def handcrafted_arch(teacher: Teacher) -> space.Arch:
    """The DistilBERT-style reference: the teacher with every other layer kept."""
    d = teacher.dims
    return space.Arch(max(1, d.num_layers // 2), d.hidden_size, d.num_heads, d.intermediate_size)


def enqueue_reference(study: optuna.Study, ctx: Context) -> bool:
    """Make the hand-crafted student the first trial of a new study, if the space holds it.

    The search then starts from the DistilBERT-style baseline, so no pick at its
    latency can be worse than it.

    Returns:
        True if it was enqueued.
    """
    arch = handcrafted_arch(ctx.teacher)
    sp = ctx.spec.space
    in_space = (
        sp.num_layers[0] <= arch.num_layers <= sp.num_layers[1]
        and arch.hidden_size in sp.hidden_size
        and arch.num_heads in sp.num_heads
        and arch.intermediate_size in sp.intermediate_size
    )
    if not in_space or study.get_trials(deepcopy=False):
        return False
    study.enqueue_trial(arch.to_dict())
    return True


def measure_reference(study: optuna.Study, ctx: Context) -> dict[str, Any]:
    """Measure and proxy-distil the hand-crafted student under the trials' own settings.

    Stored in the study (``reference``), so every pick can be shown against it
    and a rerun does not pay for it again.
    """
    stored = study.user_attrs.get("reference")
    if stored is not None:
        return dict(stored)
    arch = handcrafted_arch(ctx.teacher)
    model = build_student(arch, ctx)
    stats = time_student(model, ctx)
    _, loss = proxy_distill(model, ctx)
    reference = {
        "name": "every other teacher layer",
        "arch": arch.to_dict(),
        "arch_id": arch.id,
        "params": student.count_params(model),
        "proxy_loss": loss,
        "latency_ms": stats.p50_ms,
        "latency": stats.to_dict(),
    }
    if ctx.proxy_eval_labels is not None:
        reference["proxy_metric"] = proxy_metric(model, ctx)
    study.set_user_attr("reference", reference)
    return reference


def clean_workdir(path: Path) -> None:
    """Remove a process's scratch folder (exports of trials that were timed and dropped).

    Its parent goes too once no other worker uses it.
    """
    shutil.rmtree(path, ignore_errors=True)
    with contextlib.suppress(OSError):
        path.parent.rmdir()
