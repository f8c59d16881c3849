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
    device = device or torch.device("cpu")
    best = _Best()
    torch.manual_seed(seed)
    teacher_width = targets.teacher.config.hidden_size
    proj = Projections(
        student.config.num_hidden_layers, student.config.hidden_size, teacher_width, kept_dims
    )
    student.to(device)  # type: ignore[arg-type]  # transformers types .to narrowly
    proj.to(device)
    params = list(student.parameters()) + list(proj.parameters())
    optim = torch.optim.AdamW(params, lr=learning_rate, weight_decay=weight_decay)
    warmup = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        optim, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(1, steps - warmup)))
    )
    gen = torch.Generator().manual_seed(seed)
    order: list[int] = []
    tail: list[float] = []
    student.train()
    start = time.perf_counter()
    for step in range(steps):
        if not order:
            order = torch.randperm(len(targets), generator=gen).tolist()
        index = order.pop()
        batch = devices.to(targets.batches[index], device)
        with devices.autocast(device):
            states, logits = _forward(student, batch)
        # The loss in fp32 whatever the forward pass ran in.
        out = [h.float() for h in states], logits.float() if logits is not None else None
        loss = batch_loss(out, targets[index], proj, batch["attention_mask"], task)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optim.step()
        sched.step()
        if step >= steps - max(1, steps // 10):
            tail.append(loss.item())
        if progress is not None:
            progress(step + 1, loss.item())
        scored = held_out is not None and eval_every > 0
        if scored and ((step + 1) % eval_every == 0 or step + 1 == steps):
            assert held_out is not None
            best.look(step + 1, evaluate(student, proj, held_out, task), student, proj)
            student.train()
    student.eval()
    best.restore(student, proj)
    student.to("cpu")  # type: ignore[arg-type]
    proj.to("cpu")
    result = DistillResult(
        steps=steps,
        train_loss=sum(tail) / len(tail),
        seconds=time.perf_counter() - start,
        learning_rate=learning_rate,
        curve=tuple(best.curve),
        best_step=best.step,
    )
    return result, proj


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
