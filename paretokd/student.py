"""Build a student: the teacher's config with the sampled sizes, and teacher-sliced weights."""

from __future__ import annotations

import copy
import re

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


def build(arch: Arch, teacher: PreTrainedModel, teacher_init: bool = True) -> PreTrainedModel:
    """Build a student of ``arch`` from the teacher's family.

    With ``teacher_init`` every student tensor starts as the leading slice of the
    teacher tensor it corresponds to (student layer ``i`` takes teacher layer
    ``layer_map(...)[i]``), which trains far faster than a random start.
    """
    cfg = student_config(arch, teacher.config)
    student = AutoModel.from_config(cfg)
    if teacher_init:
        mapping = layer_map(arch.num_layers, teacher.config.num_hidden_layers)
        source = teacher.state_dict()
        target = student.state_dict()
        with torch.no_grad():
            for name, tensor in target.items():
                tname = _LAYER_RE.sub(lambda m: str(mapping[int(m.group(1))]), name)
                if tname not in source:
                    continue  # e.g. a buffer the teacher does not have: keep the fresh init
                src = source[tname]
                tensor.copy_(src[tuple(slice(0, n) for n in tensor.shape)])
    return student


def count_params(model: torch.nn.Module) -> int:
    """Number of parameters of ``model``."""
    return sum(p.numel() for p in model.parameters())
