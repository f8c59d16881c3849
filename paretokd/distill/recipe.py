"""The one recipe every student goes through: built from the teacher, distilled, scored.

The search's trials, the finals, ``validate-proxy`` and the benches all call
:func:`build` and :func:`distill_and_score` with the study's spec, so a final student is
the search's candidate trained for longer, never a differently made model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from transformers import PreTrainedModel

from paretokd.config import StudySpec
from paretokd.distill import device as devices
from paretokd.distill.losses import Projections
from paretokd.distill.targets import TeacherTargets
from paretokd.distill.train import (
    DistillResult,
    Trainee,
    evaluate,
    evaluate_outputs,
    train_together,
)
from paretokd.latency.graph import GraphModel
from paretokd.models import student
from paretokd.records import Arch


@dataclass(frozen=True)
class Slicing:
    """How students are cut from the teacher, measured once per study on the proxy texts."""

    residual_order: list[int]
    """The teacher's residual dimensions, most energetic first (see ``student.build``)."""
    unit_order: list[list[int]]
    """Per teacher layer, its FFN units, most important first (``student.unit_orders``)."""


def build(
    arch: Arch, teacher: PreTrainedModel, spec: StudySpec, slicing: Slicing
) -> PreTrainedModel:
    """A student of ``arch``, initialised from the teacher as the spec says."""
    return student.build(
        arch, teacher, spec.distill.teacher_init, slicing.residual_order, slicing.unit_order
    )


DEFAULT_LEARNING_RATE = 2e-3
"""The one rate every student trained at before rates followed the student (bench reference)."""

RATE_FAR = 5e-3
"""The rule's rate for a student far from the teacher (a small share of its weights)."""
RATE_FAR_LOGITS = 1e-3
"""The same, when the students learn a task head's logits (``task.kind`` not ``agnostic``).

A softened-logit loss sends larger gradients through a sliced student than the
hidden-state loss does: on SST-2 (``bench/learning_rate.py --study
studies/sst2.yaml``) the best rates were 0.15x the hidden-state rule's
(7.5e-4 x (1 - share)^2.8 fitted), and students of two or more layers collapsed
to a loss near 1 at the hidden-state rule's 2e-3 to 5e-3."""
RATE_EXPONENT = 2.5
"""The rule's slope: log(rate) against log(1 - the student's share of the teacher's weights)."""
RATE_MIN = 1e-4
"""The rule's floor: a student of the teacher's size starts at its outputs; it only keeps them."""


def teacher_share(arch: Arch, teacher_dims: Arch) -> float:
    """The student's encoder weights as a share of the teacher's (attention and FFN matrices).

    A student near 1 starts close to the teacher's outputs (it is sliced from
    it) and needs small steps to keep them; a small one has far to go.
    """

    def weights(a: Arch) -> float:
        return a.num_layers * (4 * a.hidden_size**2 + 2 * a.hidden_size * a.intermediate_size)

    return weights(arch.sizes) / weights(teacher_dims.sizes)


def learning_rate(arch: Arch, teacher_dims: Arch, spec: StudySpec) -> float:
    """The rate ``arch`` trains at: the spec's when it names one, else the rule.

    The rule, ``far x (1 - share) ** RATE_EXPONENT`` kept between ``RATE_MIN``
    and ``far`` (share: :func:`teacher_share`), follows the best of six rates for
    eight students of all-MiniLM-L6-v2 in the search's proxy distillation
    (``bench/learning_rate.py``): with the hidden-state loss (``far`` =
    :data:`RATE_FAR`) 5e-3 below a tenth of the teacher, 2e-3 at a third, 1e-3
    at a half, 1e-4 at the teacher's size. A task study's students learn its
    head's logits and take smaller steps (``far`` = :data:`RATE_FAR_LOGITS`).
    The rate depends on the architecture and the loss only, so a final
    distillation replays its trial's rate.
    """
    if spec.distill.learning_rate is not None:
        return spec.distill.learning_rate
    far = RATE_FAR if spec.task.kind == "agnostic" else RATE_FAR_LOGITS
    distance = max(0.0, 1.0 - teacher_share(arch, teacher_dims))
    return min(far, max(RATE_MIN, far * distance**RATE_EXPONENT))


def _train(
    models: Sequence[PreTrainedModel],
    targets: TeacherTargets,
    spec: StudySpec,
    slicing: Slicing,
    steps: int,
    progress: Sequence[Callable[[int, float], None] | None],
    held_out: TeacherTargets | None,
) -> list[tuple[DistillResult, Projections]]:
    teacher_dims = student.sizes(targets.teacher.config)
    trainees = [
        Trainee(
            model,
            learning_rate(student.sizes(model.config), teacher_dims, spec),
            student.kept_dims(slicing.residual_order, model.config.hidden_size),
            tick,
        )
        for model, tick in zip(models, progress, strict=True)
    ]
    return train_together(
        trainees,
        targets,
        steps=steps,
        weight_decay=spec.distill.weight_decay,
        seed=spec.seed,
        task=spec.task,
        device=devices.resolve(spec.distill.device),
        held_out=held_out,
        eval_every=spec.distill.final_eval_every if held_out is not None else 0,
    )


@dataclass(frozen=True)
class Distilled:
    """A student after the recipe: the model, its training and its held-out loss."""

    model: PreTrainedModel
    result: DistillResult
    loss: float
    """Held-out distillation loss (0 = the teacher's outputs, 1 = explains nothing)."""
    projections: Projections
    """The learned maps into the teacher's width (the loss reads the last one)."""


def distill_and_score(
    model: PreTrainedModel,
    train_targets: TeacherTargets,
    held_out: TeacherTargets,
    spec: StudySpec,
    slicing: Slicing,
    steps: int,
    progress: Callable[[int, float], None] | None = None,
    keep_best: bool = False,
) -> Distilled:
    """Train ``model`` for ``steps`` steps with the spec's settings, then its held-out loss.

    ``keep_best`` (the finals): the held-out loss on ``held_out`` (the proxy eval
    split) is measured every ``distill.final_eval_every`` steps too, and the best
    checkpoint is kept.
    """
    (done,) = distill_together(
        [model], train_targets, held_out, spec, slicing, steps, [progress], keep_best
    )
    return done


def distill_together(
    models: Sequence[PreTrainedModel],
    train_targets: TeacherTargets,
    held_out: TeacherTargets,
    spec: StudySpec,
    slicing: Slicing,
    steps: int,
    progress: Sequence[Callable[[int, float], None] | None] | None = None,
    keep_best: bool = False,
) -> list[Distilled]:
    """:func:`distill_and_score` for several students side by side, from one teacher pass.

    Each ends as it would have alone (``train.train_together``); the teacher's
    outputs on each batch are computed once for all of them, which is what the
    finals save when those outputs are too large to keep between students.
    """
    watched = held_out if keep_best else None
    ticks = list(progress) if progress is not None else [None] * len(models)
    trained = _train(models, train_targets, spec, slicing, steps, ticks, watched)
    return [
        Distilled(model, result, evaluate(model, proj, held_out, spec.task), proj)
        for model, (result, proj) in zip(models, trained, strict=True)
    ]


def graph_loss(
    graph: GraphModel, done: Distilled, held_out: TeacherTargets, spec: StudySpec
) -> float:
    """The held-out loss of an exported graph of ``done`` (e.g. its int8 graph), as shipped.

    The same formula as :attr:`Distilled.loss`, on the graph's own outputs in ONNX Runtime.
    """
    return evaluate_outputs(lambda b: graph(**b)[0], done.projections, held_out, spec.task)
