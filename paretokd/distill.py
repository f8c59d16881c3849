"""Task-agnostic distillation: multi-layer hidden-state losses and a short training loop.

The loss follows the multilingual KD-NAS recipe: each student layer imitates a
teacher layer (``student.layer_map``) through a learned linear projection when
widths differ. The projections help training only; they are not part of the
exported student.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from transformers import PreTrainedModel
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from paretokd.student import layer_map

Batch = dict[str, Tensor]


def make_batches(
    texts: Sequence[str],
    tokenizer: PreTrainedTokenizerBase,
    batch_size: int,
    max_length: int,
) -> list[Batch]:
    """Tokenise ``texts`` into fixed batches of similar length, each padded to its longest text.

    Texts are grouped by token count before batching (training visits the
    batches in a random order), which halves the padding of random batches.
    Fixed batches let the teacher's outputs be computed once and reused.
    """
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length)
    ids = encoded["input_ids"]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # stable: deterministic
    batches = []
    for start in range(0, len(order), batch_size):
        rows = [{k: encoded[k][i] for k in encoded} for i in order[start : start + batch_size]]
        batches.append(dict(tokenizer.pad(rows, return_tensors="pt")))
    return batches


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


UNTRAINED_LOSS = 1.0
"""The normalised loss of a student that explains nothing (see :func:`normalised_mse`)."""


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
        for h in targets[index]:
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


class TeacherTargets:
    """The teacher's hidden states per batch, computed on first use and optionally kept.

    Kept for the proxy splits (every trial reuses them); recomputed for the full
    training split, whose states would not fit in memory.
    """

    def __init__(self, teacher: PreTrainedModel, batches: list[Batch], keep: bool) -> None:
        self.teacher = teacher
        self.batches = batches
        self.keep = keep
        self._cache: dict[int, list[Tensor]] = {}

    @torch.no_grad()
    def __getitem__(self, index: int) -> list[Tensor]:
        if index in self._cache:
            return self._cache[index]
        out = self.teacher(**self.batches[index], output_hidden_states=True)
        # hidden_states[0] is the embedding output; layers start at 1. fp16
        # halves the memory of the kept states at no cost to the loss.
        states = [h.to(torch.float16) for h in out.hidden_states[1:]]
        if self.keep:
            self._cache[index] = states
        return states

    def __len__(self) -> int:
        return len(self.batches)

    def precompute(self, cache: Path | None = None) -> bool:
        """Compute every batch's states now, so the first trial does not pay for them.

        Args:
            cache: A file to read the states from if it exists, else to write them
                to (the caller's name for it must change whenever the teacher,
                the texts or the batching do).

        Returns:
            True if the states were read from ``cache``.
        """
        if cache is not None and cache.is_file():
            # weights_only: only tensors are read back, nothing is unpickled.
            states = torch.load(cache, weights_only=True)
            if len(states) == len(self):
                self._cache = dict(enumerate(states))
                return True
        for index in range(len(self)):
            self[index]
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            partial = cache.with_name(cache.name + f".{os.getpid()}.partial")
            torch.save([self._cache[i] for i in range(len(self))], partial)
            os.replace(partial, cache)  # concurrent workers never see half a file
        return False


@dataclass(frozen=True)
class DistillResult:
    """What one distillation run produced."""

    steps: int
    train_loss: float
    """Mean training loss over the last 10% of steps."""
    seconds: float


def _student_states(student: PreTrainedModel, batch: Batch) -> list[Tensor]:
    out = student(**batch, output_hidden_states=True)
    return list(out.hidden_states[1:])


def train(
    student: PreTrainedModel,
    targets: TeacherTargets,
    *,
    steps: int,
    learning_rate: float,
    weight_decay: float,
    seed: int,
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
        losses = layer_losses(
            proj(_student_states(student, batch)), targets[index], batch["attention_mask"]
        )
        loss = losses.mean()
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
def evaluate(student: PreTrainedModel, proj: Projections, targets: TeacherTargets) -> float:
    """The held-out normalised MSE on the last layer: what the student's users see.

    Only the last pair counts, so students of any depth are compared on the
    same target (the teacher's output), not on different mixes of layers.
    A diverged student (non-finite loss) scores :data:`UNTRAINED_LOSS`.
    """
    student.eval()
    err = ref = 0.0
    for index in range(len(targets)):
        batch = targets.batches[index]
        last = proj(_student_states(student, batch))[-1]
        e, r = _squared_sums(last, targets[index][-1], batch["attention_mask"])
        err += float(e)
        ref += float(r)
    value = err / max(ref, 1e-12)
    return value if math.isfinite(value) else UNTRAINED_LOSS
