"""Records for unit tests: a fixed hardware fingerprint and latency figures of a given p50."""

from __future__ import annotations

from paretokd.records import Fingerprint, LatencyStats

FINGERPRINT = Fingerprint(
    device="cpu",
    hardware="test CPU",
    instruction_sets="avx2",
    cores=1,
    provider="CPUExecutionProvider",
    onnxruntime="1.0",
    threads=1,
    inter_op_threads=1,
    spinning=False,
    execution_mode="sequential",
    graph_optimization="all",
    graph="torch.onnx",
    clock="cpu",
    batch=1,
    seq_len=16,
)


def latency(ms: float, p90_factor: float = 1.1) -> LatencyStats:
    """Latency figures with p50 ``ms``."""
    return LatencyStats(p50_ms=ms, p90_ms=ms * p90_factor, mean_ms=ms, runs=10)
