"""The hardware and settings a latency figure is valid for, and the device check."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path

import onnxruntime as ort

from paretokd.config import LatencySpec
from paretokd.errors import ParetokdError
from paretokd.records import Fingerprint

OPSET = 17
EXPORT_ATTENTION = "eager"
"""Attention implementation the graph is exported with.

The eager (matmul + softmax) attention exports to a smaller graph than SDPA
(no NaN guards, fewer shape ops) and ran 3–4% faster in ONNX Runtime on CPU
(all-MiniLM-L6-v2, batch 1 x 128, 1 thread); it is also the form ONNX
Runtime's transformer optimizer recognises, should ``transformer_fusion`` be
switched on. The PyTorch model keeps its own implementation for training.
"""

ESTIMATOR = "median-of-round-mean-ratios/nearest-anchor"
"""How :mod:`paretokd.latency.paired` reads a figure: the median of its rounds' ratios,
each graph paired with the anchor of the study's ladder nearest its latency. Part of a
study's fingerprint, so that no study mixes figures read two ways (studies made
before read "pooled-medians", then "median-of-round-mean-ratios", the teacher alone)."""

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


INSTRUCTION_SETS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8")
"""CPU features that decide how fast int8 (VNNI, AMX) and fp32 (AVX) inference runs."""


def _instruction_sets() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return " ".join(f for f in INSTRUCTION_SETS if f in flags)
    except OSError:
        pass
    return "unknown"


def _gpu_name() -> str:
    # onnxruntime-gpu works with the CPU build of torch, so torch may not see the GPU.
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run(
                [smi, "--query-gpu=name", "--format=csv,noheader", "--id=0"],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            )
            if out.stdout.strip():
                return out.stdout.strip().splitlines()[0]
        except (OSError, subprocess.SubprocessError):
            pass
    return "unknown CUDA device"


def graph_kind(spec: LatencySpec) -> str:
    """A short description of the graph :func:`export_onnx` writes under ``spec``."""
    kind = f"torchscript-opset{OPSET}-{EXPORT_ATTENTION}"
    return kind + "+ort-fusion" if spec.transformer_fusion else kind


def _single_thread(spec: LatencySpec) -> bool:
    return spec.device == "cpu" and spec.threads == 1 and spec.execution_mode == "sequential"


def clock(spec: LatencySpec) -> str:
    """The clock runs are timed with: ``cpu`` where the model runs on the calling thread alone.

    Raises:
        ParetokdError: If ``spec`` asks for ``cpu`` where other threads do part of the work.
    """
    if spec.clock == "auto":
        return "cpu" if _single_thread(spec) else "wall"
    if spec.clock == "cpu" and not _single_thread(spec):
        raise ParetokdError(
            "latency.clock cpu times the calling thread only: it needs device cpu, threads 1 "
            "and execution_mode sequential; use clock wall (or auto) for this setup"
        )
    return spec.clock


def check_device(spec: LatencySpec) -> None:
    """Raise a clear error when ``spec`` asks for a provider this machine lacks.

    Raises:
        ParetokdError: If ``spec`` asks for CUDA and no CUDA provider is available.
    """
    provider = PROVIDERS[spec.device]
    if provider not in ort.get_available_providers():
        raise ParetokdError(
            f"latency.device is {spec.device!r} but onnxruntime offers only "
            f"{', '.join(ort.get_available_providers())}; install onnxruntime-gpu on a CUDA "
            "machine, or measure with --device cpu"
        )


def fingerprint(spec: LatencySpec) -> Fingerprint:
    """Describe this machine and the measurement settings of ``spec``.

    Raises:
        ParetokdError: If ``spec`` asks for CUDA and no CUDA provider is available.
    """
    check_device(spec)
    clock(spec)
    return Fingerprint(
        device=spec.device,
        hardware=_gpu_name() if spec.device == "cuda" else _cpu_name(),
        instruction_sets=_instruction_sets(),
        cores=os.cpu_count() or 1,
        provider=PROVIDERS[spec.device],
        onnxruntime=ort.__version__,
        threads=spec.threads,
        inter_op_threads=spec.inter_op_threads,
        spinning=spec.spinning,
        execution_mode=spec.execution_mode,
        graph_optimization=spec.graph_optimization,
        graph=graph_kind(spec),
        clock=clock(spec),
        batch=spec.batch,
        seq_len=spec.seq_len,
        estimator=ESTIMATOR,
    )


# --- export and parity ---------------------------------------------------------
# torch is imported where it is used: timing an ONNX file needs only onnxruntime.
