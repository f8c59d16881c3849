"""Score a model on an evaluation set in the task's own metric.

A task model (a sequence-classification head) is scored on gold labels:
accuracy, F1 or Matthews' correlation for classification, Spearman or Pearson
for regression. A task-agnostic encoder is scored on sentence-pair similarity
the way sentence-embedding models are: the cosine similarity of mean-pooled
token embeddings, correlated (Spearman by default) with the gold scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from transformers import PreTrainedModel
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from paretokd import distill, metrics
from paretokd.config import Metric, StudySpec
from paretokd.errors import ParetokdError
from paretokd.latency.graph import GraphModel
from paretokd.models import data
from paretokd.models.data import Text
from paretokd.models.teacher import Teacher

EVAL_BATCH = 64
"""Texts per forward pass when scoring (no gradients: larger batches are cheap)."""


@dataclass(frozen=True)
class EvalSet:
    """An evaluation table ready to score: texts and numeric gold labels."""

    texts: list[Text]
    gold: list[float]
    """Class indices of the teacher's head, or scores."""
    metric: Metric
    description: str


@dataclass(frozen=True)
class Score:
    """One model's score on an evaluation set."""

    metric: str
    value: float
    examples: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def metric_of(logits: Tensor, gold: Sequence[float], kind: str, metric: Metric) -> float:
    """``metric`` of a ``kind`` head's outputs against gold labels (in the same order)."""
    if kind == "classification":
        predicted = [float(i) for i in logits.argmax(dim=-1).tolist()]
    else:
        predicted = logits[:, 0].tolist()
    return metrics.score(metric, predicted, gold)


def _in_text_order(values: Tensor, order: list[int]) -> Tensor:
    """Undo ``make_batches``'s length sort: row ``k`` of ``values`` belongs to text ``order[k]``."""
    out = torch.empty_like(values)
    out[torch.tensor(order)] = values
    return out


@torch.no_grad()
def embed(
    model: PreTrainedModel | GraphModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    max_length: int,
) -> Tensor:
    """Mean-pooled token embeddings of the model's last layer, one row per text, in order."""
    model.eval()
    batches, order = distill.make_batches(texts, tokenizer, EVAL_BATCH, max_length)
    pooled = []
    for batch in batches:
        hidden = model(**batch)[0].float()
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled.append((hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1.0))
    return _in_text_order(torch.cat(pooled), order)


def score(
    model: PreTrainedModel | GraphModel,
    tokenizer: PreTrainedTokenizerBase,
    evalset: EvalSet,
    spec: StudySpec,
) -> Score:
    """Score ``model`` on ``evalset`` as ``spec.task`` says (see the module docstring).

    Texts are truncated at ``spec.latency.seq_len`` tokens, the length the
    shipped model is timed at.
    """
    max_length = spec.latency.seq_len
    if spec.task.kind == "agnostic":
        pairs = [t for t in evalset.texts if isinstance(t, tuple)]
        assert len(pairs) == len(evalset.texts), "similarity needs sentence pairs"
        first = embed(model, tokenizer, [a for a, _ in pairs], max_length)
        second = embed(model, tokenizer, [b for _, b in pairs], max_length)
        similarity = torch.nn.functional.cosine_similarity(first, second, dim=-1)
        value = metrics.score(evalset.metric, similarity.tolist(), evalset.gold)
    else:
        batches, order = distill.make_batches(evalset.texts, tokenizer, EVAL_BATCH, max_length)
        logits = _in_text_order(distill.predict(model, batches), order)
        value = metric_of(logits, evalset.gold, spec.task.kind, evalset.metric)
    return Score(metric=evalset.metric, value=value, examples=len(evalset.texts))


def load(spec: StudySpec, teacher: Teacher, cache_dir: Path) -> EvalSet | None:
    """The study's evaluation set (``spec.evaluation``), or ``None`` when it names none.

    Raises:
        ParetokdError: If the set cannot be read, is empty, or holds labels the
            teacher's head does not have.
    """
    ev = spec.evaluation
    if ev.source is None:
        return None
    table = data.load_table(ev, cache_dir)
    texts, labels = table.texts, table.labels
    assert labels is not None, "validated: evaluation.label_column is set"
    if ev.max_examples is not None:
        texts, labels = texts[: ev.max_examples], labels[: ev.max_examples]
    if spec.task.kind == "agnostic":
        if not all(isinstance(t, tuple) for t in texts):
            raise ParetokdError("evaluation: similarity needs two text columns (sentence pairs)")
        gold = data.encode_labels(labels, "regression", {}, 1, "evaluation.label_column")
        metric: Metric = ev.metric or "spearman"
    else:
        gold = teacher.encode_labels(labels, spec.task, "evaluation.label_column")
        metric = ev.metric or spec.task.resolved_metric
    if len(texts) < 2:
        raise ParetokdError(f"the evaluation set {table.description} holds fewer than 2 examples")
    return EvalSet(texts, gold, metric, table.description)
