"""The training loop every distillation runs (trials, finals, validate-proxy); held-out scores."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor
from transformers import PreTrainedModel

from paretokd.config import TaskSpec
from paretokd.distill import device as devices
from paretokd.distill.losses import (
    Projections,
    layer_losses,
    logit_loss,
    logit_loss_sums,
    squared_sums,
)
from paretokd.distill.targets import Target, TeacherTargets
from paretokd.latency.graph import GraphModel
from paretokd.records import UNTRAINED_LOSS

Batch = dict[str, Tensor]


@dataclass(frozen=True)
class DistillResult:
    """What one distillation run produced."""

    steps: int
    train_loss: float
    """Mean training loss over the last 10% of steps."""
    seconds: float
    learning_rate: float
    """The peak rate of the schedule."""
    curve: tuple[tuple[int, float], ...] = ()
    """(step, held-out loss) every ``eval_every`` steps and at the last, when asked for."""
    best_step: int | None = None
    """The step whose weights were kept: the lowest held-out loss of :attr:`curve`."""


def _forward(student: PreTrainedModel, batch: Batch) -> tuple[list[Tensor], Tensor | None]:
    out = student(**batch, output_hidden_states=True)
    return list(out.hidden_states[1:]), getattr(out, "logits", None)


def batch_loss(
    student_out: tuple[list[Tensor], Tensor | None],
    target: Target,
    proj: Projections,
    mask: Tensor,
    task: TaskSpec,
) -> Tensor:
    """The training loss of one batch under ``task``'s recipe (see the module docstring)."""
    states, logits = student_out
    if task.kind == "agnostic":
        return layer_losses(proj(states), target.states, mask).mean()
    assert logits is not None and target.logits is not None, "task mode needs heads on both"
    loss = logit_loss(logits, target.logits, task.kind, task.temperature)
    if task.hidden_weight > 0:
        loss = loss + task.hidden_weight * layer_losses(proj(states), target.states, mask).mean()
    return loss


@dataclass(frozen=True)
class Trainee:
    """One student of :func:`train_together`, with what is its own in the recipe."""

    student: PreTrainedModel
    learning_rate: float
    """The schedule's peak rate."""
    kept_dims: Sequence[int] | None = None
    """The teacher's residual dimensions the student kept (its projections start there)."""
    progress: Callable[[int, float], None] | None = None
    """Called with (step, loss) after every step."""


def train(
    student: PreTrainedModel,
    targets: TeacherTargets,
    *,
    steps: int,
    learning_rate: float,
    weight_decay: float,
    seed: int,
    task: TaskSpec,
    kept_dims: Sequence[int] | None = None,
    progress: Callable[[int, float], None] | None = None,
    device: torch.device | None = None,
    held_out: TeacherTargets | None = None,
    eval_every: int = 0,
) -> tuple[DistillResult, Projections]:
    """Distil ``student`` for ``steps`` steps on the batches of ``targets``.

    Batches are visited in a seeded random order, epoch after epoch. The learning
    rate warms up over the first 10% of steps and decays linearly to zero.
    Training runs on ``device`` (the CPU by default; bf16 autocast where it
    pays, see ``distill.device``); the student and the projections are back on
    the CPU when it returns. With ``held_out`` and ``eval_every``, the held-out
    loss is measured every ``eval_every`` steps and at the last, and the weights
    of the best of those steps are the ones returned (the final recipe).

    Returns:
        The result and the trained projections (needed by :func:`evaluate`).
    """
    (out,) = train_together(
        [Trainee(student, learning_rate, kept_dims, progress)],
        targets,
        steps=steps,
        weight_decay=weight_decay,
        seed=seed,
        task=task,
        device=device,
        held_out=held_out,
        eval_every=eval_every,
    )
    return out


def train_together(
    trainees: Sequence[Trainee],
    targets: TeacherTargets,
    *,
    steps: int,
    weight_decay: float,
    seed: int,
    task: TaskSpec,
    device: torch.device | None = None,
    held_out: TeacherTargets | None = None,
    eval_every: int = 0,
) -> list[tuple[DistillResult, Projections]]:
    """:func:`train` for several students side by side, from one pass of the teacher.

    Every student visits the same batches in the same order, so each batch's
    teacher outputs are computed once and every student takes its step on them.
    Each student keeps its own random stream (dropout), so it ends exactly as
    :func:`train` alone would have left it.
    """
    device = device or torch.device("cpu")
    width = targets.teacher.config.hidden_size
    runs = [
        _Training(t, width, steps, weight_decay, seed, task, device, held_out, eval_every)
        for t in trainees
    ]
    gen = torch.Generator().manual_seed(seed)
    order: list[int] = []
    for step in range(steps):
        if not order:
            order = torch.randperm(len(targets), generator=gen).tolist()
        index = order.pop()
        start = time.perf_counter()
        batch = devices.to(targets.batches[index], device)
        target = targets[index]  # the teacher's outputs: once for every student
        waited = time.perf_counter() - start
        for run in runs:
            run.seconds += waited  # each student's seconds count the outputs it trained on
            run.step(step, batch, target)
    return [run.finish() for run in runs]


class _Training:
    """One student's training: projections, optimiser, schedule, random stream, best weights."""

    def __init__(
        self,
        trainee: Trainee,
        teacher_width: int,
        steps: int,
        weight_decay: float,
        seed: int,
        task: TaskSpec,
        device: torch.device,
        held_out: TeacherTargets | None,
        eval_every: int,
    ) -> None:
        self.trainee, self.steps, self.task, self.device = trainee, steps, task, device
        self.held_out = held_out if eval_every > 0 else None
        self.eval_every = eval_every
        self.best = _Best()
        torch.manual_seed(seed)
        student = trainee.student
        self.proj = Projections(
            student.config.num_hidden_layers,
            student.config.hidden_size,
            teacher_width,
            trainee.kept_dims,
        )
        student.to(device)  # type: ignore[arg-type]  # transformers types .to narrowly
        self.proj.to(device)
        self.params = list(student.parameters()) + list(self.proj.parameters())
        # The fused kernel: one pass over each tensor instead of several (on CPU,
        # 9 ms a step against 72 ms for a student with the teacher's width).
        self.optim = torch.optim.AdamW(
            self.params, lr=trainee.learning_rate, weight_decay=weight_decay, fused=True
        )
        warmup = max(1, steps // 10)
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.optim,
            lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(1, steps - warmup))),
        )
        self.tail: list[float] = []
        self.seconds = 0.0
        self.rng = _rng_state(device)  # this student's own stream from here on
        student.train()

    def step(self, step: int, batch: Batch, target: Target) -> None:
        """One optimiser step on ``batch`` against the teacher's ``target``."""
        start = time.perf_counter()
        _set_rng_state(self.rng, self.device)
        student = self.trainee.student
        with devices.autocast(self.device):
            states, logits = _forward(student, batch)
        # The loss in fp32 whatever the forward pass ran in.
        out = [h.float() for h in states], logits.float() if logits is not None else None
        loss = batch_loss(out, target, self.proj, batch["attention_mask"], self.task)
        self.optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.optim.step()
        self.sched.step()
        if step >= self.steps - max(1, self.steps // 10):
            self.tail.append(loss.item())
        if self.trainee.progress is not None:
            self.trainee.progress(step + 1, loss.item())
        last = step + 1 == self.steps
        if self.held_out is not None and ((step + 1) % self.eval_every == 0 or last):
            self.best.look(
                step + 1, evaluate(student, self.proj, self.held_out, self.task), student, self.proj
            )
            student.train()
        self.rng = _rng_state(self.device)
        self.seconds += time.perf_counter() - start

    def finish(self) -> tuple[DistillResult, Projections]:
        """The student's best weights restored, it and its projections back on the CPU."""
        student = self.trainee.student
        student.eval()
        self.best.restore(student, self.proj)
        student.to("cpu")  # type: ignore[arg-type]
        self.proj.to("cpu")
        result = DistillResult(
            steps=self.steps,
            train_loss=sum(self.tail) / len(self.tail),
            seconds=self.seconds,
            learning_rate=self.trainee.learning_rate,
            curve=tuple(self.best.curve),
            best_step=self.best.step,
        )
        return result, self.proj


def _rng_state(device: torch.device) -> tuple[Tensor, Tensor | None]:
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.random.get_rng_state(), cuda


def _set_rng_state(state: tuple[Tensor, Tensor | None], device: torch.device) -> None:
    torch.random.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


@dataclass
class _Best:
    """The held-out curve of a training, and a copy of its best weights so far."""

    curve: list[tuple[int, float]] = field(default_factory=list)
    step: int | None = None
    loss: float = math.inf
    states: tuple[dict[str, Tensor], dict[str, Tensor]] | None = None

    def look(self, step: int, loss: float, student: torch.nn.Module, proj: Projections) -> None:
        """Record ``loss`` at ``step``; keep the weights when it is the best so far."""
        self.curve.append((step, loss))
        if loss < self.loss:
            self.step, self.loss = step, loss
            self.states = (_copy(student), _copy(proj))

    def restore(self, student: torch.nn.Module, proj: Projections) -> None:
        """Put the best weights back, unless the last step was the best."""
        if self.states is not None and self.step != self.curve[-1][0]:
            student.load_state_dict(self.states[0])
            proj.load_state_dict(self.states[1])


def _copy(module: torch.nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@torch.no_grad()
def evaluate(
    student: PreTrainedModel, proj: Projections, targets: TeacherTargets, task: TaskSpec
) -> float:
    """The held-out normalised loss on what the student's users see (0 = the teacher, 1 = nothing).

    Task-agnostic, the last layer's normalised MSE: only the last pair counts,
    so students of any depth are compared on the same target (the teacher's
    output), not on different mixes of layers. With a head, the logit loss of
    :func:`logit_loss_sums`. A diverged student (non-finite loss) scores
    :data:`UNTRAINED_LOSS`.
    """
    student.eval()
    device = next(student.parameters()).device

    def last(batch: Batch) -> Tensor:
        states, logits = _forward(student, devices.to(batch, device))
        return states[-1] if task.kind == "agnostic" else logits  # type: ignore[return-value]

    return _held_out(last, proj, targets, task)


@torch.no_grad()
def evaluate_outputs(
    outputs: Callable[[Batch], Tensor], proj: Projections, targets: TeacherTargets, task: TaskSpec
) -> float:
    """:func:`evaluate` on another runtime's outputs, e.g. an exported (int8) graph's.

    ``outputs(batch)`` is the model's first output: the last hidden states, or the logits.
    """
    return _held_out(lambda batch: outputs(batch).float(), proj, targets, task)


def _held_out(
    last: Callable[[Batch], Tensor], proj: Projections, targets: TeacherTargets, task: TaskSpec
) -> float:
    baseline = torch.zeros(())
    if task.kind == "regression":
        outputs = [targets[i].logits for i in range(len(targets))]
        outputs = [o.cpu() if o is not None else None for o in outputs]
        baseline = torch.cat([o for o in outputs if o is not None]).mean(dim=0)
    err = ref = 0.0
    for index in range(len(targets)):
        batch, target = targets.batches[index], targets[index]
        # Scored where the outputs are: the student's device (the projections are there too).
        out = last(batch).float()
        device = out.device
        if task.kind == "agnostic":
            mask = batch["attention_mask"].to(device)
            e, r = squared_sums(proj.maps[-1](out), target.states[-1].to(device), mask)
        else:
            assert target.logits is not None
            e, r = logit_loss_sums(out, target.logits.to(device), task.kind, baseline.to(device))
        err += float(e)
        ref += float(r)
    value = err / max(ref, 1e-12)
    return value if math.isfinite(value) else UNTRAINED_LOSS


@torch.no_grad()
def predict(model: PreTrainedModel | GraphModel, batches: Sequence[Batch]) -> Tensor:
    """The head's outputs on ``batches``, concatenated in batch order (fp32)."""
    model.eval()
    return torch.cat([model(**batch).logits.float() for batch in batches])
