"""Shared fixtures: a tiny teacher saved like a hub model, and a small real corpus.

Nothing is downloaded: the teacher is a BERT built from a config with a
WordPiece vocabulary trained on the corpus, and the corpus is the built-in
one (docstrings of the installed Python standard library).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    # The built-in corpus cache goes to a temporary folder, never the user's.
    os.environ["PARETOKD_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(scope="session")
def sentences() -> list[str]:
    """Real English sentences from the standard library's docstrings."""
    from paretokd.data import stdlib_sentences

    return stdlib_sentences()


@pytest.fixture(scope="session")
def corpus_file(tmp_path_factory: pytest.TempPathFactory, sentences: list[str]) -> Path:
    """A 400-sentence text file, one sentence per line."""
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text("\n".join(sentences[:400]) + "\n")
    return path


@pytest.fixture(scope="session")
def tiny_teacher_dir(tmp_path_factory: pytest.TempPathFactory, sentences: list[str]) -> Path:
    """A 4-layer, 64-wide BERT with its tokenizer, saved as ``save_pretrained`` does."""
    import torch
    from tokenizers import BertWordPieceTokenizer
    from transformers import AutoModel, BertConfig, BertTokenizerFast

    out = tmp_path_factory.mktemp("tiny-teacher")
    wordpiece = BertWordPieceTokenizer(lowercase=True)
    wordpiece.train_from_iterator(sentences[:2000], vocab_size=800, show_progress=False)
    tokenizer = BertTokenizerFast(
        tokenizer_object=wordpiece._tokenizer,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
    )
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
