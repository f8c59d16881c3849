"""Build a student: the teacher's config with the sampled sizes, and teacher-sliced weights."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping, Sequence
from typing import cast

import torch
from transformers import PretrainedConfig, PreTrainedModel

from paretokd.errors import ParetokdError
from paretokd.records import Arch

FAMILIES = ("bert", "roberta", "xlm-roberta", "distilbert", "electra")
"""The encoder families (``config.model_type``) students are known to build from."""

# Encoder layers are named "<prefix>.layer.<i>." in BERT, RoBERTa, XLM-R,
# ELECTRA ("encoder.layer") and DistilBERT ("transformer.layer").
_LAYER_RE = re.compile(r"(?<=\.layer\.)(\d+)(?=\.)")

# Tensors with an axis laid out head by head (heads x head size): the rows of
# the query, key and value projections, and the columns of the attention's
# output projection, in both naming schemes of the families.
_HEAD_ROWS_RE = re.compile(
    r"attention\.(self\.(query|key|value)|q_lin|k_lin|v_lin)\.(weight|bias)$"
)
_VALUE_RE = re.compile(r"attention\.(self\.value|v_lin)\.weight$")
_HEAD_COLS_RE = re.compile(r"attention\.(output\.dense|out_lin)\.weight$")

# The config attributes holding (layers, hidden size, heads, FFN width), per
# family; every other family uses BERT's names. DistilBERT's attribute_map
# aliases the first three to BERT's names but not the FFN width: setting
# `intermediate_size` on its config silently adds an unused attribute and
# leaves `hidden_dim`, the FFN width the model is built with, unchanged.
_BERT_SIZE_NAMES = ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size")
_SIZE_NAMES = {"distilbert": ("n_layers", "dim", "n_heads", "hidden_dim")}

# Families whose embeddings have a width of their own, projected to the hidden
# size by `embeddings_project` only when the two differ (ELECTRA).
_EMBEDDING_SIZE = {"electra": "embedding_size"}


def _size_names(config: PretrainedConfig) -> tuple[str, str, str, str]:
    return _SIZE_NAMES.get(config.model_type, _BERT_SIZE_NAMES)


def sizes(config: PretrainedConfig) -> Arch:
    """A model's sizes, in the search space's terms, whatever its family calls them.

    Raises:
        ParetokdError: If the config lacks one of them (not a BERT-like encoder).
    """
    names = _size_names(config)
    missing = [name for name in names if not isinstance(getattr(config, name, None), int)]
    if missing:
        raise ParetokdError(
            f"cannot size a {config.model_type!r} model: its config has no {', '.join(missing)}; "
            f"students build from {', '.join(FAMILIES)} encoders"
        )
    n, h, a, f = (int(getattr(config, name)) for name in names)
    return Arch(n, h, a, f)


def with_sizes(config: PretrainedConfig, arch: Arch) -> PretrainedConfig:
    """A copy of ``config`` with the sizes of ``arch``; ``config`` is left alone.

    An embedding width of its own (ELECTRA's ``embedding_size``) is kept, so
    the student keeps the teacher's embeddings and their projection, with two
    exceptions. If it equals the teacher's hidden size, the teacher has no
    projection and the embeddings follow the hidden size, as BERT's do. If it
    equals the student's hidden size, it is made one narrower (see below).
    """
    cfg = copy.deepcopy(config)
    hidden = sizes(config).hidden_size
    values = (arch.num_layers, arch.hidden_size, arch.num_heads, arch.intermediate_size)
    for name, value in zip(_size_names(config), values, strict=True):
        setattr(cfg, name, value)
    embedding = _EMBEDDING_SIZE.get(config.model_type)
    if embedding is not None:
        size = getattr(config, embedding)
        if size == hidden:
            setattr(cfg, embedding, arch.hidden_size)
        elif size == arch.hidden_size:
            # transformers builds the projection only when the two sizes differ;
            # without it the first layer would read the embeddings unprojected,
            # in a basis the teacher's layers never saw. Dropping the last
            # embedding dimension costs far less: on a random 4x64 ELECTRA with
            # 32-wide embeddings, a 32-wide student starts at a normalised MSE
            # of 0.045 per layer this way, 1.99 (worse than zeros) without.
            setattr(cfg, embedding, size - 1)
    return cfg


def student_config(arch: Arch, teacher_config: PretrainedConfig) -> PretrainedConfig:
    """The teacher's config with the student's sizes: same family, vocabulary, head and labels."""
    cfg = with_sizes(teacher_config, arch)
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


def head_axis(name: str) -> int | None:
    """Which axis of tensor ``name`` runs over attention heads (``None``: none)."""
    if _HEAD_ROWS_RE.search(name):
        return 0
    if _HEAD_COLS_RE.search(name):
        return 1
    return None


def head_importance(model: PreTrainedModel, layer: int) -> list[float]:
    """A data-free importance of each attention head of ``layer``: how much it can write.

    The Frobenius norm of the head's slice of the value projection times that of
    the output projection: a head whose values or output map are small adds
    little to the residual stream, whatever it attends to.
    """
    dims = sizes(model.config)
    head = dims.hidden_size // dims.num_heads
    in_layer = {n: t for n, t in model.state_dict().items() if _in_layer(n, layer)}
    value = next(t for n, t in in_layer.items() if _VALUE_RE.search(n))
    output = next(t for n, t in in_layer.items() if _HEAD_COLS_RE.search(n))
    return [
        float(value[h * head : (h + 1) * head].norm() * output[:, h * head : (h + 1) * head].norm())
        for h in range(dims.num_heads)
    ]


@torch.no_grad()
def unit_orders(
    model: PreTrainedModel, batches: Sequence[Mapping[str, torch.Tensor]]
) -> list[list[int]]:
    """Each layer's FFN units, most important first, measured on ``batches``.

    A unit's importance is the root-mean-square of its activation over real
    tokens times the norm of its output weights: the typical size of what it
    writes to the residual stream. (A data-free score, input times output
    weight norms, did not help: after 30 proxy steps it was worse than keeping
    the leading units for two of four MiniLM students; this one was better
    for all four.) :class:`UnitImportance` records the same while the model
    runs for something else.

    Returns:
        One list per teacher layer, of unit indices.
    """
    with UnitImportance(model) as units:
        for batch in batches:
            model(**batch)
    return units.orders()


class UnitImportance:
    """Records each layer's FFN activations while ``model`` runs: :func:`unit_orders`'s score.

    Used around the teacher's pass for its targets, so ranking the units needs
    no pass of its own. The activation is the down-projection's input, found by
    shape (the layer's only linear map from the FFN width to the hidden size),
    so every family's naming works; the real tokens are read from each call's
    ``attention_mask``.
    """

    def __init__(self, model: PreTrainedModel) -> None:
        self.model = model
        self.dims = sizes(model.config)
        self.downs: dict[int, torch.nn.Linear] = {}
        for name, module in model.named_modules():
            layer = _LAYER_RE.search(name + ".")
            if (
                layer is not None
                and isinstance(module, torch.nn.Linear)
                and (module.in_features, module.out_features)
                == (self.dims.intermediate_size, self.dims.hidden_size)
            ):
                self.downs[int(layer.group(1))] = module
        self.squares = {i: torch.zeros(self.dims.intermediate_size) for i in self.downs}
        self.batches = 0
        """Forward passes recorded."""
        self._mask: torch.Tensor | None = None
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def __enter__(self) -> UnitImportance:
        self._handles = [self.model.register_forward_pre_hook(self._call, with_kwargs=True)]
        self._handles += [m.register_forward_pre_hook(self._hook(i)) for i, m in self.downs.items()]
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _call(
        self, _module: torch.nn.Module, _args: tuple[object, ...], kwargs: dict[str, object]
    ) -> None:
        mask = kwargs["attention_mask"]
        assert isinstance(mask, torch.Tensor), "the model is called with an attention mask"
        self._mask = mask.bool()
        self.batches += 1

    def _hook(self, i: int) -> Callable[..., None]:
        def record(_module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            assert self._mask is not None
            self.squares[i] += (args[0][self._mask].float() ** 2).sum(dim=0).cpu()

        return record

    def orders(self) -> list[list[int]]:
        """One list per layer of its unit indices, most important first."""
        return [
            _by_importance((self.squares[i].sqrt() * self.downs[i].weight.norm(dim=0)).tolist())
            for i in range(self.dims.num_layers)
        ]


def _by_importance(importance: Sequence[float]) -> list[int]:
    """Indices, most important first; ties keep index order (deterministic)."""
    return sorted(range(len(importance)), key=lambda i: (-importance[i], i))


def _in_layer(name: str, layer: int) -> bool:
    match = _LAYER_RE.search(name)
    return match is not None and int(match.group(1)) == layer


def head_dims(
    importance: Sequence[float], teacher_head: int, heads: int, head: int
) -> list[int] | None:
    """The teacher's head-axis entries a student attention of ``heads`` x ``head`` keeps.

    Student head ``k`` is made of whole teacher heads: the ``k``-th group of
    ``ceil(head / teacher_head)`` heads in order of importance (one head when the
    student's heads are as narrow or narrower), truncated to ``head`` entries.
    So a student with the teacher's head size keeps its most important heads
    intact, and no student head mixes pieces of heads at random. Heads are kept
    in the teacher's order within the selection.

    Returns:
        ``heads * head`` indices into the teacher's head axis, or ``None`` when
        the teacher has too few heads for this shape (the caller slices as for
        any other axis).
    """
    per = -(-head // teacher_head)  # teacher heads per student head, rounded up
    if heads * per > len(importance):
        return None
    order = _by_importance(importance)
    chosen = sorted(order[: heads * per])
    out: list[int] = []
    for k in range(heads):
        group = chosen[k * per : (k + 1) * per]
        entries = [h * teacher_head + j for h in group for j in range(teacher_head)]
        out.extend(entries[:head])
    return out


def build(
    arch: Arch,
    teacher: PreTrainedModel,
    teacher_init: bool = True,
    residual_order: Sequence[int] | None = None,
    unit_order: Sequence[Sequence[int]] | None = None,
) -> PreTrainedModel:
    """Build a student of ``arch`` of the teacher's own class.

    The student is an instance of the teacher's class, so a teacher with a task
    head (``BertForSequenceClassification``...) gives a student with the same
    head, labels and problem type.

    With ``teacher_init`` every student tensor starts as a slice of the teacher
    tensor it corresponds to (student layer ``i`` takes teacher layer
    ``layer_map(...)[i]``), which trains far faster than a random start. Along
    every axis of the teacher's hidden size, the slice keeps the dimensions
    :func:`kept_dims` names: the teacher's most energetic residual dimensions
    carry most of what the student must reproduce (on MiniLM, the top 128 of 384
    hold 64% of the energy, the first 128 only 32%). The attention's head axis
    (query, key and value rows, output-projection columns) keeps whole teacher
    heads instead, the most important first (:func:`head_dims`), so no student
    head is a random mix of pieces of heads. The FFN units axis keeps each
    layer's most important units (``unit_order``, from :func:`unit_orders`):
    on MiniLM students keeping a third to two thirds of the units, the proxy
    loss after 30 steps was 0.008-0.032 lower than with the leading units (and
    0.011-0.019 lower after 120). Other axes (vocabulary, positions, labels)
    keep their leading entries. The rule needs no names, so it slices task
    heads (pooler, classifier) too.

    Args:
        arch: The student's sizes.
        teacher: The model to slice.
        teacher_init: Slice the teacher (else a fresh random init).
        residual_order: The teacher's residual dimensions, most important first
            (``distill.residual_order``); ``None`` keeps the leading ones.
        unit_order: Per teacher layer, its FFN units, most important first
            (:func:`unit_orders`); ``None`` keeps the leading ones.
    """
    cfg = student_config(arch, teacher.config)
    # `_from_config` is what AutoModel.from_config calls once it has found the
    # class: it applies the config's dtype and attention implementation.
    student = cast(PreTrainedModel, type(teacher)._from_config(cfg))
    teacher_dims = sizes(teacher.config)
    if teacher_init:
        mapping = layer_map(arch.num_layers, teacher_dims.num_layers)
        width, ffn = teacher_dims.hidden_size, teacher_dims.intermediate_size
        keep = torch.tensor(kept_dims(residual_order, arch.hidden_size))
        heads, units = _layer_slices(arch, teacher, set(mapping), unit_order)
        source = teacher.state_dict()
        target = student.state_dict()
        with torch.no_grad():
            for name, tensor in target.items():
                tname = _LAYER_RE.sub(lambda m: str(mapping[int(m.group(1))]), name)
                if tname not in source:
                    continue  # e.g. a buffer the teacher does not have: keep the fresh init
                src = source[tname]
                layer = _LAYER_RE.search(tname)
                by_head = heads.get(int(layer.group(1))) if layer else None
                by_unit = units.get(int(layer.group(1))) if layer else None
                for axis, size in enumerate(tensor.shape):
                    if axis == head_axis(name) and by_head is not None:
                        src = src.index_select(axis, by_head)
                    elif src.shape[axis] == width and size == arch.hidden_size:
                        src = src.index_select(axis, keep)
                    elif by_unit is not None and src.shape[axis] == ffn and size == len(by_unit):
                        src = src.index_select(axis, by_unit)
                    else:
                        src = src.narrow(axis, 0, size)
                tensor.copy_(src)
    return student


def _layer_slices(
    arch: Arch,
    teacher: PreTrainedModel,
    layers: set[int],
    unit_order: Sequence[Sequence[int]] | None,
) -> tuple[dict[int, torch.Tensor | None], dict[int, torch.Tensor]]:
    """Per teacher layer used, the head dimensions and the FFN units a student keeps."""
    teacher_head = sizes(teacher.config).hidden_size // sizes(teacher.config).num_heads
    heads: dict[int, torch.Tensor | None] = {}
    units: dict[int, torch.Tensor] = {}
    for t_layer in layers:
        units[t_layer] = torch.tensor(
            kept_dims(unit_order[t_layer] if unit_order else None, arch.intermediate_size)
        )
        chosen = head_dims(
            head_importance(teacher, t_layer),
            teacher_head,
            arch.num_heads,
            arch.hidden_size // arch.num_heads,
        )
        heads[t_layer] = torch.tensor(chosen) if chosen is not None else None
    return heads, units


def count_params(model: torch.nn.Module) -> int:
    """Number of parameters of ``model``."""
    return sum(p.numel() for p in model.parameters())
