"""Batching texts, and the teacher's outputs on those batches, computed once and kept."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from transformers import PreTrainedModel
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from paretokd.distill import device as devices
from paretokd.models.data import Text

Batch = dict[str, Tensor]


def tokenize(
    texts: Sequence[Text], tokenizer: PreTrainedTokenizerBase, max_length: int
) -> dict[str, list[list[int]]]:
    """Tokenise single texts, or sentence pairs as the model's family joins them."""
    if texts and isinstance(texts[0], tuple):
        firsts = [t[0] for t in texts]
        seconds = [t[1] for t in texts]
        return dict(tokenizer(firsts, seconds, truncation=True, max_length=max_length))
    return dict(tokenizer(list(texts), truncation=True, max_length=max_length))


def make_batches(
    texts: Sequence[Text],
    tokenizer: PreTrainedTokenizerBase,
    batch_size: int,
    max_length: int,
) -> tuple[list[Batch], list[int]]:
    """Tokenise ``texts`` into fixed batches of similar length, each padded to its longest text.

    Texts are grouped by token count before batching (training visits the
    batches in a random order), which halves the padding of random batches.
    Fixed batches let the teacher's outputs be computed once and reused.

    Returns:
        The batches, and the index in ``texts`` of each row, in batch order
        (to line up gold labels with predictions).
    """
    encoded = tokenize(texts, tokenizer, max_length)
    ids = encoded["input_ids"]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # stable: deterministic
    batches = []
    for start in range(0, len(order), batch_size):
        rows = [{k: encoded[k][i] for k in encoded} for i in order[start : start + batch_size]]
        batches.append(dict(tokenizer.pad(rows, return_tensors="pt")))
    return batches, order


@dataclass(frozen=True)
class Target:
    """The teacher's outputs on one batch."""

    states: list[Tensor]
    """Every layer's hidden states (embeddings excluded), fp16."""
    logits: Tensor | None
    """The head's outputs (fp32), for a teacher with a task head."""


class TeacherTargets:
    """The teacher's outputs per batch, computed on first use and optionally kept.

    Kept for the proxy splits (every trial reuses them); recomputed for the full
    training split, whose states would not fit in memory. The teacher runs on
    the training ``device`` and its outputs stay there, where the students train.
    """

    def __init__(
        self,
        teacher: PreTrainedModel,
        batches: list[Batch],
        keep: bool,
        device: torch.device | None = None,
    ) -> None:
        self.teacher = teacher
        self.batches = batches
        self.keep = keep
        self.device = device or torch.device("cpu")
        self._cache: dict[int, Target] = {}

    @torch.no_grad()
    def __getitem__(self, index: int) -> Target:
        if index in self._cache:
            return self._cache[index]
        model = devices.on(self.teacher, self.device)
        with devices.autocast(self.device):
            out = model(**devices.to(self.batches[index], self.device), output_hidden_states=True)
        # hidden_states[0] is the embedding output; layers start at 1. fp16
        # halves the memory of the kept states at no cost to the loss.
        states = [h.to(torch.float16) for h in out.hidden_states[1:]]
        logits = getattr(out, "logits", None)
        target = Target(states, logits.float() if logits is not None else None)
        if self.keep:
            self._cache[index] = target
        return target

    def __len__(self) -> int:
        return len(self.batches)

    @property
    def kept_bytes(self) -> int:
        """The memory the kept outputs take."""
        return sum(
            t.numel() * t.element_size()
            for target in self._cache.values()
            for t in [*target.states, *([target.logits] if target.logits is not None else [])]
        )

    def precompute(self, cache: Path | None = None) -> bool:
        """Compute every batch's outputs now, so the first trial does not pay for them.

        Args:
            cache: A file to read the outputs from if it exists, else to write them
                to (the caller's name for it must change whenever the teacher,
                the texts or the batching do).

        Returns:
            True if the outputs were read from ``cache``.
        """
        if cache is not None and cache.is_file():
            # weights_only: only tensors are read back, nothing is unpickled.
            stored = torch.load(cache, weights_only=True, map_location=self.device)
            if len(stored) == len(self):
                self._cache = {
                    i: Target(list(item["states"]), item.get("logits"))
                    for i, item in enumerate(stored)
                }
                return True
        for index in range(len(self)):
            self[index]
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            partial = cache.with_name(cache.name + f".{os.getpid()}.partial")
            stored = []
            for i in range(len(self)):
                # Written from the CPU, so a worker without this device reads them too.
                item: dict[str, object] = {"states": [h.cpu() for h in self._cache[i].states]}
                logits = self._cache[i].logits
                if logits is not None:
                    item["logits"] = logits.cpu()
                stored.append(item)
            torch.save(stored, partial)
            os.replace(partial, cache)  # concurrent workers never see half a file
        return False


def residual_order(targets: TeacherTargets) -> list[int]:
    """The teacher's residual dimensions, most energetic first, over every layer and real token.

    Students sliced from the teacher keep the head of this list (``student.build``).
    """
    energy: Tensor | None = None
    for index in range(len(targets)):
        mask = targets.batches[index]["attention_mask"].unsqueeze(-1)
        for h in targets[index].states:
            e = (h.float().cpu() ** 2 * mask).sum(dim=(0, 1))
            energy = e if energy is None else energy + e
    assert energy is not None, "no batches"
    # stable: equal energies keep their index order, so the result is deterministic
    return torch.argsort(energy, descending=True, stable=True).tolist()
