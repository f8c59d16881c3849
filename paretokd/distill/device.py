"""Where training runs: ``distill.device``, resolved once per process, and its number format.

Training and timing are independent: a study may train its students on a GPU
and time them on the CPU that will serve them (``latency.device``). The
teacher's outputs, the proxy distillation and the final distillation run on
the training device; everything else (slicing students from the teacher,
export, held-out scores) stays on the CPU, where the models live between steps.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
import weakref
from collections.abc import Iterator

import torch

from paretokd.errors import ParetokdError

log = logging.getLogger(__name__)


@functools.cache
def resolve(name: str) -> torch.device:
    """The device ``distill.device`` names: ``auto`` is CUDA when this machine has it.

    Raises:
        ParetokdError: For ``cuda`` on a machine without a usable CUDA device.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ParetokdError(
            "distill.device is cuda but PyTorch sees no CUDA device here "
            f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'}); "
            "use distill.device: auto or cpu"
        )
    # An explicit index: tensors report ``cuda:0``, and batches compare devices.
    device = (
        torch.device("cuda", torch.cuda.current_device()) if name == "cuda" else torch.device(name)
    )
    log.info("training on %s%s", describe(device), " (bf16 autocast)" if uses_bf16(device) else "")
    return device


def describe(device: torch.device) -> str:
    """The device in words for logs and records: ``cpu``, or ``cuda (NVIDIA H200)``."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


def uses_bf16(device: torch.device) -> bool:
    """Whether training on ``device`` runs under bf16 autocast.

    On a GPU that supports bf16 it roughly doubles the throughput of the
    matrix products at no cost to distillation; on a CPU without matrix units
    it is slower than fp32, so the CPU trains in fp32.
    """
    return device.type == "cuda" and torch.cuda.is_bf16_supported()


@contextlib.contextmanager
def autocast(device: torch.device) -> Iterator[None]:
    """bf16 autocast on a device that gains from it (:func:`uses_bf16`), else nothing."""
    if uses_bf16(device):
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            yield
    else:
        yield


_COPIES: weakref.WeakKeyDictionary[torch.nn.Module, torch.nn.Module] = weakref.WeakKeyDictionary()


def on(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``model`` itself on the CPU; elsewhere its copy on ``device``, made once per process.

    The teacher stays on the CPU for what happens there (slicing students,
    export); only its forward passes for the students' targets use the copy.
    """
    if device.type == "cpu":
        return model
    if model not in _COPIES:
        _COPIES[model] = copy.deepcopy(model).to(device).eval()
    return _COPIES[model]


def to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """``batch`` on ``device`` (the same dict when it is already there)."""
    if all(t.device == device for t in batch.values()):
        return batch
    return {k: t.to(device, non_blocking=True) for k, t in batch.items()}
