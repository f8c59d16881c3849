"""Distillation: the losses (pure functions) and a short training loop.

Task-agnostic (``task.kind: agnostic``), the loss follows the multilingual
KD-NAS recipe: each student layer imitates a teacher layer
(``student.layer_map``) through a learned linear projection when widths
differ. The projections help training only; they are not part of the exported
student. With a task head (the first KD-NAS paper's setting), the student
learns the teacher's logits: temperature-scaled KL for classification, MSE for
regression, optionally plus the hidden-state term.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import PreTrainedModel
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from paretokd.config import TaskSpec
from paretokd.data import Text
from paretokd.metrics import UNTRAINED_LOSS
from paretokd.student import layer_map

Batch = dict[str, Tensor]


def tokenize(
    texts: Sequence[Text], tokenizer: PreTrainedTokenizerBase, max_length: int
) -> dict[str, list[list[int]]]:
    """Tokenise single texts, or sentence pairs as the model's family joins them."""
    if texts and isinstance(texts[0], tuple):
        firsts = [t[0] for t in texts]
        seconds = [t[1] for t in texts]
        return dict(tokenizer(firsts, seconds, truncation=True, max_length=max_length))
    return dict(tokenizer(list(texts), truncation=True, max_length=max_length))


def make_batches(
    texts: Sequence[Text],
    tokenizer: PreTrainedTokenizerBase,
    batch_size: int,
    max_length: int,
) -> tuple[list[Batch], list[int]]:
    """Tokenise ``texts`` into fixed batches of similar length, each padded to its longest text.

    Texts are grouped by token count before batching (training visits the
    batches in a random order), which halves the padding of random batches.
    Fixed batches let the teacher's outputs be computed once and reused.

    Returns:
        The batches, and the index in ``texts`` of each row, in batch order
        (to line up gold labels with predictions).
    """
    encoded = tokenize(texts, tokenizer, max_length)
    ids = encoded["input_ids"]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # stable: deterministic
    batches = []
    for start in range(0, len(order), batch_size):
        rows = [{k: encoded[k][i] for k in encoded} for i in order[start : start + batch_size]]
        batches.append(dict(tokenizer.pad(rows, return_tensors="pt")))
    return batches, order


def _squared_sums(student: Tensor, teacher: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    m = mask.unsqueeze(-1).to(student.dtype)
    teacher = teacher.to(student.dtype)
    return ((student - teacher) ** 2 * m).sum(), (teacher**2 * m).sum()


def normalised_mse(student: Tensor, teacher: Tensor, mask: Tensor) -> Tensor:
    """Mean squared error over real tokens, divided by the teacher's mean square.

    Scale-free, so layers of different magnitude weigh the same; 1.0 is what a
    student that predicts zeros scores, and 0.0 is a perfect copy.
    """
    err, ref = _squared_sums(student, teacher, mask)
    return err / ref.clamp_min(1e-12)


def logit_loss(student: Tensor, teacher: Tensor, kind: str, temperature: float) -> Tensor:
    """The training loss on logits: KL(teacher || student) at ``temperature``, or MSE.

    The KL is scaled by ``temperature ** 2`` so its gradients keep their size
    whatever the temperature (Hinton et al.'s convention).
    """
    teacher = teacher.to(student.dtype)
    if kind == "regression":
        return F.mse_loss(student, teacher)
    t = temperature
    kl = F.kl_div(
        F.log_softmax(student / t, dim=-1),
        F.log_softmax(teacher / t, dim=-1),
        log_target=True,
        reduction="batchmean",
    )
    return kl * t * t


def logit_loss_sums(
    student: Tensor, teacher: Tensor, kind: str, baseline: Tensor
) -> tuple[Tensor, Tensor]:
    """The held-out logit loss, summed, and what a student that knows nothing would score.

    Classification: KL(teacher || student) at temperature 1 (the distribution
    users see) against KL(teacher || uniform). Regression: squared error against
    the squared error of predicting ``baseline`` (the teacher's mean output).
    Their ratio is 1.0 for an uninformed student and 0.0 for a perfect copy, like
    :func:`normalised_mse`.
    """
    teacher = teacher.to(student.dtype)
    if kind == "regression":
        return ((student - teacher) ** 2).sum(), ((teacher - baseline) ** 2).sum()
    log_t = F.log_softmax(teacher, dim=-1)
    p_t = log_t.exp()
    kl = (p_t * (log_t - F.log_softmax(student, dim=-1))).sum()
    uniform = (p_t * (log_t + math.log(teacher.shape[-1]))).sum()
    return kl, uniform


class Projections(nn.Module):
    """One linear map per student layer into the teacher's width (identity when equal).

    A map starts by putting each student feature back at the teacher dimension
    it was sliced from (``kept``, see ``student.kept_dims``), so a
    teacher-initialised student starts close to its teacher, and training
    refines it.
    """

    def __init__(
        self,
        n_layers: int,
        student_width: int,
        teacher_width: int,
        kept: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.maps = nn.ModuleList(
            nn.Identity()
            if student_width == teacher_width
            else _scatter(student_width, teacher_width, kept)
            for _ in range(n_layers)
        )

    def forward(self, states: Sequence[Tensor]) -> list[Tensor]:
        """Project each student layer's hidden states."""
        return [proj(h) for proj, h in zip(self.maps, states, strict=True)]


def _scatter(student_width: int, teacher_width: int, kept: Sequence[int] | None) -> nn.Linear:
    layer = nn.Linear(student_width, teacher_width)
    rows = torch.tensor(list(kept) if kept is not None else range(student_width))
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.zero_()
        layer.weight[rows, torch.arange(student_width)] = 1.0
    return layer


def residual_order(targets: TeacherTargets) -> list[int]:
    """The teacher's residual dimensions, most energetic first, over every layer and real token.

    Students sliced from the teacher keep the head of this list (``student.build``).
    """
    energy: Tensor | None = None
    for index in range(len(targets)):
        mask = targets.batches[index]["attention_mask"].unsqueeze(-1)
        for h in targets[index].states:
            e = (h.float() ** 2 * mask).sum(dim=(0, 1))
            energy = e if energy is None else energy + e
    assert energy is not None, "no batches"
    # stable: equal energies keep their index order, so the result is deterministic
    return torch.argsort(energy, descending=True, stable=True).tolist()


def layer_losses(
    student_states: Sequence[Tensor],
    teacher_states: Sequence[Tensor],
    mask: Tensor,
) -> Tensor:
    """Per-layer normalised MSE between projected student layers and their teacher layers.

    Args:
        student_states: One tensor per student layer (already projected), in order.
        teacher_states: Every teacher layer's output (embeddings excluded), in order.
        mask: The attention mask, 1 on real tokens.

    Returns:
        A 1-D tensor, one loss per student layer.
    """
    mapping = layer_map(len(student_states), len(teacher_states))
    return torch.stack(
        [
            normalised_mse(s, teacher_states[t], mask)
            for s, t in zip(student_states, mapping, strict=True)
        ]
    )


@dataclass(frozen=True)
class Target:
    """The teacher's outputs on one batch."""

    states: list[Tensor]
    """Every layer's hidden states (embeddings excluded), fp16."""
    logits: Tensor | None
    """The head's outputs (fp32), for a teacher with a task head."""


class TeacherTargets:
    """The teacher's outputs per batch, computed on first use and optionally kept.

    Kept for the proxy splits (every trial reuses them); recomputed for the full
    training split, whose states would not fit in memory.
    """

    def __init__(self, teacher: PreTrainedModel, batches: list[Batch], keep: bool) -> None:
        self.teacher = teacher
        self.batches = batches
        self.keep = keep
        self._cache: dict[int, Target] = {}

    @torch.no_grad()
    def __getitem__(self, index: int) -> Target:
        if index in self._cache:
            return self._cache[index]
        out = self.teacher(**self.batches[index], output_hidden_states=True)
        # hidden_states[0] is the embedding output; layers start at 1. fp16
        # halves the memory of the kept states at no cost to the loss.
        states = [h.to(torch.float16) for h in out.hidden_states[1:]]
        logits = getattr(out, "logits", None)
        target = Target(states, logits.float() if logits is not None else None)
        if self.keep:
            self._cache[index] = target
        return target

    def __len__(self) -> int:
        return len(self.batches)

    def precompute(self, cache: Path | None = None) -> bool:
        """Compute every batch's outputs now, so the first trial does not pay for them.

        Args:
            cache: A file to read the outputs from if it exists, else to write them
                to (the caller's name for it must change whenever the teacher,
                the texts or the batching do).

        Returns:
            True if the outputs were read from ``cache``.
        """
        if cache is not None and cache.is_file():
            # weights_only: only tensors are read back, nothing is unpickled.
            stored = torch.load(cache, weights_only=True)
            if len(stored) == len(self):
                self._cache = {
                    i: Target(list(item["states"]), item.get("logits"))
                    for i, item in enumerate(stored)
                }
                return True
        for index in range(len(self)):
            self[index]
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            partial = cache.with_name(cache.name + f".{os.getpid()}.partial")
            stored = []
            for i in range(len(self)):
                item: dict[str, object] = {"states": self._cache[i].states}
                if self._cache[i].logits is not None:
                    item["logits"] = self._cache[i].logits
                stored.append(item)
            torch.save(stored, partial)
            os.replace(partial, cache)  # concurrent workers never see half a file
        return False


@dataclass(frozen=True)
class DistillResult:
    """What one distillation run produced."""

    steps: int
    train_loss: float
    """Mean training loss over the last 10% of steps."""
    seconds: float


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
) -> tuple[DistillResult, Projections]:
    """Distil ``student`` for ``steps`` steps on the batches of ``targets``.

    Batches are visited in a seeded random order, epoch after epoch. The learning
    rate warms up over the first 10% of steps and decays linearly to zero.

    Returns:
        The result and the trained projections (needed by :func:`evaluate`).
    """
    torch.manual_seed(seed)
    teacher_width = targets.teacher.config.hidden_size
    proj = Projections(
        student.config.num_hidden_layers, student.config.hidden_size, teacher_width, kept_dims
    )
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
        batch = targets.batches[index]
        loss = batch_loss(
            _forward(student, batch), targets[index], proj, batch["attention_mask"], task
        )
        optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optim.step()
        sched.step()
        if step >= steps - max(1, steps // 10):
            tail.append(loss.item())
        if progress is not None:
            progress(step + 1, loss.item())
    student.eval()
    result = DistillResult(
        steps=steps, train_loss=sum(tail) / len(tail), seconds=time.perf_counter() - start
    )
    return result, proj


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
    baseline = torch.zeros(())
    if task.kind == "regression":
        outputs = [targets[i].logits for i in range(len(targets))]
        baseline = torch.cat([o for o in outputs if o is not None]).mean(dim=0)
    err = ref = 0.0
    for index in range(len(targets)):
        batch, target = targets.batches[index], targets[index]
        states, logits = _forward(student, batch)
        if task.kind == "agnostic":
            e, r = _squared_sums(proj(states)[-1], target.states[-1], batch["attention_mask"])
        else:
            assert logits is not None and target.logits is not None
            e, r = logit_loss_sums(logits, target.logits, task.kind, baseline)
        err += float(e)
        ref += float(r)
    value = err / max(ref, 1e-12)
    return value if math.isfinite(value) else UNTRAINED_LOSS


@torch.no_grad()
def predict(model: PreTrainedModel, batches: Sequence[Batch]) -> Tensor:
    """The head's outputs on ``batches``, concatenated in batch order (fp32)."""
    model.eval()
    return torch.cat([model(**batch).logits.float() for batch in batches])
