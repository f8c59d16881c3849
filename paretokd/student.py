"""Build a student: the teacher's config with the sampled sizes, and teacher-sliced weights."""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence

import torch
from transformers import AutoModel, PretrainedConfig, PreTrainedModel

from paretokd.space import Arch

# Encoder layers are named "<prefix>.layer.<i>." in BERT, RoBERTa, XLM-R,
# ELECTRA ("encoder.layer") and DistilBERT ("transformer.layer").
_LAYER_RE = re.compile(r"(?<=\.layer\.)(\d+)(?=\.)")


def student_config(arch: Arch, teacher_config: PretrainedConfig) -> PretrainedConfig:
    """The teacher's config with the student's sizes: same family, vocabulary and activation."""
    cfg = copy.deepcopy(teacher_config)
    cfg.num_hidden_layers = arch.num_layers
    cfg.hidden_size = arch.hidden_size
    cfg.num_attention_heads = arch.num_heads
    cfg.intermediate_size = arch.intermediate_size
    cfg.architectures = None  # set again by save_pretrained from the class
    return cfg


def layer_map(n_student: int, n_teacher: int) -> list[int]:
    """The teacher layer (0-based) each student layer copies and imitates.

    Layers are spread uniformly and the last student layer always maps to the
    last teacher layer, whose output is what a user of the model sees.
    """
    return [round((i + 1) * n_teacher / n_student) - 1 for i in range(n_student)]


def kept_dims(order: Sequence[int] | None, width: int) -> list[int]:
    """The teacher's residual dimensions a student of ``width`` keeps, in their original order.

    Args:
        order: The teacher's residual dimensions, most important first
            (``distill.residual_order``); ``None`` keeps the leading ones.
        width: The student's hidden size.
    """
    return sorted(order[:width]) if order is not None else list(range(width))


def build(
    arch: Arch,
    teacher: PreTrainedModel,
    teacher_init: bool = True,
    residual_order: Sequence[int] | None = None,
) -> PreTrainedModel:
    """Build a student of ``arch`` from the teacher's family.

    With ``teacher_init`` every student tensor starts as a slice of the teacher
    tensor it corresponds to (student layer ``i`` takes teacher layer
    ``layer_map(...)[i]``), which trains far faster than a random start. Along
    every axis of the teacher's hidden size, the slice keeps the dimensions
    :func:`kept_dims` names: the teacher's most energetic residual dimensions
    carry most of what the student must reproduce (on MiniLM, the top 128 of 384
    hold 64% of the energy, the first 128 only 32%). Other axes (vocabulary,
    positions, FFN units) keep their leading entries.
    """
    cfg = student_config(arch, teacher.config)
    student = AutoModel.from_config(cfg)
    if teacher_init:
        mapping = layer_map(arch.num_layers, teacher.config.num_hidden_layers)
        width = teacher.config.hidden_size
        keep = torch.tensor(kept_dims(residual_order, arch.hidden_size))
        source = teacher.state_dict()
        target = student.state_dict()
        with torch.no_grad():
            for name, tensor in target.items():
                tname = _LAYER_RE.sub(lambda m: str(mapping[int(m.group(1))]), name)
                if tname not in source:
                    continue  # e.g. a buffer the teacher does not have: keep the fresh init
                src = source[tname]
                for axis, size in enumerate(tensor.shape):
                    if src.shape[axis] == width and size == arch.hidden_size:
                        src = src.index_select(axis, keep)
                    else:
                        src = src.narrow(axis, 0, size)
                tensor.copy_(src)
    return student


def count_params(model: torch.nn.Module) -> int:
    """Number of parameters of ``model``."""
    return sum(p.numel() for p in model.parameters())
