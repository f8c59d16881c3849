"""Proxy fidelity: does the search's short distillation rank students as a longer one does?

KD-NAS bets that a few proxy steps order architectures the way a full
distillation would. :func:`validate` measures that bet on a study's own
settings: it samples students spread over the latency range, distils each one
with the search's exact recipe (``distill.proxy_steps``) and again, from a fresh
student, for ``factor`` times as many steps, and reports the rank agreement of
the two held-out losses (Kendall's tau and Spearman's rho).
"""

from __future__ import annotations

import logging
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paretokd import latency
from paretokd.config import SpaceSpec, StudySpec
from paretokd.errors import ParetokdError
from paretokd.metrics import kendall_tau, spearman
from paretokd.models.data import Splits
from paretokd.models.teacher import Teacher
from paretokd.records import FP32, Arch
from paretokd.search import context, space

log = logging.getLogger(__name__)

POOL_FACTOR = 2
"""Candidates timed per architecture kept: K are picked from ``POOL_FACTOR × K``."""


# --- sampling architectures over the latency range ----------------------------------------


def sample_archs(space_spec: SpaceSpec, n: int, seed: int) -> list[Arch]:
    """``n`` distinct architectures drawn uniformly from the space (all of them if fewer).

    The first ``n`` of one seeded shuffle, so a larger ``n`` extends a smaller one.
    """
    archs = space.all_archs(space_spec)
    random.Random(seed).shuffle(archs)
    return archs[:n]


def spread_by_latency(
    measured: Sequence[tuple[Arch, float]], k: int, max_ms: float
) -> list[tuple[Arch, float]]:
    """Up to ``k`` of ``measured`` (arch, latency) at evenly spaced latency quantiles.

    Architectures slower than ``max_ms`` (the largest budget) are left out: the
    search never trains them, so their ranking does not matter.
    """
    ok = sorted((m for m in measured if m[1] <= max_ms), key=lambda m: m[1])
    if len(ok) <= k:
        return ok
    if k == 1:
        return [ok[len(ok) // 2]]
    picks = sorted({round(i * (len(ok) - 1) / (k - 1)) for i in range(k)})
    return [ok[i] for i in picks]


# --- the check -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FidelityResult:
    """How well the proxy loss ranks architectures as a longer distillation does."""

    kendall_tau: float
    spearman_rho: float
    archs: list[dict[str, Any]] = field(default_factory=list)
    """One entry per architecture: ``arch_id``, ``arch``, ``latency_ms``, ``proxy_loss``,
    ``long_loss``."""
    proxy_steps: int = 0
    long_steps: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values."""
        return {
            "kendall_tau": self.kendall_tau,
            "spearman_rho": self.spearman_rho,
            "proxy_steps": self.proxy_steps,
            "long_steps": self.long_steps,
            "seconds": self.seconds,
            "archs": self.archs,
        }


def validate(
    spec: StudySpec,
    teacher: Teacher,
    splits: Splits,
    k: int = 10,
    factor: int = 4,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> FidelityResult:
    """Rank agreement between the proxy distillation and one ``factor`` times longer.

    ``POOL_FACTOR × k`` architectures are sampled from ``spec.space`` and timed;
    the ``k`` kept lie at evenly spaced latency quantiles below the largest
    budget. Each is distilled from a fresh (teacher-initialised, as in the spec)
    student for ``spec.distill.proxy_steps`` steps and, again from a fresh
    student, for ``factor × proxy_steps`` steps, both evaluated on the proxy
    eval split exactly as a search trial is.

    Raises:
        ParetokdError: If ``k < 2`` or ``factor < 1``, or fewer than two sampled
            architectures fit the largest budget.
    """
    if k < 2:
        raise ParetokdError(f"--archs must be at least 2 to rank anything, got {k}")
    if factor < 1:
        raise ParetokdError(f"--factor must be at least 1, got {factor}")
    say = progress or (lambda _msg: None)
    start = time.perf_counter()
    budget = max(spec.budgets)
    proxy_steps = spec.distill.proxy_steps
    long_steps = factor * proxy_steps
    with tempfile.TemporaryDirectory(prefix="paretokd-proxy-") as tmp:
        workdir = Path(tmp)
        ctx = context.prepare(spec, teacher, splits, workdir, latency.fingerprint(spec.latency))
        for precision in context.anchor_precisions(spec):
            context.calibrate_anchor(ctx, precision)
        pool = sample_archs(spec.space, POOL_FACTOR * k, seed)
        measured = []
        for i, arch in enumerate(pool, 1):
            model = context.build_student(arch, ctx)
            ms = context.time_student(model, ctx, arch.precision).p50_ms
            say(f"latency {i}/{len(pool)} {arch.id}: {ms:.2f} ms")
            measured.append((arch, ms))
        chosen = spread_by_latency(measured, k, budget)
        if len(chosen) < 2:
            raise ParetokdError(
                f"only {len(chosen)} of {len(pool)} sampled architectures run within the "
                f"largest budget ({budget:g} ms): raise the budget or shrink the space"
            )
        rows: list[dict[str, Any]] = []
        proxy: list[float] = []
        long_: list[float] = []
        for i, (arch, ms) in enumerate(chosen, 1):
            # Each from a fresh student, with the search's own recipe, scored as it ships.
            short = _shipped_loss(arch, ctx, proxy_steps)
            long = _shipped_loss(arch, ctx, long_steps)
            say(f"distil {i}/{len(chosen)} {arch.id}: proxy {short:.4f}, long {long:.4f}")
            proxy.append(short)
            long_.append(long)
            rows.append(
                {
                    "arch_id": arch.id,
                    "arch": arch.to_dict(),
                    "latency_ms": ms,
                    "proxy_loss": short,
                    "long_loss": long,
                }
            )
    return FidelityResult(
        kendall_tau=kendall_tau(proxy, long_),
        spearman_rho=spearman(proxy, long_),
        archs=rows,
        proxy_steps=proxy_steps,
        long_steps=long_steps,
        seconds=time.perf_counter() - start,
    )


def _shipped_loss(arch: Arch, ctx: context.Context, steps: int) -> float:
    """The held-out loss of ``arch`` distilled for ``steps``, from its graph when reduced.

    As a search trial scores it: an int8 (or fp16) architecture on its own
    graph's outputs in ONNX Runtime, not on the fp32 model it came from.
    """
    done = context.proxy_distill(context.build_student(arch, ctx), ctx, steps)
    if arch.precision == FP32:
        return done.loss
    return context.graph_scores(done, ctx, arch.precision)[0]
