"""The ONNX Runtime session every timing and parity check runs in, every speed setting explicit."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort

from paretokd.config import LatencySpec
from paretokd.errors import ParetokdError
from paretokd.latency.fingerprint import PROVIDERS, check_device

_OPT_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
_MODES = {
    "sequential": ort.ExecutionMode.ORT_SEQUENTIAL,
    "parallel": ort.ExecutionMode.ORT_PARALLEL,
}


def session(path: Path, spec: LatencySpec) -> ort.InferenceSession:
    """An ONNX Runtime session with every setting that affects speed set explicitly.

    Raises:
        ParetokdError: If the requested provider is missing or silently fell back to another.
    """
    check_device(spec)
    options = ort.SessionOptions()
    options.intra_op_num_threads = spec.threads
    options.inter_op_num_threads = spec.inter_op_threads
    options.execution_mode = _MODES[spec.execution_mode]
    options.graph_optimization_level = _OPT_LEVELS[spec.graph_optimization]
    # Spinning workers burn a core while they wait for work; on a shared
    # machine that steals time from (and is disturbed by) other processes.
    spin = "1" if spec.spinning else "0"
    options.add_session_config_entry("session.intra_op.allow_spinning", spin)
    options.add_session_config_entry("session.inter_op.allow_spinning", spin)
    provider = PROVIDERS[spec.device]
    sess = ort.InferenceSession(str(path), options, providers=[provider])
    if sess.get_providers()[0] != provider:
        raise ParetokdError(f"onnxruntime fell back from {provider} to {sess.get_providers()[0]}")
    return sess
