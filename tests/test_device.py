"""Where training runs (``distill.device``): the choice on this machine, and CUDA where present."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertModel

from paretokd import config, pipeline
from paretokd.config import StudySpec, TaskSpec
from paretokd.distill import TeacherTargets, evaluate, train
from paretokd.distill import device as devices
from paretokd.errors import ParetokdError
from paretokd.models import student
from paretokd.records import Arch

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="no CUDA device on this machine")


def _teacher() -> BertModel:
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=32,
    )
    return BertModel(cfg).eval()


def _batches(n: int = 3) -> list[dict[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    ids = [torch.randint(5, 100, (4, 10), generator=gen) for _ in range(n)]
    return [{"input_ids": i, "attention_mask": torch.ones_like(i)} for i in ids]


def test_auto_is_the_cpu_without_cuda_and_cuda_with_it() -> None:
    assert devices.resolve("auto").type == ("cuda" if CUDA else "cpu")
    assert devices.resolve("cpu") == torch.device("cpu")
    assert not devices.uses_bf16(torch.device("cpu"))  # fp32 on CPUs: bf16 is slower there


@pytest.mark.skipif(CUDA, reason="checks the refusal on a machine without CUDA")
def test_cuda_without_a_gpu_is_a_clear_error() -> None:
    with pytest.raises(ParetokdError, match="distill.device is cuda but PyTorch sees no CUDA"):
        devices.resolve("cuda")


def test_the_spec_takes_a_device_outside_the_studys_identity(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("distill:\n  device: cpu\n")
    spec = config.load(path)
    assert spec.distill.device == "cpu"
    assert StudySpec().distill.device == "auto"
    # Workers with and without a GPU share a study.
    assert spec.hash == StudySpec().hash
    path.write_text("distill:\n  device: tpu\n")
    with pytest.raises(ParetokdError, match="distill.device"):
        config.load(path)


@pytest.mark.skipif(CUDA, reason="checks the refusal on a machine without CUDA")
def test_a_run_asking_for_cuda_stops_before_writing(
    tiny_teacher_dir: Path, tiny_spec_file: Path, tmp_path: Path
) -> None:
    spec = config.override(
        config.load(tiny_spec_file),
        **{"teacher.name": str(tiny_teacher_dir), "distill.device": "cuda"},
    )
    out = tmp_path / "run"
    with pytest.raises(ParetokdError, match="distill.device is cuda"):
        pipeline.prepare(spec, out, None, workers=1)
    assert not out.exists()


def _train_on(device: torch.device) -> tuple[float, float, torch.nn.Module]:
    teacher = _teacher()
    model = student.build(Arch(1, 16, 2, 32), teacher)
    targets = TeacherTargets(teacher, _batches(), keep=True, device=device)
    held_out = TeacherTargets(teacher, _batches(2), keep=True, device=device)
    result, proj = train(
        model,
        targets,
        steps=8,
        learning_rate=1e-2,
        weight_decay=0.0,
        seed=0,
        task=TaskSpec(),
        device=device,
    )
    return result.train_loss, evaluate(model, proj, held_out, TaskSpec()), proj


def test_training_on_the_cpu_leaves_everything_on_the_cpu() -> None:
    loss, held_out, proj = _train_on(torch.device("cpu"))
    assert loss > 0 and 0 <= held_out < 10
    assert {p.device.type for p in proj.parameters()} == {"cpu"}


@needs_cuda
def test_training_on_cuda_matches_the_cpu_and_returns_to_it() -> None:
    """Teacher outputs and training on the GPU in bf16; the student comes back to the CPU."""
    cpu_loss, cpu_held, _ = _train_on(torch.device("cpu"))
    device = devices.resolve("cuda")
    gpu_loss, gpu_held, proj = _train_on(device)
    assert {p.device.type for p in proj.parameters()} == {"cpu"}
    # bf16 changes the numbers a little, not the result.
    assert gpu_held == pytest.approx(cpu_held, rel=0.1, abs=0.02)
    assert gpu_loss == pytest.approx(cpu_loss, rel=0.1, abs=0.02)


@needs_cuda
def test_teacher_outputs_stay_on_the_training_device_and_reload_anywhere(tmp_path: Path) -> None:
    device = devices.resolve("cuda")
    targets = TeacherTargets(_teacher(), _batches(), keep=True, device=device)
    cache = tmp_path / "targets.pt"
    assert not targets.precompute(cache)
    assert targets[0].states[0].device == device
    on_cpu = TeacherTargets(_teacher(), _batches(), keep=True)
    assert on_cpu.precompute(cache)  # written from the CPU: a CPU-only worker reads them
    assert on_cpu[0].states[0].device.type == "cpu"
    assert torch.allclose(on_cpu[0].states[0].float(), targets[0].states[0].cpu().float())
