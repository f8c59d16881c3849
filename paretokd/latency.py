"""ONNX export, ONNX–PyTorch parity, and latency measured in an ONNX Runtime session.

What is timed is what is shipped: the same exporter writes the search-time
candidates and the final ``model.onnx``.
"""

from __future__ import annotations

import os
import platform
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from transformers import PreTrainedModel

from paretokd.config import LatencySpec
from paretokd.errors import ParetokdError

_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


@dataclass(frozen=True)
class Fingerprint:
    """The hardware and settings a latency figure is only valid for."""

    device: str
    hardware: str
    cores: int
    provider: str
    onnxruntime: str
    threads: int
    batch: int
    seq_len: int

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values."""
        return asdict(self)

    @property
    def key(self) -> str:
        """A compact string that is equal exactly when two fingerprints are."""
        return "|".join(str(v) for v in asdict(self).values())


@dataclass(frozen=True)
class LatencyStats:
    """Latency statistics of one model, in milliseconds."""

    p50_ms: float
    p90_ms: float
    mean_ms: float
    runs: int

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values."""
        return asdict(self)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def fingerprint(spec: LatencySpec) -> Fingerprint:
    """Describe this machine and the measurement settings of ``spec``.

    Raises:
        ParetokdError: If ``spec`` asks for CUDA and no CUDA provider is available.
    """
    provider = _PROVIDERS[spec.device]
    if provider not in ort.get_available_providers():
        raise ParetokdError(
            f"latency.device is {spec.device!r} but onnxruntime offers only "
            f"{', '.join(ort.get_available_providers())}; install onnxruntime-gpu on a CUDA "
            "machine, or measure with --device cpu"
        )
    hardware = torch.cuda.get_device_name() if spec.device == "cuda" else _cpu_name()
    return Fingerprint(
        device=spec.device,
        hardware=hardware,
        cores=os.cpu_count() or 1,
        provider=provider,
        onnxruntime=ort.__version__,
        threads=spec.threads,
        batch=spec.batch,
        seq_len=spec.seq_len,
    )


class _LastHiddenState(torch.nn.Module):
    """Exports the encoder with named inputs and one output, whatever the family."""

    def __init__(self, model: PreTrainedModel, input_names: list[str]) -> None:
        super().__init__()
        self.model = model
        self.input_names = input_names

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.model(**dict(zip(self.input_names, inputs, strict=True))).last_hidden_state


def export_onnx(model: PreTrainedModel, input_names: list[str], path: Path) -> Path:
    """Export ``model`` to ONNX with dynamic batch and sequence axes.

    Args:
        model: An encoder returning ``last_hidden_state``.
        input_names: The tokenizer's ``model_input_names`` (the inputs users will feed).
        path: Where to write the ``.onnx`` file.
    """
    model.eval()
    example = tuple(torch.ones(1, 8, dtype=torch.long) for _ in input_names)
    axes = {name: {0: "batch", 1: "sequence"} for name in [*input_names, "last_hidden_state"]}
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter takes about 1 s per student where the dynamo
        # exporter takes 5 s or more; over a study that is minutes. Its
        # deprecation warning is expected.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _LastHiddenState(model, input_names),
            example,
            str(path),
            input_names=input_names,
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
    return path


def session(path: Path, spec: LatencySpec) -> ort.InferenceSession:
    """An ONNX Runtime session with every setting that affects speed set explicitly.

    Raises:
        ParetokdError: If the requested provider silently fell back to another.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = spec.threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    provider = _PROVIDERS[spec.device]
    sess = ort.InferenceSession(str(path), options, providers=[provider])
    if sess.get_providers()[0] != provider:
        raise ParetokdError(f"onnxruntime fell back from {provider} to {sess.get_providers()[0]}")
    return sess


def _timing_inputs(
    sess: ort.InferenceSession, spec: LatencySpec, vocab_size: int
) -> dict[str, Any]:
    # Token ids do not change the work an encoder does; fixed random ones keep
    # every measurement identical.
    rng = np.random.default_rng(0)
    shape = (spec.batch, spec.seq_len)
    feed: dict[str, Any] = {}
    for inp in sess.get_inputs():
        if inp.name == "input_ids":
            feed[inp.name] = rng.integers(0, vocab_size, size=shape, dtype=np.int64)
        elif inp.name == "attention_mask":
            feed[inp.name] = np.ones(shape, dtype=np.int64)
        else:
            feed[inp.name] = np.zeros(shape, dtype=np.int64)
    return feed


def measure(path: Path, spec: LatencySpec, vocab_size: int) -> LatencyStats:
    """Time the ONNX model at ``path``: warm-up, then runs until both minimums are met."""
    sess = session(path, spec)
    feed = _timing_inputs(sess, spec, vocab_size)
    for _ in range(spec.warmup_runs):
        sess.run(None, feed)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < spec.min_runs or time.perf_counter() - start < spec.min_seconds:
        t0 = time.perf_counter()
        sess.run(None, feed)
        times.append((time.perf_counter() - t0) * 1000.0)
    arr = np.asarray(times)
    return LatencyStats(
        p50_ms=float(np.percentile(arr, 50)),
        p90_ms=float(np.percentile(arr, 90)),
        mean_ms=float(arr.mean()),
        runs=len(times),
    )


def parity(
    model: PreTrainedModel, path: Path, batch: dict[str, torch.Tensor], spec: LatencySpec
) -> float:
    """Largest absolute difference between PyTorch's and ONNX Runtime's outputs on ``batch``.

    Padding positions are compared too: both runtimes must agree everywhere.
    """
    model.eval()
    with torch.no_grad():
        expected = model(**batch).last_hidden_state.numpy()
    sess = session(path, spec)
    feed = {inp.name: batch[inp.name].numpy() for inp in sess.get_inputs()}
    got = sess.run(None, feed)[0]
    return float(np.abs(got - expected).max())


def measure_model(
    model: PreTrainedModel, input_names: list[str], spec: LatencySpec, path: Path
) -> LatencyStats:
    """Export ``model`` to ``path`` and time it there."""
    export_onnx(model, input_names, path)
    return measure(path, spec, model.config.vocab_size)
