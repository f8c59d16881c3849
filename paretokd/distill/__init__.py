"""Distillation: the losses (pure), the teacher's outputs, the one training loop, the finals.

Knows torch and transformers, not Optuna.
"""

from paretokd.distill.losses import (
    Projections,
    layer_losses,
    logit_loss,
    logit_loss_sums,
    normalised_mse,
)
from paretokd.distill.targets import (
    Batch,
    Target,
    TeacherTargets,
    make_batches,
    residual_order,
    tokenize,
)
from paretokd.distill.train import DistillResult, batch_loss, evaluate, predict, train
from paretokd.records import UNTRAINED_LOSS

__all__ = [
    "UNTRAINED_LOSS",
    "Batch",
    "DistillResult",
    "Projections",
    "Target",
    "TeacherTargets",
    "batch_loss",
    "evaluate",
    "layer_losses",
    "logit_loss",
    "logit_loss_sums",
    "make_batches",
    "normalised_mse",
    "predict",
    "residual_order",
    "tokenize",
    "train",
]
