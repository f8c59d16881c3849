"""Shared fixtures: tiny teachers saved like hub models, and a small real corpus.

Nothing is downloaded: the teachers are built from configs (a BERT, and one
of each supported family on demand) with a WordPiece vocabulary trained on the
corpus, and the corpus is the built-in one (docstrings of the installed Python
standard library).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    # The built-in corpus cache goes to a temporary folder, never the user's.
    os.environ["PARETOKD_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    os.environ["HF_HUB_OFFLINE"] = "1"
    # huggingface_hub reads the variable once, at import (test modules may have
    # imported it already): without this, a hub id retries the network for ~20 s.
    import huggingface_hub.constants

    huggingface_hub.constants.HF_HUB_OFFLINE = True


@pytest.fixture(scope="session")
def sentences() -> list[str]:
    """Real English sentences from the standard library's docstrings."""
    from paretokd.models.corpus import stdlib_sentences

    return stdlib_sentences()


@pytest.fixture(scope="session")
def corpus_file(tmp_path_factory: pytest.TempPathFactory, sentences: list[str]) -> Path:
    """A 400-sentence text file, one sentence per line."""
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text("\n".join(sentences[:400]) + "\n")
    return path


@pytest.fixture(scope="session")
def wordpiece(sentences: list[str]) -> Any:
    """A 800-token WordPiece ``tokenizers.Tokenizer`` trained on the corpus."""
    from tokenizers import BertWordPieceTokenizer

    trained = BertWordPieceTokenizer(lowercase=True)
    trained.train_from_iterator(sentences[:2000], vocab_size=800, show_progress=False)
    return trained._tokenizer


def _tokenizer(wordpiece: Any, input_names: list[str] | None = None) -> Any:
    from transformers import BertTokenizerFast

    extra = {} if input_names is None else {"model_input_names": input_names}
    return BertTokenizerFast(
        tokenizer_object=wordpiece,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
        **extra,
    )


@pytest.fixture(scope="session")
def tiny_teacher_dir(tmp_path_factory: pytest.TempPathFactory, wordpiece: Any) -> Path:
    """A 4-layer, 64-wide BERT with its tokenizer, saved as ``save_pretrained`` does."""
    import torch
    from transformers import AutoModel, BertConfig

    out = tmp_path_factory.mktemp("tiny-teacher")
    tokenizer = _tokenizer(wordpiece)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=128,
    )
    torch.manual_seed(0)
    model = AutoModel.from_config(config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


FAMILIES = ("bert", "roberta", "xlm-roberta", "distilbert", "electra")
"""The encoder families ``tiny_family_teacher`` builds (``config.model_type``)."""
HEADS = ("base", "classification", "regression")
"""``base``: the bare encoder; the others: a sequence classification head."""
TINY_MAX_LENGTH = 128
"""Positions every tiny family teacher has room for."""


def _family_config(family: str, vocab_size: int, pad_id: int) -> Any:
    """A 4-layer, 64-wide, 4-head, 128-FFN config of ``family``, in its own names."""
    from transformers import AutoConfig

    sizes: dict[str, Any] = {
        "num_hidden_layers": 4,
        "hidden_size": 64,
        "num_attention_heads": 4,
        "intermediate_size": 128,
        "max_position_embeddings": TINY_MAX_LENGTH,
    }
    if family == "distilbert":
        sizes = {"n_layers": 4, "dim": 64, "n_heads": 4, "hidden_dim": 128}
        sizes["max_position_embeddings"] = TINY_MAX_LENGTH
    elif family in ("roberta", "xlm-roberta"):
        # Positions count from padding_idx + 1, as in the real 514-position models.
        sizes["max_position_embeddings"] = TINY_MAX_LENGTH + pad_id + 1
        sizes["type_vocab_size"] = 1
    elif family == "electra":
        sizes["embedding_size"] = 32  # narrower than the hidden size, as in ELECTRA-small
    return AutoConfig.for_model(family, vocab_size=vocab_size, pad_token_id=pad_id, **sizes)


@pytest.fixture(scope="session")
def tiny_family_teacher(
    tmp_path_factory: pytest.TempPathFactory, wordpiece: Any
) -> Callable[[str, str], Path]:
    """Build (once per session) and save a tiny teacher of a family, with or without a head.

    Returns a function ``(family, head) -> directory`` with ``family`` in
    :data:`FAMILIES` and ``head`` in :data:`HEADS`. Every family shares the
    corpus's WordPiece vocabulary but lists the inputs its real tokenizers do
    (no ``token_type_ids`` for RoBERTa, XLM-R and DistilBERT), and its config's
    ``pad_token_id`` is the tokenizer's. ``classification`` has two labels,
    negative and positive; ``regression`` one, with ``problem_type`` regression.
    """
    import torch
    from transformers import AutoModel, AutoModelForSequenceClassification

    built: dict[tuple[str, str], Path] = {}

    def make(family: str, head: str) -> Path:
        if family not in FAMILIES or head not in HEADS:
            raise ValueError(f"no tiny teacher for {family!r} with head {head!r}")
        if (family, head) in built:
            return built[(family, head)]
        with_types = family in ("bert", "electra")
        names = ["input_ids", *(["token_type_ids"] if with_types else []), "attention_mask"]
        tokenizer = _tokenizer(wordpiece, names)
        config = _family_config(family, tokenizer.vocab_size, tokenizer.pad_token_id)
        torch.manual_seed(FAMILIES.index(family))
        if head == "base":
            model = AutoModel.from_config(config)
        else:
            if head == "classification":
                config.num_labels = 2
                config.id2label = {0: "negative", 1: "positive"}
                config.label2id = {"negative": 0, "positive": 1}
            else:
                config.num_labels = 1
                config.problem_type = "regression"
            model = AutoModelForSequenceClassification.from_config(config)
        out = tmp_path_factory.mktemp(f"tiny-{family}-{head}")
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
        built[(family, head)] = out
        return out

    return make


TINY_SPEC = """\
name: tiny
budgets: [50ms, 100ms]
trials: 5
seed: 1
data:
  proxy_train: 64
  proxy_eval: 32
  max_length: 32
space:
  num_layers: [1, 4]
  hidden_size: [32, 64]
  num_heads: [2, 4]
  intermediate_size: [64, 128]
distill:
  batch_size: 8
  proxy_steps: 4
  final_steps: 6
latency:
  seq_len: 32
  warmup_runs: 1
  rounds: 3
  confirm_rounds: 4
  calibration_rounds: 4
  min_runs: 5
  min_seconds: 0.02
search:
  population_size: 4
"""


@pytest.fixture()
def tiny_spec_file(tmp_path: Path) -> Path:
    """A study spec sized for the tiny teacher: a whole run takes seconds."""
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_SPEC)
    return path
