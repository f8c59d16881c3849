"""The comparison models: the hand-crafted student (every other teacher layer), the int8 teacher."""

from __future__ import annotations

from dataclasses import replace

import optuna
import torch

from paretokd.distill import scoring
from paretokd.distill.losses import Projections
from paretokd.distill.train import evaluate_outputs
from paretokd.latency.graph import GraphModel
from paretokd.models import student
from paretokd.models.teacher import Teacher
from paretokd.records import Arch, ReferenceStudent, TrialRecord
from paretokd.search import claims, space
from paretokd.search.context import (
    Context,
    anchor_onnx,
    build_student,
    proxy_distill,
    proxy_metric,
    reduced_precision,
    student_graphs,
    time_onnx,
    time_student,
)
from paretokd.search.trial import REFERENCE_ATTR, add_siblings, worker


def handcrafted_arch(teacher: Teacher) -> Arch:
    """The DistilBERT-style reference: the teacher with every other layer kept."""
    d = teacher.dims
    return Arch(max(1, d.num_layers // 2), d.hidden_size, d.num_heads, d.intermediate_size)


def enqueue(study: optuna.Study, ctx: Context) -> bool:
    """Make the hand-crafted student the first trial of a new study, if the space holds it.

    The search then starts from the DistilBERT-style baseline, so no pick at its
    latency can be worse than it.

    Returns:
        True if it was enqueued.
    """
    arch = handcrafted_arch(ctx.teacher)
    if not space.contains(ctx.spec.space, arch) or study.get_trials(deepcopy=False):
        return False
    study.enqueue_trial(space.params(arch, ctx.spec.space))
    return True


def measure(study: optuna.Study, ctx: Context) -> ReferenceStudent:
    """Measure and proxy-distil the hand-crafted student under the trials' own settings.

    Stored in the study, so every pick can be shown against it and a rerun
    does not pay for it again.
    """
    stored = study.user_attrs.get(REFERENCE_ATTR)
    if stored is not None:
        return ReferenceStudent.from_json(stored)
    arch = handcrafted_arch(ctx.teacher)
    model = build_student(arch, ctx)
    stats = time_student(model, ctx)
    done = proxy_distill(model, ctx)
    reference = ReferenceStudent(
        arch=arch,
        params=student.count_params(model),
        latency=stats,
        proxy_loss=done.loss,
        proxy_metric=proxy_metric(model, ctx) if ctx.proxy_eval_labels is not None else None,
    )
    study.set_user_attr(REFERENCE_ATTR, reference.to_json())
    # Its other precisions (the int8 hand-crafted student) join the study as trials.
    value = reference.value(ctx.objective)
    measured = TrialRecord(
        number=-1,
        arch=arch,
        params=reference.params,
        value=ctx.objective.worst if value is None else value,
        latency=stats,
        over_budget_ms=stats.p50_ms - max(ctx.spec.budgets),
        worker=worker(),
    )
    with student_graphs(done.model, ctx) as graphs:
        add_siblings(study, "reference", measured, done, graphs)
    return reference


QUANTIZED_TEACHER_ATTR = "quantized_teacher"
"""Study user attribute holding the reduced-precision teacher's :class:`ReferenceStudent`."""


def measure_quantized_teacher(study: optuna.Study, ctx: Context) -> ReferenceStudent:
    """The teacher itself in reduced precision: the cheapest alternative to any student.

    Timed like an int8 candidate (so paired with itself: its own calibration, with
    an interval) and scored on its graph's own outputs against the fp32 teacher's.
    Stored in the study.
    """
    stored = study.user_attrs.get(QUANTIZED_TEACHER_ATTR)
    if stored is not None:
        return ReferenceStudent.from_json(stored)
    precision = reduced_precision(ctx.spec)
    path = anchor_onnx(ctx, precision)
    graph = GraphModel(path, ctx.spec.latency)
    width = ctx.teacher.dims.hidden_size
    loss = evaluate_outputs(
        lambda b: graph(**b)[0], Projections(1, width, width), ctx.proxy_eval, ctx.spec.task
    )
    metric = None
    if ctx.proxy_eval_labels is not None:
        logits = torch.cat([graph(**b).logits.float() for b in ctx.proxy_eval.batches])
        task = ctx.spec.task
        metric = scoring.metric_of(logits, ctx.proxy_eval_labels, task.kind, task.resolved_metric)
    record = ReferenceStudent(
        arch=replace(ctx.teacher.dims, precision=precision),
        params=ctx.teacher.params,
        latency=time_onnx(path, ctx, precision, ctx.spec.latency.confirm_rounds),
        proxy_loss=loss,
        proxy_metric=metric,
        name=f"teacher, {precision}",
    )
    study.set_user_attr(QUANTIZED_TEACHER_ATTR, record.to_json())
    return record


def measure_both(study: optuna.Study, ctx: Context) -> tuple[ReferenceStudent, ReferenceStudent]:
    """The hand-crafted student (:func:`measure`) and the quantised teacher, once per study.

    Workers started together share them: each is a unit of work claimed through
    the storage (round ``<study>.references.<n>``), so two workers measure one
    each, and none measures either twice. Measured twice, the hand-crafted
    student's int8 sibling would join the study twice, and the timings of two
    processes would load the machine under each other.

    Returns:
        The hand-crafted student and the quantised teacher, as stored in the study.
    """
    measures = {"reference": (REFERENCE_ATTR, measure)}
    measures["quantized teacher"] = (QUANTIZED_TEACHER_ATTR, measure_quantized_teacher)
    missing = [unit for unit, (attr, _) in measures.items() if attr not in study.user_attrs]
    if missing:
        key = ",".join(missing)
        rnd = claims.open_round(study, "references", key, key, missing, missing)
        claims.work(rnd, lambda unit: measures[unit][1](study, ctx).to_json())
    # Stored by whichever worker measured them: read back.
    return measure(study, ctx), measure_quantized_teacher(study, ctx)
