"""Proxy fidelity: does the search's short distillation rank students as a longer one does?

KD-NAS bets that a few proxy steps order architectures the way a full
distillation would. :func:`validate` measures that bet on a study's own
settings: it samples students spread over the latency range, distils each one
with the search's exact recipe (``distill.proxy_steps``) and again, from a fresh
student, for ``factor`` times as many steps, and reports the rank agreement of
the two held-out losses (Kendall's tau and Spearman's rho).

With ``against="final"`` the comparison is with what users care about: each
architecture is distilled with the final recipe (``distill.final_steps`` on the
full training split, best held-out checkpoint kept) and scored on the study's
evaluation set as it ships, as the finals are.
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
from paretokd.distill import final, recipe, scoring
from paretokd.distill.scoring import EvalSet
from paretokd.distill.targets import TeacherTargets
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
    """Rank agreement, oriented so that 1 means the proxy orders them exactly as the other."""
    spearman_rho: float
    archs: list[dict[str, Any]] = field(default_factory=list)
    """One entry per architecture: ``arch_id``, ``arch``, ``latency_ms``, ``proxy_loss``, and
    ``long_loss`` (``against="long"``) or ``final_loss`` and ``final_score``."""
    proxy_steps: int = 0
    long_steps: int = 0
    """Steps of the other distillation (the final recipe's, ``against="final"``)."""
    seconds: float = 0.0
    against: str = "long"
    metric: str | None = None
    """The evaluation set's metric (``against="final"``); higher is better."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values."""
        return {
            "against": self.against,
            "kendall_tau": self.kendall_tau,
            "spearman_rho": self.spearman_rho,
            "proxy_steps": self.proxy_steps,
            "long_steps": self.long_steps,
            "metric": self.metric,
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
    evalset: EvalSet | None = None,
) -> FidelityResult:
    """Rank agreement between the proxy distillation and a longer one, or the finals' result.

    ``POOL_FACTOR × k`` architectures are sampled from ``spec.space`` and timed;
    the ``k`` kept lie at evenly spaced latency quantiles below the largest
    budget. Each is distilled from a fresh (teacher-initialised, as in the spec)
    student for ``spec.distill.proxy_steps`` steps and, again from a fresh
    student, for ``factor × proxy_steps`` steps, both evaluated on the proxy
    eval split exactly as a search trial is.

    With ``evalset`` (``--against final``), the second distillation is the
    finals' instead: ``distill.final_steps`` on the full training split with the
    best held-out checkpoint kept, scored on ``evalset`` (its metric) from what
    ships, the reduced graph for an int8 architecture.

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
    long_steps = spec.distill.final_steps if evalset is not None else factor * proxy_steps
    with tempfile.TemporaryDirectory(prefix="paretokd-proxy-") as tmp:
        workdir = Path(tmp)
        ctx = context.prepare(spec, teacher, splits, workdir, latency.fingerprint(spec.latency))
        for precision in context.anchor_precisions(spec):
            context.calibrate_anchor(ctx, precision)
        chosen = _choose(ctx, k, seed, budget, say)
        full = final.training_targets(spec, teacher, splits) if evalset is not None else None
        rows: list[dict[str, Any]] = []
        proxy: list[float] = []
        other: list[float] = []
        for i, (arch, ms) in enumerate(chosen, 1):
            # Each from a fresh student, with the search's own recipe, scored as it ships.
            short = _shipped_loss(arch, ctx, proxy_steps)
            row: dict[str, Any] = {
                "arch_id": arch.id,
                "arch": arch.to_dict(),
                "latency_ms": ms,
                "proxy_loss": short,
            }
            if full is None or evalset is None:
                row["long_loss"] = _shipped_loss(arch, ctx, long_steps)
                other.append(row["long_loss"])
                say(f"distil {i}/{len(chosen)} {arch.id}: proxy {short:.4f}, long {other[-1]:.4f}")
            else:
                row["final_loss"], row["final_score"] = _final_score(arch, ctx, full, evalset)
                other.append(-row["final_score"])  # a higher score ranks first, as a lower loss
                say(
                    f"distil {i}/{len(chosen)} {arch.id}: proxy {short:.4f}, final "
                    f"{evalset.metric} {row['final_score']:.4f}"
                )
            proxy.append(short)
            rows.append(row)
    return FidelityResult(
        kendall_tau=kendall_tau(proxy, other),
        spearman_rho=spearman(proxy, other),
        archs=rows,
        proxy_steps=proxy_steps,
        long_steps=long_steps,
        seconds=time.perf_counter() - start,
        against="final" if evalset is not None else "long",
        metric=evalset.metric if evalset is not None else None,
    )


def _choose(
    ctx: context.Context, k: int, seed: int, budget: float, say: Callable[[str], None]
) -> list[tuple[Arch, float]]:
    """Time ``POOL_FACTOR × k`` sampled architectures; keep ``k`` spread below ``budget``.

    Raises:
        ParetokdError: If fewer than two of them fit ``budget``.
    """
    pool = sample_archs(ctx.spec.space, POOL_FACTOR * k, seed)
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
    return chosen


def _final_score(
    arch: Arch, ctx: context.Context, full: TeacherTargets, evalset: EvalSet
) -> tuple[float, float]:
    """The held-out loss and evaluation score of ``arch`` after the finals' recipe, as shipped."""
    spec = ctx.spec
    model = context.build_student(arch, ctx)
    done = recipe.distill_and_score(
        model, full, ctx.proxy_eval, spec, ctx.slicing, spec.distill.final_steps, keep_best=True
    )
    tok = ctx.teacher.tokenizer
    if arch.precision == FP32:
        return done.loss, scoring.score(done.model, tok, evalset, spec).value
    with context.student_graphs(done.model, ctx) as graphs:
        graph = graphs.run(arch.precision)
        loss = recipe.graph_loss(graph, done, ctx.proxy_eval, spec)
        return loss, scoring.score(graph, tok, evalset, spec).value


def _shipped_loss(arch: Arch, ctx: context.Context, steps: int) -> float:
    """The held-out loss of ``arch`` distilled for ``steps``, from its graph when reduced.

    As a search trial scores it: an int8 (or fp16) architecture on its own
    graph's outputs in ONNX Runtime, not on the fp32 model it came from.
    """
    done = context.proxy_distill(context.build_student(arch, ctx), ctx, steps)
    if arch.precision == FP32:
        return done.loss
    with context.student_graphs(done.model, ctx) as graphs:
        return context.graph_scores(done, graphs, arch.precision)[0]
