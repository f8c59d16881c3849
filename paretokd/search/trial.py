"""The objective of one trial: time the sampled student first, then distil it if it can fit."""

from __future__ import annotations

import logging
import os
import platform
import time
from dataclasses import dataclass, replace
from typing import Any

import optuna
from optuna.trial import TrialState
from transformers import PreTrainedModel

from paretokd.config import SpaceSpec, format_budget
from paretokd.distill import device as devices
from paretokd.distill.recipe import Distilled, learning_rate
from paretokd.models import student
from paretokd.records import FP32, Arch, Attr, LatencyStats, ReferenceStudent, TrialRecord
from paretokd.search import space
from paretokd.search.artifacts import attach_to_trial
from paretokd.search.context import (
    Context,
    StudentGraphs,
    build_student,
    graph_scores,
    proxy_distill,
    proxy_metric,
    student_graphs,
    time_student,
)

log = logging.getLogger(__name__)

REFERENCE_ATTR = "reference"
"""Study user attribute holding the hand-crafted student's :class:`ReferenceStudent`."""


@dataclass(frozen=True)
class _Known:
    """Figures the study already holds for an architecture."""

    source: str
    """Where they come from: ``trial N`` or ``reference``."""
    latency: LatencyStats
    trained: TrialRecord | None
    """The earlier trial's figures when it was trained; ``None`` when it was over budget."""


def _known(study: optuna.Study, arch: Arch, number: int, ctx: Context) -> _Known | None:
    """The figures of an earlier trial of ``arch``, or of the reference when it is that.

    The reference is measured and proxy-distilled before the search
    (``search.reference.measure``), under the trials' own settings: the trial that
    starts the search from it reuses those figures instead of paying twice.
    """
    timed_only = None
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        record = TrialRecord.read(t)
        if t.number != number and record.arch == arch:
            if record.feasible:
                return _Known(f"trial {t.number}", record.latency, record)
            # Over an earlier largest budget: its latency stands, but a later
            # trial of the same shape may have trained it since the budgets grew.
            timed_only = timed_only or _Known(f"trial {t.number}", record.latency, None)
    if timed_only is not None:
        return timed_only
    stored = study.user_attrs.get(REFERENCE_ATTR)
    if stored is not None:
        ref = ReferenceStudent.from_json(stored)
        value = ref.value(ctx.objective)
        if ref.arch == arch and value is not None:
            as_trial = TrialRecord(
                number=-1,
                arch=arch,
                params=ref.params,
                value=value,
                latency=ref.latency,
                over_budget_ms=0.0,
                proxy_loss=ref.proxy_loss,
                proxy_metric=ref.proxy_metric,
                # It trained as any student of its shape does.
                learning_rate=learning_rate(ref.arch, ctx.teacher.dims, ctx.spec),
            )
            return _Known("reference", ref.latency, as_trial)
    return None


def _before(study: optuna.Study, number: int) -> int:
    """Trials numbered before ``number`` that count towards the study's total (any worker's).

    The storage numbers trials in the order they are made, so workers that start
    trials at the same moment agree on which of them are within the total.
    """
    return sum(1 for t in _taken_trials(study) if t.number < number)


def objective(trial: optuna.Trial, ctx: Context) -> tuple[float, float]:
    """Measure one sampled student: latency first, then, if it fits a budget, a proxy distillation.

    An architecture slower than the largest budget is recorded as infeasible
    through an Optuna constraint and is not trained: objective 1 is the
    objective's worst value. An architecture already measured in this study
    (same fingerprint, checked when the study opened), the reference included,
    reuses its figures.
    """
    spec = ctx.spec
    if _before(trial.study, trial.number) >= spec.trials:
        # Another worker already holds the last trials the study needs: stop
        # here rather than overshoot the study's total.
        trial.study.stop()
        raise optuna.TrialPruned("the study already has its trials")
    arch = space.suggest(trial, spec.space)
    # Seen while the trial runs (the dashboard, other workers); the record repeats them.
    trial.set_user_attr(Attr.WORKER, worker())
    trial.set_user_attr(Attr.ARCH_ID, arch.id)
    timings: dict[str, float] = {}
    known = _known(trial.study, arch, trial.number, ctx)
    t0 = time.perf_counter()
    model = build_student(arch, ctx)
    timings["build_s"] = time.perf_counter() - t0
    if known is not None:
        stats = known.latency
    else:
        t0 = time.perf_counter()
        stats = time_student(model, ctx, arch.precision)
        timings["latency_s"] = time.perf_counter() - t0
        if ctx.out_dir is not None:  # shown with the trial in optuna-dashboard
            record = {"arch": arch.to_dict(), **stats.to_json()}
            record["fingerprint"] = ctx.fingerprint.to_json()
            attach_to_trial(trial, "latency.json", record, ctx.out_dir)
    measured = TrialRecord(
        number=trial.number,
        arch=arch,
        params=student.count_params(model),
        value=ctx.objective.worst,
        latency=stats,
        over_budget_ms=stats.p50_ms - max(spec.budgets),
        cached_from=known.source if known else None,
        timings=timings,
        worker=worker(),
        trained_on=devices.describe(devices.resolve(spec.distill.device)),
    )
    if not measured.feasible:
        done = measured
    elif known is not None and known.trained is not None:
        k = known.trained
        done = replace(
            measured,
            value=k.value,
            proxy_loss=k.proxy_loss,
            proxy_metric=k.proxy_metric,
            learning_rate=k.learning_rate,
        )
    else:
        done = _distil(model, measured, ctx, trial)
    done.write(trial)
    return done.value, done.latency_ms


def _distil(
    model: PreTrainedModel, measured: TrialRecord, ctx: Context, trial: optuna.Trial
) -> TrialRecord:
    """``measured`` with the proxy distillation's figures (and the proxy metric, with labels).

    The trained student is also timed and scored in the space's other precisions,
    each added to the study as a trial of its own (:func:`add_siblings`).
    """
    done = proxy_distill(model, ctx)
    timings = {**measured.timings, "distill_s": done.result.seconds}
    loss, metric = done.loss, None
    with student_graphs(done.model, ctx) as graphs:
        add_siblings(trial.study, f"trial {trial.number}", measured, done, graphs)
        t0 = time.perf_counter()
        if measured.arch.precision != FP32:
            # Scored as it ships: the reduced graph's own outputs, in ONNX Runtime.
            loss, metric = graph_scores(done, graphs, measured.arch.precision)
            timings["graph_s"] = time.perf_counter() - t0
    if measured.arch.precision == FP32 and ctx.proxy_eval_labels is not None:
        metric = proxy_metric(model, ctx)
        timings["metric_s"] = time.perf_counter() - t0
    value = metric if ctx.objective.maximise and metric is not None else loss
    return replace(
        measured,
        value=value,
        proxy_loss=loss,
        proxy_metric=metric,
        train_loss=done.result.train_loss,
        learning_rate=done.result.learning_rate,
        timings=timings,
    )


def worker() -> str:
    """This process, as trials name the worker that ran them: ``host:pid``."""
    return f"{platform.node()}:{os.getpid()}"


class Collected:
    """Collects what :meth:`TrialRecord.write` writes, for a trial made with ``create_trial``."""

    def __init__(self) -> None:
        self.user_attrs: dict[str, Any] = {}
        self.constraints: dict[str, float] = {}

    def set_user_attr(self, key: str, value: Any) -> None:
        self.user_attrs[key] = value

    def set_constraint(self, key: str, value: float) -> None:
        self.constraints[key] = value


def add_siblings(
    study: optuna.Study,
    source: str,
    measured: TrialRecord,
    done: Distilled,
    graphs: StudentGraphs,
) -> None:
    """Distil once, ship in every precision: the trained student's other precisions as trials.

    Timing a graph and scoring it on the proxy split takes seconds, against the
    distillation's many: each trained architecture fills one point per precision
    of the space, so the fp32 and int8 fronts grow together.

    Args:
        source: Where the trained student comes from (``trial 3``, ``reference``).
        measured: Its record (architecture, parameters).
        done: The distilled student.
        graphs: Its graphs (:func:`context.student_graphs`), shared with its own scoring.
    """
    ctx = graphs.ctx
    spec = ctx.spec
    for precision in spec.space.precision:
        arch = replace(measured.arch, precision=precision)
        if precision == measured.arch.precision or _held(study, arch, spec.space):
            continue
        if len(_taken_trials(study)) >= spec.trials:
            return  # the study has its trials: a sibling counts as one
        t0 = time.perf_counter()
        # Timed over an earlier, smaller budget: measured once per study, as any trial.
        known = _known(study, arch, -1, ctx)
        stats = known.latency if known is not None else graphs.time(precision)
        over = stats.p50_ms - max(spec.budgets)
        loss = metric = None
        if over <= 0:
            if precision == FP32:
                loss = done.loss
                metric = proxy_metric(done.model, ctx) if ctx.proxy_eval_labels else None
            else:
                loss, metric = graph_scores(done, graphs, precision)
        value = ctx.objective.worst if loss is None else loss
        if ctx.objective.maximise and metric is not None:
            value = metric
        record = replace(
            measured,
            number=-1,
            arch=arch,
            value=value,
            latency=stats,
            over_budget_ms=over,
            proxy_loss=loss,
            proxy_metric=metric,
            train_loss=done.result.train_loss,
            learning_rate=done.result.learning_rate,
            cached_from=source,
            timings={"sibling_s": time.perf_counter() - t0},
        )
        collected = Collected()
        record.write(collected)
        if len(_taken_trials(study)) >= spec.trials:
            # Looked at again just before adding: other workers start trials
            # during the seconds the timing takes.
            return
        study.add_trial(
            optuna.trial.create_trial(
                values=[record.value, record.latency_ms],
                params=space.params(arch, spec.space),
                distributions=space.distributions(spec.space),
                user_attrs=collected.user_attrs,
                constraints=collected.constraints,
            )
        )
        log.info(
            "%s in %s: %-20s p50 %6.2f ms  %s %.4f",
            source,
            precision,
            arch.id,
            stats.p50_ms,
            ctx.objective.name,
            value,
        )


@dataclass(frozen=True)
class Requeued:
    """What :func:`requeue_now_fitting` did."""

    queued: tuple[Arch, ...]
    """Queued to train first, one per shape, fastest first."""
    no_room: int
    """Shapes that fit now but for which the study's total left no trial."""


def requeue_now_fitting(study: optuna.Study, ctx: Context) -> Requeued:
    """Queue the architectures timed over an earlier, smaller largest budget that fit now.

    A trial over the largest budget is not trained (:func:`objective`). When a
    later run raises the budgets, such an architecture would stay untrained, and
    so never picked, unless the sampler happened to draw it again. Queued ahead
    of the sampler, each trains on its stored latency (it is not timed again),
    within the study's total. Logs what it queued, and warns of what it could not.
    """
    spec = ctx.spec
    largest = max(spec.budgets)
    trained: set[Arch] = set()
    now_fitting: dict[Arch, float] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        record = TrialRecord.read(t)
        if record.feasible:
            trained.add(record.arch.sizes)
        elif record.latency_ms <= largest and space.contains(spec.space, record.arch):
            now_fitting.setdefault(record.arch, record.latency_ms)
    pending = [
        t.params
        for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING))
    ]
    # One trial per shape: training it times and scores its other precisions too
    # (:func:`add_siblings`), so a shape trained once is not trained again.
    by_shape: dict[Arch, Arch] = {}
    for arch in sorted(now_fitting, key=lambda a: now_fitting[a]):
        if arch.sizes not in trained and space.params(arch, spec.space) not in pending:
            by_shape.setdefault(arch.sizes, arch)
    candidates = list(by_shape.values())
    room = max(0, spec.trials - len(_taken_trials(study)))
    for arch in candidates[:room]:
        study.enqueue_trial(space.params(arch, spec.space))
    done = Requeued(tuple(candidates[:room]), max(0, len(candidates) - room))
    if done.queued:
        log.info(
            "%d architectures timed over an earlier largest budget fit %s now: "
            "queued to train first (%s)",
            len(done.queued),
            format_budget(largest),
            ", ".join(a.id for a in done.queued),
        )
    if done.no_room:
        log.warning(
            "%d more architectures fit %s now but the study's total of %d trials "
            "leaves them untrained: raise --trials to train them",
            done.no_room,
            format_budget(largest),
            spec.trials,
        )
    return done


def _taken_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Trials that count towards the study's total: complete, running or queued."""
    states = (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)
    return study.get_trials(deepcopy=False, states=states)


def _held(study: optuna.Study, arch: Arch, space_spec: SpaceSpec) -> bool:
    """Whether the study holds a trained or running trial of ``arch``.

    A trial over an earlier, smaller largest budget does not hold it: it was
    timed, not trained.
    """
    states = (TrialState.COMPLETE, TrialState.RUNNING)
    wanted = space.params(arch, space_spec)
    return any(
        t.params == wanted and (t.state == TrialState.RUNNING or TrialRecord.read(t).feasible)
        for t in study.get_trials(deepcopy=False, states=states)
    )
