"""Distil each recommended architecture on the full training split and ship it."""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from transformers import PreTrainedModel

from paretokd import latency
from paretokd.config import StudySpec
from paretokd.distill import device as devices
from paretokd.distill import recipe
from paretokd.distill.recipe import Distilled, Slicing
from paretokd.distill.targets import TeacherTargets, make_batches
from paretokd.files import write_text
from paretokd.latency.graph import GraphModel, reduce_precision
from paretokd.models.data import Splits
from paretokd.models.teacher import Teacher
from paretokd.records import FP32, Arch, FinalStudent, Fingerprint, LatencyStats

log = logging.getLogger(__name__)

PARITY_TOLERANCE = 1e-3
"""Largest absolute ONNX–PyTorch difference accepted on a student's outputs (float32)."""

CACHE_LIMIT_BYTES = 4 << 30
"""Keep the teacher's outputs for the final training in memory up to this worst-case size."""

MARKER = "final.json"
"""The finished student's record inside its folder (:class:`FinalStudent` and its key)."""


def resolve_steps(spec: StudySpec, splits: Splits) -> StudySpec:
    """``spec`` with ``distill.final_steps`` set by ``distill.final_epochs``, if that is set.

    A budget in passes over the data, not in steps, means the same training on
    a corpus of any size: the steps are those epochs of the full training
    split's batches, rounded up.
    """
    epochs = spec.distill.final_epochs
    if epochs is None:
        return spec
    batches = math.ceil(len(splits.full_train) / spec.distill.batch_size)
    steps = max(1, math.ceil(epochs * batches))
    log.info("final distillation: %g epochs of %d batches, %d steps", epochs, batches, steps)
    return replace(spec, distill=replace(spec.distill, final_steps=steps))


def keeps_outputs(spec: StudySpec, teacher: Teacher, splits: Splits) -> bool:
    """Whether the teacher's outputs on the finals' batches fit in :data:`CACHE_LIMIT_BYTES`.

    Known from the sizes alone (no tokenising): the worst case is every visited
    batch at full length, every layer's states in float16.
    """
    batches = math.ceil(len(splits.full_train) / spec.distill.batch_size)
    cfg = teacher.config
    worst = (
        min(spec.distill.final_steps, batches)
        * spec.distill.batch_size
        * spec.data.max_length
        * cfg.num_hidden_layers
        * cfg.hidden_size
        * 2  # float16
    )
    return worst <= CACHE_LIMIT_BYTES


def training_targets(spec: StudySpec, teacher: Teacher, splits: Splits) -> TeacherTargets:
    """The full training split, batched, with the teacher's outputs shared by every pick.

    Every pick trains with the same seed, so it visits the same batches: the
    teacher's outputs are computed once for all picks, unless keeping them
    could need more than :data:`CACHE_LIMIT_BYTES` (a big teacher or a long
    final training), in which case the finals train their students side by side.
    """
    batches, _ = make_batches(
        splits.full_train, teacher.tokenizer, spec.distill.batch_size, spec.data.max_length
    )
    device = devices.resolve(spec.distill.device)
    keep = keeps_outputs(spec, teacher, splits)
    return TeacherTargets(teacher.model, batches, keep=keep, device=device)


@dataclass(frozen=True)
class Job:
    """One student to distil and ship: a pick, or the hand-crafted reference."""

    folder: str
    """Its folder under ``students/``: the budget (``10ms``) or ``reference``."""
    arch: Arch
    budget_ms: float | None
    """The budget it must meet; ``None`` for the reference."""
    trial: int | None
    anchor: str | None = None
    """The anchor its search timing was paired with (``LatencyStats.anchor``): its shipped
    graph is paired with the same one; the nearest one for the reference."""


def _key(arch: Arch, spec: StudySpec) -> dict[str, Any]:
    """What makes a finished student reusable: same architecture, spec and recipe length."""
    return {"arch_id": arch.id, "spec_hash": spec.hash, "final_steps": spec.distill.final_steps}


def finished(job: Job, spec: StudySpec, out_dir: Path) -> FinalStudent | None:
    """The student an earlier run finished for ``job``'s architecture and settings, if any."""
    folder = out_dir / "students" / job.folder
    try:
        raw = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None
    if raw.get("key") != _key(job.arch, spec):
        return None
    done = FinalStudent.from_json(raw["student"], folder)
    return done.for_job(job.folder, job.budget_ms, job.trial)


def copy_student(source: FinalStudent, job: Job, out_dir: Path, spec: StudySpec) -> FinalStudent:
    """Give ``job`` the finished student ``source`` (same architecture and settings).

    Two budgets can pick one architecture; it is distilled once and copied.
    """
    target = out_dir / "students" / job.folder
    copied = source.for_job(job.folder, job.budget_ms, job.trial)
    if target.resolve() == source.dir.resolve():
        return copied
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(source.dir, partial)
    copied = replace(copied, dir=target)
    _write_marker(partial, copied, _key(job.arch, spec))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(partial, target)
    return copied


def _write_marker(folder: Path, student: FinalStudent, key: dict[str, Any]) -> None:
    # Paths inside final.json are relative to the student's own folder.
    record = {"key": key, "student": student.to_json(student.dir)}
    write_text(folder / MARKER, json.dumps(record, indent=2) + "\n")


def distill_and_export(
    job: Job,
    spec: StudySpec,
    teacher: Teacher,
    full_train: TeacherTargets,
    proxy_eval: TeacherTargets,
    slicing: Slicing,
    time_graph: Callable[[Path], LatencyStats],
    fingerprint: Fingerprint,
    out_dir: Path,
    progress: Callable[[int, float], None] | None = None,
    trained: Distilled | None = None,
) -> tuple[FinalStudent, Distilled]:
    """Distil ``job`` for ``spec.distill.final_steps`` steps on the full split and export it.

    Writes ``out_dir/students/<folder>/`` with the HF model and tokenizer,
    ``model.onnx`` (and the graph of its precision), ``latency.json`` and
    ``final.json``. The folder is built under a temporary name and renamed when
    complete, so a crash never leaves a half-written student where a finished
    one is expected.

    Args:
        time_graph: Times an exported graph as the study does (paired with an anchor).
        trained: The same sizes already distilled for another precision: shipped as
            they are, not trained again (the search trains once for every precision too).

    Returns:
        The final student and its distillation.

    Raises:
        RuntimeError: If the ONNX export disagrees with PyTorch (a bug, not user input).
    """
    target = out_dir / "students" / job.folder
    if trained is not None:
        done = trained
    else:
        built = recipe.build(job.arch, teacher.model, spec, slicing)
        steps = spec.distill.final_steps
        done = recipe.distill_and_score(
            built, full_train, proxy_eval, spec, slicing, steps, progress, keep_best=True
        )
    model = done.model
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    model.save_pretrained(partial)
    teacher.tokenizer.save_pretrained(partial)
    # Exported exactly as the search timed it (same attention form and fusions).
    fp32 = latency.export_onnx(
        model, teacher.tokenizer.model_input_names, partial / "model.onnx", spec.latency
    )
    diff = latency.parity(model, fp32, proxy_eval.batches[0], spec.latency)
    if diff > PARITY_TOLERANCE:
        raise RuntimeError(f"ONNX export of {job.arch.id} differs from PyTorch by {diff:.2e}")
    shipped = reduce_precision(fp32, job.arch.precision)
    loss = done.loss
    if job.arch.precision != FP32:  # scored as it ships, like the search scored it
        loss = recipe.graph_loss(GraphModel(shipped, spec.latency), done, proxy_eval, spec)
    stats = time_graph(shipped)
    _write_latency(partial, stats, fingerprint)
    final = FinalStudent(
        folder=job.folder,
        arch=job.arch,
        budget_ms=job.budget_ms,
        trial=job.trial,
        loss=loss,
        latency=stats,
        parity_max_abs_diff=diff,
        steps=done.result.steps,
        dir=target,
        learning_rate=done.result.learning_rate,
        curve=done.result.curve,
        best_step=done.result.best_step,
    )
    _write_marker(partial, final, _key(job.arch, spec))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(partial, target)
    return final, done


def retimed(
    student: FinalStudent, stats: LatencyStats, fingerprint: Fingerprint, spec: StudySpec
) -> FinalStudent:
    """``student`` with a new timing of its shipped graph, written to its folder."""
    out = replace(student, latency=stats)
    _write_latency(out.dir, stats, fingerprint)
    _write_marker(out.dir, out, _key(out.arch, spec))
    return out


def _write_latency(folder: Path, stats: LatencyStats, fingerprint: Fingerprint) -> None:
    record = {**stats.to_json(), "fingerprint": fingerprint.to_json()}
    write_text(folder / "latency.json", json.dumps(record, indent=2) + "\n")


def load_model(final: FinalStudent, teacher: Teacher) -> PreTrainedModel:
    """The trained model of a finished student, read back from its folder."""
    return type(teacher.model).from_pretrained(final.dir, use_safetensors=True).eval()
