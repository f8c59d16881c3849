"""Distil each recommended architecture on the full training split and ship it."""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from optuna.trial import FixedTrial
from transformers import PreTrainedModel

from paretokd import distill, latency
from paretokd.config import StudySpec, format_budget
from paretokd.models import student
from paretokd.models.data import Splits
from paretokd.models.teacher import Teacher
from paretokd.search import space
from paretokd.search.recommend import Pick

log = logging.getLogger(__name__)

PARITY_TOLERANCE = 1e-3
"""Largest absolute ONNX–PyTorch difference accepted on a student's outputs (float32)."""

CACHE_LIMIT_BYTES = 4 << 30
"""Keep the teacher's outputs for the final training in memory up to this worst-case size."""


def training_targets(spec: StudySpec, teacher: Teacher, splits: Splits) -> distill.TeacherTargets:
    """The full training split, batched, with the teacher's outputs shared by every pick.

    Every pick trains with the same seed, so it visits the same batches: the
    teacher's outputs are computed once for all picks, unless keeping them
    could need more than :data:`CACHE_LIMIT_BYTES` (a big teacher or a long
    final training), in which case each pick recomputes them.
    """
    batches, _ = distill.make_batches(
        splits.full_train, teacher.tokenizer, spec.distill.batch_size, spec.data.max_length
    )
    cfg = teacher.config
    worst = (
        min(spec.distill.final_steps, len(batches))
        * spec.distill.batch_size
        * spec.data.max_length
        * cfg.num_hidden_layers
        * cfg.hidden_size
        * 2  # float16
    )
    return distill.TeacherTargets(teacher.model, batches, keep=worst <= CACHE_LIMIT_BYTES)


@dataclass(frozen=True)
class Job:
    """One student to distil and ship: a pick, or the hand-crafted reference."""

    folder: str
    """Its folder under ``students/``: the budget (``10ms``) or ``reference``."""
    arch: dict[str, int]
    budget_ms: float | None
    """The budget it must meet; ``None`` for the reference."""
    trial: int | None

    @classmethod
    def for_pick(cls, pick: Pick) -> Job:
        """The job of a recommended trial."""
        assert pick.trial is not None and pick.arch is not None
        return cls(format_budget(pick.budget_ms), dict(pick.arch), pick.budget_ms, pick.trial)


@dataclass(frozen=True)
class FinalResult:
    """A distilled, exported and re-measured student."""

    budget_ms: float | None
    trial: int | None
    loss: float
    """Held-out loss on the proxy eval split, comparable with the search's."""
    latency: latency.LatencyStats
    parity_max_abs_diff: float
    dir: Path
    onnx: Path
    steps: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, in the shape ``recommendations.json`` uses."""
        within = None if self.budget_ms is None else self.latency.p50_ms <= self.budget_ms
        return {
            "loss": self.loss,
            "latency_ms": self.latency.p50_ms,
            "within_budget": within,
            "latency": self.latency.to_dict(),
            "parity_max_abs_diff": self.parity_max_abs_diff,
            "steps": self.steps,
            "dir": str(self.dir),
            "onnx": str(self.onnx),
        }


def copy_student(source: Path, job: Job, out_dir: Path) -> None:
    """Give ``job`` the finished student in ``source`` (same architecture and settings).

    Two budgets can pick one architecture; it is distilled once and copied,
    and :func:`distill_and_export` then finds the copy finished.
    """
    target = out_dir / "students" / job.folder
    if target.resolve() == source.resolve():
        return
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(source, partial)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(partial, target)


def _done(marker: Path, key: dict[str, Any]) -> FinalResult | None:
    """A finished student written by an earlier run with the same key, if any."""
    try:
        raw = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    if raw.get("key") != key:
        return None
    return FinalResult(
        budget_ms=raw["budget_ms"],
        trial=raw["trial"],
        loss=raw["loss"],
        latency=latency.LatencyStats(**raw["latency"]),
        parity_max_abs_diff=raw["parity_max_abs_diff"],
        dir=marker.parent,
        onnx=marker.parent / "model.onnx",
        steps=raw["steps"],
    )


def distill_and_export(
    job: Job,
    spec: StudySpec,
    teacher: Teacher,
    full_train: distill.TeacherTargets,
    proxy_eval: distill.TeacherTargets,
    residual_order: list[int],
    unit_order: list[list[int]],
    out_dir: Path,
    progress: Callable[[int, float], None] | None = None,
) -> tuple[FinalResult, PreTrainedModel]:
    """Distil ``job`` for ``spec.distill.final_steps`` steps on the full split and export it.

    Writes ``out_dir/students/<folder>/`` with the HF model and tokenizer,
    ``model.onnx``, ``latency.json`` and ``final.json``. The folder is built
    under a temporary name and renamed when complete, so a crash never leaves a
    half-written student where a finished one is expected; a rerun with the
    same architecture and settings reuses a finished folder.

    Returns:
        The result and the trained student (read back from its folder when reused).

    Raises:
        RuntimeError: If the ONNX export disagrees with PyTorch (a bug, not user input).
    """
    target = out_dir / "students" / job.folder
    # Replay the trial's parameters through the same space, as Optuna's FixedTrial intends.
    arch = space.suggest(FixedTrial(dict(job.arch)), spec.space)
    key = {"arch_id": arch.id, "spec_hash": spec.hash, "final_steps": spec.distill.final_steps}
    finished = _done(target / "final.json", key)
    if finished is not None:
        log.info("%s: reusing the finished student in %s", job.folder, target)
        reused = type(teacher.model).from_pretrained(target, use_safetensors=True)
        return replace(finished, budget_ms=job.budget_ms, trial=job.trial), reused.eval()

    model = student.build(
        arch, teacher.model, spec.distill.teacher_init, residual_order, unit_order
    )
    result, proj = distill.train(
        model,
        full_train,
        steps=spec.distill.final_steps,
        learning_rate=spec.distill.learning_rate,
        weight_decay=spec.distill.weight_decay,
        seed=spec.seed,
        task=spec.task,
        kept_dims=student.kept_dims(residual_order, arch.hidden_size),
        progress=progress,
    )
    loss = distill.evaluate(model, proj, proxy_eval, spec.task)

    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    model.save_pretrained(partial)
    teacher.tokenizer.save_pretrained(partial)
    # Exported exactly as the search timed it (same attention form and fusions).
    onnx_path = latency.export_onnx(
        model, teacher.tokenizer.model_input_names, partial / "model.onnx", spec.latency
    )
    diff = latency.parity(model, onnx_path, proxy_eval.batches[0], spec.latency)
    if diff > PARITY_TOLERANCE:
        raise RuntimeError(f"ONNX export of {arch.id} differs from PyTorch by {diff:.2e}")
    stats = latency.measure(onnx_path, spec.latency, model.config.vocab_size)
    fp = latency.fingerprint(spec.latency)
    (partial / "latency.json").write_text(
        json.dumps({**stats.to_dict(), "fingerprint": fp.to_dict()}, indent=2) + "\n"
    )
    final = FinalResult(
        budget_ms=job.budget_ms,
        trial=job.trial,
        loss=loss,
        latency=stats,
        parity_max_abs_diff=diff,
        dir=target,
        onnx=target / "model.onnx",
        steps=result.steps,
    )
    record = {
        "key": key,
        "budget_ms": job.budget_ms,
        "trial": job.trial,
        "arch": arch.to_dict(),
        "loss": loss,
        "latency": stats.to_dict(),
        "parity_max_abs_diff": diff,
        "steps": result.steps,
    }
    (partial / "final.json").write_text(json.dumps(record, indent=2) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    os.replace(partial, target)
    return final, model
