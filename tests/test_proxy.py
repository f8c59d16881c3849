"""Proxy fidelity: sampling architectures and ``paretokd validate-proxy`` end to end."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from paretokd.cli import main
from paretokd.config import SpaceSpec
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
