"""Latency: export to ONNX as shipped, the timing protocol, the hardware fingerprint, drift.

Knows ONNX Runtime and torch (for export), not Optuna.
"""

from paretokd.latency.drift import DRIFT_THRESHOLD, DriftCheck, check_drift
from paretokd.latency.export import (
    export_onnx,
    onnx_vocab_size,
    parity,
)
from paretokd.latency.fingerprint import (
    EXPORT_ATTENTION,
    OPSET,
    check_device,
    clock,
    fingerprint,
    graph_kind,
)
from paretokd.latency.protocol import (
    BLOCK_MIN_RUNS,
    BLOCK_SECONDS,
    CI_LEVEL,
    host_lock,
    lock_path,
    measure,
    measure_model,
    median_ci,
    summarise,
)
from paretokd.latency.session import session

__all__ = [
    "BLOCK_MIN_RUNS",
    "BLOCK_SECONDS",
    "CI_LEVEL",
    "DRIFT_THRESHOLD",
    "EXPORT_ATTENTION",
    "OPSET",
    "DriftCheck",
    "check_device",
    "check_drift",
    "clock",
    "export_onnx",
    "fingerprint",
    "graph_kind",
    "host_lock",
    "lock_path",
    "measure",
    "measure_model",
    "median_ci",
    "onnx_vocab_size",
    "parity",
    "session",
    "summarise",
]
