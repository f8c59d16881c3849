"""The objective of one trial: time the sampled student first, then distil it if it can meet a budget."""

from __future__ import annotations

import logging
import os
import platform
import time
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from paretokd import latency
from paretokd.config import StudySpec
from paretokd.models import student
from paretokd.report import dashboard
from paretokd.search import space

log = logging.getLogger(__name__)


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
