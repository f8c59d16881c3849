"""Reduced-precision graphs (int8 on CPUs, fp16 on GPUs), and exported graphs run like models.

What ships is what is timed and scored: an ``int8`` student is ONNX Runtime's
dynamic quantisation of its fp32 graph (int8 weights, activations quantised
on the fly), an ``fp16`` one the half-precision conversion of it (inputs and
outputs kept in their types). Both are made from the fp32 export, so the
search, the finals and ``paretokd latency`` reduce a graph the same way.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paretokd.config import LatencySpec
from paretokd.latency.session import session
from paretokd.records import FP32
from paretokd.records.measures import graph_name

if TYPE_CHECKING:
    import torch


def graph_path(fp32: Path, precision: str) -> Path:
    """Where the ``precision`` graph made from ``fp32`` lives: ``model.int8.onnx`` beside it."""
    return fp32.with_name(graph_name(fp32.stem, precision))


def reduce_precision(fp32: Path, precision: str) -> Path:
    """Write the ``precision`` graph of the fp32 graph at ``fp32``; returns its path."""
    out = graph_path(fp32, precision)
    if precision == FP32:
        return out
    if precision == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # it logs advice to pre-process the graph on every call
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                quantize_dynamic(str(fp32), str(out), weight_type=QuantType.QInt8)
        finally:
            root.setLevel(level)
    elif precision == "fp16":
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16

        model = convert_float_to_float16(onnx.load(str(fp32)), keep_io_types=True)
        onnx.save(model, str(out))
    else:
        raise ValueError(f"unknown precision {precision!r}")
    return out


class GraphOutput(tuple):
    """A graph's outputs as a model's: ``out[0]``, and ``out.logits`` for a task head."""

    @property
    def logits(self) -> torch.Tensor:
        """The first output (the head's logits, for a model with one)."""
        return self[0]


class GraphModel:
    """An exported graph run in ONNX Runtime, called like the PyTorch model it came from.

    Scoring code written for a model (``model(**batch)[0]``, ``model(**batch).logits``)
    scores the graph that ships with it.
    """

    def __init__(self, path: Path, spec: LatencySpec) -> None:
        self.session = session(path, spec)
        self.inputs = [i.name for i in self.session.get_inputs()]

    def eval(self) -> GraphModel:
        """As ``nn.Module.eval``: a graph has no training mode."""
        return self

    def __call__(self, **batch: Any) -> GraphOutput:
        """The graph's first output on ``batch`` (tensors), as a torch tensor."""
        import torch

        feed = {name: batch[name].numpy() for name in self.inputs}
        return GraphOutput((torch.from_numpy(self.session.run(None, feed)[0]),))
