"""Proxy fidelity: sampling architectures and ``paretokd validate-proxy`` end to end."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from paretokd.cli import main
from paretokd.config import SpaceSpec
from paretokd.metrics import kendall_tau
from paretokd.records import Arch
from paretokd.search import proxy
from paretokd.search.space import all_archs, derive


def test_sampling_is_a_stable_prefix() -> None:
    space = derive(SpaceSpec(), Arch(6, 384, 12, 1536))  # all-MiniLM-L6-v2's
    assert len(all_archs(space)) == 6 * 12 * 6 * 2  # each in fp32 and int8
    assert proxy.sample_archs(space, 10, 3) == proxy.sample_archs(space, 40, 3)[:10]


def test_spread_by_latency_skips_over_budget() -> None:
    measured = [(Arch(i, 64, 2, 128), float(i)) for i in range(1, 12)]
    picked = proxy.spread_by_latency(measured, 3, max_ms=9.0)
    assert [ms for _, ms in picked] == [1.0, 5.0, 9.0]


@pytest.fixture()
def one_torch_thread() -> Iterator[None]:
    # Two OpenMP threads on a busy 2-core machine spin-wait on each other.
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.usefixtures("one_torch_thread")
def test_validate_proxy_command(
    tiny_spec_file: Path, tiny_teacher_dir: Path, corpus_file: Path
) -> None:
    args = ["validate-proxy", "--study", str(tiny_spec_file), "--teacher", str(tiny_teacher_dir)]
    args += ["--data", str(corpus_file), "--archs", "4", "--factor", "2"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert {"kendall_tau", "spearman_rho", "archs", "proxy_steps", "long_steps"} <= set(out)
    assert len(out["archs"]) == 4
    assert out["long_steps"] == 2 * out["proxy_steps"]
    assert -1.0 <= out["kendall_tau"] <= 1.0
    assert -1.0 <= out["spearman_rho"] <= 1.0
    for row in out["archs"]:
        assert {"arch_id", "latency_ms", "proxy_loss", "long_loss"} <= set(row)


def test_validate_proxy_rejects_one_arch(
    tiny_spec_file: Path, tiny_teacher_dir: Path, corpus_file: Path
) -> None:
    args = ["validate-proxy", "--study", str(tiny_spec_file), "--teacher", str(tiny_teacher_dir)]
    args += ["--data", str(corpus_file), "--archs", "1"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert "--archs" in result.stderr


@pytest.mark.usefixtures("one_torch_thread")
def test_validate_proxy_against_the_finals_evaluation(
    tiny_spec_file: Path, tiny_teacher_dir: Path, corpus_file: Path, sentences: list[str]
) -> None:
    pairs = tiny_spec_file.with_name("pairs.tsv")
    rows = [
        f"{a}\t{b}\t{len(set(a.lower().split()) & set(b.lower().split()))}"
        for a, b in zip(sentences[:40], sentences[1:41], strict=True)
    ]
    pairs.write_text("one\ttwo\tscore\n" + "\n".join(rows) + "\n")
    tiny_spec_file.write_text(
        tiny_spec_file.read_text()
        + f"evaluation: {{source: {pairs}, text_columns: [one, two], label_column: score}}\n"
    )
    args = ["validate-proxy", "--study", str(tiny_spec_file), "--teacher", str(tiny_teacher_dir)]
    args += ["--data", str(corpus_file), "--archs", "3", "--against", "final"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["against"] == "final" and out["metric"] == "spearman"
    assert out["long_steps"] == 6  # the tiny spec's final_steps
    assert len(out["archs"]) == 3
    for row in out["archs"]:
        assert -1.0 <= row["final_score"] <= 1.0
        assert row["final_loss"] > 0
    # Agreement means a lower proxy loss where the final score is higher.
    proxy_losses = [r["proxy_loss"] for r in out["archs"]]
    scores = [r["final_score"] for r in out["archs"]]
    assert out["kendall_tau"] == pytest.approx(kendall_tau(proxy_losses, [-s for s in scores]))


def test_validate_proxy_against_final_needs_an_evaluation_set(
    tiny_spec_file: Path, tiny_teacher_dir: Path, corpus_file: Path
) -> None:
    args = ["validate-proxy", "--study", str(tiny_spec_file), "--teacher", str(tiny_teacher_dir)]
    args += ["--data", str(corpus_file), "--against", "final"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert "evaluation.source" in result.stderr
