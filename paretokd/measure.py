"""``paretokd latency``: time one model (an architecture, a model folder, an ONNX file)."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from paretokd import config, latency
from paretokd.errors import ParetokdError
from paretokd.models import student
from paretokd.models import teacher as teacher_mod
from paretokd.records import Arch


def measure_target(
    target: str, spec: config.StudySpec, teacher: Any | None = None
) -> dict[str, Any]:
    """Measure ``target`` under ``spec.latency``, as ``paretokd latency`` does.

    Args:
        target: An architecture as JSON (built from the teacher, as the search
            builds students), a model directory or hub id, or an ``.onnx`` file.
        spec: The study spec; its latency section is the setup, its teacher
            builds architectures.
        teacher: An already loaded :class:`paretokd.models.teacher.Teacher` to build
            architectures from (default: load ``spec.teacher``).

    Returns:
        The statistics (``p50_ms``, ``p90_ms``, ``p99_ms``, ``ci_ms``, ``runs``, ...),
        what was measured, the cost in seconds and the fingerprint.

    Raises:
        ParetokdError: If the target cannot be read or the device is missing.
    """
    lat = spec.latency
    fp = latency.fingerprint(lat)  # a missing GPU is said before anything loads
    start = time.perf_counter()
    out: dict[str, Any] = {"target": target}
    path = Path(target)
    if target.lstrip().startswith("{"):
        try:
            raw = json.loads(target)
            arch = Arch.from_dict(raw)
        except (ValueError, KeyError, TypeError) as exc:
            raise ParetokdError(
                f"architecture {target!r} is not valid: {exc}; write e.g. "
                '\'{"num_layers":3,"hidden_size":256,"num_heads":4,"intermediate_size":512}\''
            ) from None
        sizes = (arch.num_layers, arch.hidden_size, arch.num_heads, arch.intermediate_size)
        if min(sizes) < 1 or arch.hidden_size % arch.num_heads:
            raise ParetokdError(
                f"architecture {arch.id}: sizes must be positive and hidden_size divisible "
                "by num_heads"
            )
        if teacher is None:
            teacher = teacher_mod.load(spec.teacher, spec.task)
        model = student.build(arch, teacher.model, spec.distill.teacher_init)
        input_names = teacher.tokenizer.model_input_names
        out.update(kind="architecture", arch=arch.to_dict(), teacher=teacher.name)
    elif path.suffix == ".onnx":
        if not path.is_file():
            raise ParetokdError(f"ONNX file {target!r} does not exist")
        model = None
        out.update(kind="onnx")
    elif path.exists() or (target.count("/") == 1 and not target.startswith((".", "/", "~"))):
        # With a task spec (--study), the model is timed with its head, as it ships.
        loaded = teacher_mod.load(
            config.TeacherSpec(target, spec.teacher.trust_remote_code), spec.task
        )
        model, input_names = loaded.model, loaded.tokenizer.model_input_names
        out.update(kind="model")
    else:
        raise ParetokdError(
            f"{target!r} is neither an architecture as JSON, a model directory, a hub id "
            "nor an .onnx file"
        )
    with tempfile.TemporaryDirectory(prefix="paretokd-latency-") as tmp:
        if model is not None:
            limit = getattr(model.config, "max_position_embeddings", None)
            if limit is not None and lat.seq_len > limit:
                raise ParetokdError(
                    f"latency.seq_len {lat.seq_len} exceeds the model's "
                    f"max_position_embeddings ({limit}); pass --seq-len {limit} or less"
                )
            out["params"] = student.count_params(model)
            t0 = time.perf_counter()
            path = latency.export_onnx(model, input_names, Path(tmp) / "model.onnx", lat)
            out["export_s"] = time.perf_counter() - t0
        stats = latency.measure(path, lat, model.config.vocab_size if model else None)
    out.update(stats.to_json())
    out["cost_s"] = time.perf_counter() - start
    out["fingerprint"] = fp.to_json()
    return out
