"""Fine-tune all-MiniLM-L6-v2 into a task teacher for paretokd's task-specific mode.

Run by hand (not in CI). It puts a fresh classification head on the MiniLM
encoder, trains the whole model for a few minutes on CPU, scores the whole dev
set and writes a transformers model folder that a study can name as its
teacher. To reproduce the SST-2 teacher:

    cd /work/main && nice -n 5 .venv/bin/python bench/finetune_teacher.py --task sst2 --minutes 8

which writes ``runs/teachers/all-MiniLM-L6-v2-sst2/`` (model and tokenizer as
safetensors, plus ``finetune.json`` with the steps, time and dev accuracy).
``--task agnews`` does the same for AG News (4 topics). Steps and accuracy vary
a little between runs on a shared machine, since the budget is wall time.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import random
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from paretokd.models.teacher import resolve

TEACHER = "sentence-transformers/all-MiniLM-L6-v2"
# The shared data folder sits beside the repository root.
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@dataclass(frozen=True)
class Task:
    """Where a task's examples live and how its labels are spelled."""

    train: str
    """TSV file under the shared data folder."""
    dev: str | None
    """Dev TSV file; ``None``: hold out the last ``holdout`` training rows instead."""
    header: bool
    labels: tuple[str, ...]
    """Label values as written in the files; their position is the class id."""
    names: tuple[str, ...]
    """Human-readable class names, stored as the model's ``id2label``."""
    holdout: int = 0


# Columns are always (text, label); only the header and label spelling differ.
TASKS = {
    "sst2": Task("sst2/train.tsv", "sst2/dev.tsv", True, ("0", "1"), ("negative", "positive")),
    "agnews": Task(
        "agnews/train.tsv",
        None,
        False,
        ("World", "Sports", "Business", "Sci/Tech"),
        ("World", "Sports", "Business", "Sci/Tech"),
        holdout=1000,
    ),
}


def read_tsv(path: Path, task: Task) -> tuple[list[str], list[int]]:
    """Texts and class ids from a ``text<TAB>label`` file.

    QUOTE_NONE because SST-2 sentences hold stray quote characters that the
    default dialect would read as the start of a quoted field.
    """
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    if task.header:
        rows = rows[1:]
    ids = {value: i for i, value in enumerate(task.labels)}
    texts, labels = [], []
    for n, row in enumerate(rows, start=2 if task.header else 1):
        if len(row) != 2 or row[1] not in ids:
            sys.exit(f"{path}:{n}: expected text<TAB>one of {task.labels}, got {row!r}")
        texts.append(row[0])
        labels.append(ids[row[1]])
    return texts, labels


def load_task(task: Task) -> tuple[tuple[list[str], list[int]], tuple[list[str], list[int]]]:
    """(train, dev) as (texts, labels) pairs."""
    train = read_tsv(DATA / task.train, task)
    if task.dev is not None:
        return train, read_tsv(DATA / task.dev, task)
    texts, labels = train
    cut = len(texts) - task.holdout
    return (texts[:cut], labels[:cut]), (texts[cut:], labels[cut:])


def batches(
    lengths: list[int], batch_size: int, rng: random.Random, bucket: int = 50
) -> Iterator[list[int]]:
    """Endless shuffled batches of example indices, grouped by length.

    Sorting within chunks of ``bucket`` batches keeps padding low (SST-2 mixes
    two-word phrases with full sentences) while every epoch still sees the data
    in a fresh random order.
    """
    while True:
        order = list(range(len(lengths)))
        rng.shuffle(order)
        epoch = []
        for start in range(0, len(order), batch_size * bucket):
            chunk = sorted(order[start : start + batch_size * bucket], key=lengths.__getitem__)
            epoch += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
        rng.shuffle(epoch)
        yield from epoch


def collate(ids: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad token id lists to the longest in the batch."""
    width = max(map(len, ids))
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for row, seq in enumerate(ids):
        input_ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    return {"input_ids": input_ids, "attention_mask": mask}


@torch.inference_mode()
def accuracy(model: torch.nn.Module, ids: list[list[int]], labels: list[int], pad_id: int) -> float:
    """Share of ``ids`` whose argmax class equals the label (length-sorted, so little padding)."""
    model.eval()
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    correct = 0
    for start in range(0, len(order), 256):
        chunk = order[start : start + 256]
        predicted = model(**collate([ids[i] for i in chunk], pad_id)).logits.argmax(-1)
        correct += sum(int(p == labels[i]) for p, i in zip(predicted.tolist(), chunk, strict=True))
    model.train()
    return correct / len(ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=sorted(TASKS), default="sst2")
    parser.add_argument("--minutes", type=float, default=8.0, help="training budget (wall time)")
    parser.add_argument("--steps", type=int, default=None, help="optional step budget as well")
    # Higher than BERT-base's usual 2e-5: a few-minute CPU budget allows only
    # hundreds to a thousand steps, and the small MiniLM trains stably at 1e-4.
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--warmup", type=int, default=50, help="warmup steps")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    args = parser.parse_args()

    task = TASKS[args.task]
    out: Path = args.out or Path("runs/teachers") / f"all-MiniLM-L6-v2-{args.task}"
    # Refuse before training, not after eight minutes of it.
    if out.exists() and not args.overwrite:
        sys.exit(f"{out} exists; pass --overwrite to replace it")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)

    (train_texts, train_labels), (dev_texts, dev_labels) = load_task(task)
    source = resolve(TEACHER)
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModelForSequenceClassification.from_pretrained(
        source,
        num_labels=len(task.names),
        id2label=dict(enumerate(task.names)),
        label2id={name: i for i, name in enumerate(task.names)},
    )
    # Tokenise once up front; batches are padded on the fly to their own longest row.
    encode = dict(truncation=True, max_length=args.max_length)
    train_ids = tokenizer(train_texts, **encode)["input_ids"]
    dev_ids = tokenizer(dev_texts, **encode)["input_ids"]
    pad_id = tokenizer.pad_token_id
    print(f"{args.task}: {len(train_ids)} train, {len(dev_ids)} dev; teacher {source}", flush=True)

    # No weight decay on biases and LayerNorm weights, the usual BERT recipe.
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.01},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ],
        lr=args.lr,
    )
    budget_s = args.minutes * 60
    max_steps = args.steps or math.inf

    model.train()
    start = time.perf_counter()
    step, running = 0, []
    for batch in batches(list(map(len, train_ids)), args.batch_size, rng):
        elapsed = time.perf_counter() - start
        # The decay runs over whichever budget ends first; with a wall-time
        # budget the step count is not known up front, so progress is time.
        progress = max(step / max_steps, elapsed / budget_s)
        if progress >= 1:
            break
        lr = args.lr * min((step + 1) / args.warmup, 1.0 - progress)
        for group in optimizer.param_groups:
            group["lr"] = lr

        inputs = collate([train_ids[i] for i in batch], pad_id)
        labels = torch.tensor([train_labels[i] for i in batch])
        loss = model(**inputs, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        running.append(loss.item())
        if step % 50 == 0:
            print(
                f"step {step:5d}  loss {sum(running) / len(running):.4f}  lr {lr:.2e}  "
                f"{time.perf_counter() - start:6.0f} s",
                flush=True,
            )
            running = []
    train_s = time.perf_counter() - start

    acc = accuracy(model, dev_ids, dev_labels, pad_id)
    total_s = time.perf_counter() - start
    print(f"dev accuracy {acc:.4f} on {len(dev_ids)} examples", flush=True)
    print(f"{step} steps, {train_s:.0f} s training, {total_s:.0f} s with evaluation", flush=True)

    # Write beside the target and rename, so a crash never leaves a half model
    # where a study would take it for a teacher.
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    record = {
        "task": args.task,
        "teacher": TEACHER,
        "steps": step,
        "seconds": round(train_s, 1),
        "eval_seconds": round(total_s - train_s, 1),
        "dev_accuracy": acc,
        "dev_size": len(dev_ids),
        "train_size": len(train_ids),
        "seed": args.seed,
        "lr": args.lr,
        "warmup": args.warmup,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "threads": args.threads,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    (partial / "finetune.json").write_text(json.dumps(record, indent=2) + "\n")
    if out.exists():
        shutil.rmtree(out)
    partial.rename(out)
    print(f"wrote {out}", flush=True)


if __name__ == "__main__":
    main()
