"""ONNX export parity against PyTorch, and the latency measurement protocol."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import onnxruntime as ort
import pytest
from transformers import AutoModel, AutoTokenizer

from paretokd import latency, student
from paretokd.config import LatencySpec
from paretokd.errors import ParetokdError
from paretokd.space import Arch

FAST = LatencySpec(seq_len=32, warmup_runs=1, min_runs=7, min_seconds=0.02)


@pytest.fixture(scope="module")
def tiny(tiny_teacher_dir: Path) -> tuple:
    return AutoModel.from_pretrained(tiny_teacher_dir), AutoTokenizer.from_pretrained(
        tiny_teacher_dir
    )


@pytest.mark.parametrize("arch", [Arch(2, 32, 2, 64), Arch(4, 64, 4, 128), Arch(1, 64, 2, 64)])
def test_onnx_matches_pytorch(
    tiny: tuple, arch: Arch, tmp_path: Path, sentences: list[str]
) -> None:
    teacher, tok = tiny
    model = student.build(arch, teacher)
    path = latency.export_onnx(model, tok.model_input_names, tmp_path / "m.onnx")
    # Real text of different lengths, so padding and the attention mask are exercised.
    batch = dict(
        tok(sentences[:6], padding=True, truncation=True, max_length=40, return_tensors="pt")
    )
    assert batch["attention_mask"].min() == 0
    assert latency.parity(model, path, batch, FAST) < 1e-4


def test_parity_detects_a_different_model(
    tiny: tuple, tmp_path: Path, sentences: list[str]
) -> None:
    teacher, tok = tiny
    path = latency.export_onnx(
        student.build(Arch(2, 32, 2, 64), teacher), tok.model_input_names, tmp_path / "m.onnx"
    )
    other = student.build(Arch(2, 32, 2, 64), teacher, teacher_init=False)
    batch = dict(tok(sentences[:2], padding=True, return_tensors="pt"))
    assert latency.parity(other, path, batch, FAST) > 1e-2


def test_measure_follows_the_protocol(tiny: tuple, tmp_path: Path) -> None:
    teacher, tok = tiny
    stats = latency.measure_model(teacher, tok.model_input_names, FAST, tmp_path / "t.onnx")
    assert stats.runs >= FAST.min_runs
    assert 0 < stats.p50_ms <= stats.p90_ms
    longer = dataclasses.replace(FAST, min_runs=1, min_seconds=0.2)
    assert latency.measure(tmp_path / "t.onnx", longer, teacher.config.vocab_size).runs > 1


def test_session_settings_are_explicit(tiny: tuple, tmp_path: Path) -> None:
    teacher, tok = tiny
    path = latency.export_onnx(teacher, tok.model_input_names, tmp_path / "t.onnx")
    sess = latency.session(path, dataclasses.replace(FAST, threads=2))
    opts = sess.get_session_options()
    assert opts.intra_op_num_threads == 2 and opts.inter_op_num_threads == 1
    assert sess.get_providers() == ["CPUExecutionProvider"]


def test_fingerprint_describes_the_setup() -> None:
    fp = latency.fingerprint(FAST)
    assert fp.device == "cpu" and fp.provider == "CPUExecutionProvider"
    assert (fp.threads, fp.batch, fp.seq_len) == (1, 1, 32)
    assert fp.onnxruntime == ort.__version__ and fp.cores >= 1 and fp.hardware
    assert fp.key != latency.fingerprint(dataclasses.replace(FAST, seq_len=64)).key


@pytest.mark.skipif(
    "CUDAExecutionProvider" in ort.get_available_providers(), reason="CUDA is available here"
)
def test_cuda_without_a_gpu_is_a_clear_error() -> None:
    with pytest.raises(ParetokdError, match="onnxruntime-gpu"):
        latency.fingerprint(dataclasses.replace(FAST, device="cuda"))


@pytest.mark.skipif(
    "CUDAExecutionProvider" not in ort.get_available_providers(), reason="no CUDA provider"
)
def test_cuda_measurement_runs_on_the_gpu(tiny: tuple, tmp_path: Path) -> None:
    teacher, tok = tiny
    spec = dataclasses.replace(FAST, device="cuda")
    path = latency.export_onnx(teacher, tok.model_input_names, tmp_path / "t.onnx")
    assert latency.session(path, spec).get_providers()[0] == "CUDAExecutionProvider"
    assert latency.measure(path, spec, teacher.config.vocab_size).p50_ms > 0
