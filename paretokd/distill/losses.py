"""The distillation losses: pure functions of student and teacher outputs.

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
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from paretokd.models.student import layer_map

Batch = dict[str, Tensor]


def squared_sums(student: Tensor, teacher: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    m = mask.unsqueeze(-1).to(student.dtype)
    teacher = teacher.to(student.dtype)
    return ((student - teacher) ** 2 * m).sum(), (teacher**2 * m).sum()


def normalised_mse(student: Tensor, teacher: Tensor, mask: Tensor) -> Tensor:
    """Mean squared error over real tokens, divided by the teacher's mean square.

    Scale-free, so layers of different magnitude weigh the same; 1.0 is what a
    student that predicts zeros scores, and 0.0 is a perfect copy.
    """
    err, ref = squared_sums(student, teacher, mask)
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
