"""ONNX export of a model exactly as it ships, and ONNX–PyTorch parity."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from paretokd.config import LatencySpec
from paretokd.latency.fingerprint import EXPORT_ATTENTION, OPSET
from paretokd.latency.session import session

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel


def _first_output(model: PreTrainedModel, input_names: list[str]) -> torch.nn.Module:
    """The model with positional inputs and one output: its first (``last_hidden_state``, or
    ``logits`` for a model with a task head), whatever the family."""
    import torch

    class FirstOutput(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.model(**dict(zip(input_names, inputs, strict=True)))[0]

    # In eval mode: torch.onnx.export puts the module it is given back in the mode it
    # found it in, and a new module is in training mode, which would leave ``model``
    # (a submodule) training after the export, with dropout on in every later forward.
    return FirstOutput().eval()


@contextlib.contextmanager
def _attention(model: PreTrainedModel, implementation: str) -> Iterator[None]:
    previous = getattr(model.config, "_attn_implementation", None)
    try:
        model.set_attn_implementation(implementation)
    except (AttributeError, ValueError, ImportError):
        previous = None  # a family without switchable attention: export it as it is
    try:
        yield
    finally:
        if previous is not None and previous != implementation:
            model.set_attn_implementation(previous)


def export_onnx(
    model: PreTrainedModel,
    input_names: list[str],
    path: Path,
    spec: LatencySpec | None = None,
) -> Path:
    """Export ``model`` to ONNX with dynamic batch and sequence axes.

    Args:
        model: An encoder, bare or with a task head. The graph's one output is
            the model's first: ``last_hidden_state``, or the head's ``logits``. Its attention
            implementation is switched to :data:`EXPORT_ATTENTION` for the export
            and restored afterwards.
        input_names: The tokenizer's ``model_input_names`` (the inputs users will feed).
        path: Where to write the ``.onnx`` file.
        spec: The latency setup; with ``transformer_fusion`` the graph is
            rewritten by ONNX Runtime's transformer optimizer (fused attention,
            layer norms, GELU) for the model's heads and hidden size.
    """
    import torch

    model.eval()
    # Token type 1 does not exist in RoBERTa's one-row table: every input other
    # than the ids and the mask is zeros.
    example = {
        name: torch.ones(1, 8, dtype=torch.long)
        if name in ("input_ids", "attention_mask")
        else torch.zeros(1, 8, dtype=torch.long)
        for name in input_names
    }
    with torch.no_grad():
        output, value = next(iter(model(**example).items()))
    axes = {name: {0: "batch", 1: "sequence"} for name in input_names}
    # A sequence classifier's logits have no sequence axis.
    axes[output] = {0: "batch", 1: "sequence"} if value.dim() == 3 else {0: "batch"}
    with warnings.catch_warnings(), torch.no_grad(), _attention(model, EXPORT_ATTENTION):
        # The TorchScript exporter takes about 1 s per student where the dynamo
        # exporter takes 5 s or more; over a study that is minutes. Its
        # deprecation warning is expected.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _first_output(model, input_names),
            tuple(example.values()),
            str(path),
            input_names=input_names,
            output_names=[output],
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )
    if spec is not None and spec.transformer_fusion:
        _fuse(path, model, spec)
    return path


def _fuse(path: Path, model: PreTrainedModel, spec: LatencySpec) -> None:
    # Off by default: on CPU (1 thread, batch 1 x 128) the fused graph of
    # all-MiniLM-L6-v2 and of students ran 6-12% slower than ONNX Runtime's
    # own online optimisations of the plain graph. It is here for GPUs, where
    # the fused Attention kernel is the usual win.
    from onnxruntime.transformers.optimizer import optimize_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fused = optimize_model(
            str(path),
            model_type="bert",
            num_heads=model.config.num_attention_heads,
            hidden_size=model.config.hidden_size,
            use_gpu=spec.device == "cuda",
        )
    fused.save_model_to_file(str(path))


def parity(
    model: PreTrainedModel, path: Path, batch: dict[str, torch.Tensor], spec: LatencySpec
) -> float:
    """Largest absolute difference between PyTorch's and ONNX Runtime's outputs on ``batch``.

    The first output is compared (``last_hidden_state``, or a head's ``logits``),
    at padding positions too: both runtimes must agree everywhere.
    """
    import torch

    model.eval()
    with torch.no_grad():
        expected = model(**batch)[0].numpy()
    sess = session(path, spec)
    feed = {inp.name: batch[inp.name].numpy() for inp in sess.get_inputs()}
    got = sess.run(None, feed)[0]
    return float(np.abs(got - expected).max())


# --- sessions ---------------------------------------------------------------------


def onnx_vocab_size(path: Path) -> int | None:
    """The vocabulary size of the embedding that ``input_ids`` indexes, read from the graph."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    dims = {init.name: list(init.dims) for init in graph.initializer}
    for node in graph.node:
        if "input_ids" in node.input:
            for name in node.input:
                if len(dims.get(name, [])) == 2:
                    return int(dims[name][0])
    return None
