"""Reduced precision: int8 graphs that run and agree with their fp32 source, searched as shipped."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import numpy as np
import onnxruntime as ort
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from paretokd import config, latency, pipeline
from paretokd.config import LatencySpec
from paretokd.errors import ParetokdError
from paretokd.latency.graph import GraphModel, graph_path, reduce_precision
from paretokd.records import RunRecord
from paretokd.search import context

INT8_MIN_COSINE = 0.85
"""Smallest mean cosine similarity accepted between an int8 graph's token outputs and its fp32
source's. A tiny randomly initialised BERT is the hardest case for dynamic quantisation (its
activations are as small as the rounding): measured 0.94 here, with a relative RMS error of
0.33; trained models keep far more (all-MiniLM-L6-v2: 99.7% of its STS-B score)."""


def _mean_cosine(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    cos = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    return float(cos[mask.astype(bool)].mean())


def test_an_int8_graph_loads_runs_and_matches_its_fp32_source(
    tiny_teacher_dir: Path, tmp_path: Path
) -> None:
    model = AutoModel.from_pretrained(tiny_teacher_dir).eval()
    tok = AutoTokenizer.from_pretrained(tiny_teacher_dir)
    spec = LatencySpec(seq_len=16)
    fp32 = latency.export_onnx(model, tok.model_input_names, tmp_path / "model.onnx", spec)
    int8 = reduce_precision(fp32, "int8")
    assert int8 == graph_path(fp32, "int8") == tmp_path / "model.int8.onnx"
    assert int8.stat().st_size < fp32.stat().st_size  # int8 weights
    texts = ["A short sentence.", "Another one, a little longer."]
    batch = dict(tok(texts, padding=True, return_tensors="pt"))
    sess = ort.InferenceSession(str(int8), providers=["CPUExecutionProvider"])
    feed = {i.name: batch[i.name].numpy() for i in sess.get_inputs()}
    (quantised,) = sess.run(None, feed)
    with torch.no_grad():
        reference = model(**batch)[0].numpy()
    assert quantised.shape == reference.shape
    mask = batch["attention_mask"].numpy()
    assert _mean_cosine(quantised, reference, mask) >= INT8_MIN_COSINE
    # ...and it is the same model: another sentence's outputs are not that close.
    assert _mean_cosine(quantised[::-1], reference, mask * mask[::-1]) < INT8_MIN_COSINE
    # Run like the model it came from, as the scoring code calls it.
    graph = GraphModel(int8, spec)
    assert np.allclose(graph(**batch)[0].numpy(), quantised)


def test_a_students_graphs_are_exported_once_and_reduced_once_per_precision(
    tiny_teacher_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A trained trial is timed in one precision and scored in another: each graph
    # is made once (an export is about a second on a CPU, a quantisation half one).
    model = AutoModel.from_pretrained(tiny_teacher_dir).eval()
    tok = AutoTokenizer.from_pretrained(tiny_teacher_dir)
    made: list[str] = []

    def counted(original: Callable[..., Path], name: str) -> Callable[..., Path]:
        def call(*args: object, **kwargs: object) -> Path:
            made.append(name)
            return original(*args, **kwargs)

        return call

    monkeypatch.setattr(latency, "export_onnx", counted(latency.export_onnx, "export"))
    monkeypatch.setattr(context, "reduce_precision", counted(context.reduce_precision, "reduce"))
    ctx = cast(
        context.Context,
        SimpleNamespace(teacher=SimpleNamespace(tokenizer=tok), spec=config.load(None)),
    )
    graphs = context.StudentGraphs(model, ctx, tmp_path)
    int8 = graphs.path("int8")
    assert graphs.path("int8") == int8 and graphs.path("fp32") == tmp_path / "m.onnx"
    assert graphs.run("int8").session is not None
    assert made.count("export") == 1
    assert made.count("reduce") == 1  # int8, once; the fp32 graph is the export itself


def test_precision_follows_the_latency_device() -> None:
    spec = config.load(None)
    assert spec.space.precision == ("fp32", "int8")
    cuda = dataclasses.replace(spec, latency=dataclasses.replace(spec.latency, device="cuda"))
    # On a GPU, the reduced precision is fp16.
    assert config.validate(cuda).space.precision == ("fp32", "fp16")
    fp16_cpu = dataclasses.replace(spec, space=dataclasses.replace(spec.space, precision=("fp16",)))
    with pytest.raises(ParetokdError, match="space.precision"):
        config.validate(fp16_cpu)


def test_int8_candidates_are_timed_and_scored_as_they_ship(
    tiny_teacher_dir: Path, corpus_file: Path, tiny_spec_file: Path, tmp_path: Path
) -> None:
    spec = config.override(
        config.load(tiny_spec_file),
        trials=8,
        **{"teacher.name": str(tiny_teacher_dir), "data.source": str(corpus_file)},
    )
    result = pipeline.run(spec, out=tmp_path / "run", show_progress=False)
    int8 = [t for t in result.trials if t.arch.precision == "int8" and t.feasible]
    assert int8, "the search samples int8 students"
    for t in int8:
        if t.cached_from is None:
            assert "graph_s" in t.timings  # scored on the int8 graph's own outputs
    # Distilled once, shipped in both precisions: every trained student has a sibling
    # trial in the other precision, the hand-crafted reference included.
    by_arch = {t.arch: t for t in result.trials}
    for t in result.trials:
        if t.feasible and t.cached_from is None:
            other = "fp32" if t.arch.precision == "int8" else "int8"
            sibling = by_arch[dataclasses.replace(t.arch, precision=other)]
            assert sibling.cached_from in (f"trial {t.number}", None)
    assert any(t.cached_from == "reference" and t.arch.precision == "int8" for t in result.trials)
    run = RunRecord.read(tmp_path / "run" / "recommendations.json")
    qt = run.quantized_teacher
    assert qt is not None and qt.arch.precision == "int8" and qt.name == "teacher, int8"
    assert qt.latency.ratio is not None and 0 <= qt.proxy_loss < 1
    for pick in run.picks:
        final = run.final_of(pick)
        assert final is not None and final.onnx.name == final.arch.graph_file
        assert final.onnx.is_file() and (final.dir / "model.onnx").is_file()
