"""Paired timing: a candidate timed in alternating blocks with a fixed anchor graph.

A single p50 measures the model and the machine's state at that moment: on this
project's 2-core machines a teacher's p50 read 37.8 ms in a fresh process and
27.2 ms a minute later, and +14% to +49% after minutes of training. A study
compares architectures timed an hour apart, and ships students timed after
their training, so a raw figure cannot be trusted across that time.

What survives a change of state is a ratio measured in one state: the
candidate and an anchor (the study's teacher, or a smaller graph cut from it:
see below) are timed in alternating blocks of about 40 ms, in ABBA order so
that a trend within the measurement cancels, and each round gives the ratio of
the two blocks' mean run times. The candidate's latency is the median of the
rounds' ratios times the anchor's latency on the study's scale, calibrated once
per study (:func:`calibrate_ladder`); its interval is a bootstrap over the
rounds, times the same figure. A speed-up over the teacher is the teacher's
figure over the candidate's, so it comes with an interval of its own.

Why means, and every round: the teacher's block is one ~40 ms run, the
candidate's many short runs. A hiccup of the machine (an
interrupt, caches lost to another process) lands inside the teacher's one run
but in only one of the candidate's; a median of the candidate's runs skips it,
the teacher's single run cannot, so a ratio of medians read small models low
on a disturbed machine. Means over blocks of equal length absorb the same
hiccups on both sides. Dropping the
disturbed rounds before the ratio selected rounds by the noisy teacher run and
did no better; the median over rounds is what stands up to a disturbed round.
Beside a spinning, a bursting, a memory-copying and a training neighbour
(``bench/paired_estimators.py``, eight students paired with the teacher), the
p95 of this ratio's deviation from the quiet machine's was 2.9% to 9.0%, its
worst 9.2%; for the pooled medians over the quietest rounds 3.5% to 12.4%,
worst 20.3%.

What a ratio to the teacher does not absorb: a graph that streams its weights
from memory (the teacher) slows more than one that fits in the caches (a
one-layer student) when other tenants share them, so a small student's ratio
to the teacher moves with the host's state (a 0.7 ms student read 16% apart in
two quiet moments). Hence a ladder of anchors (:func:`rungs`): beside the
teacher, graphs cut from it of one layer, full width and a third of it. Each
rung's ratio to the teacher is timed once per study, side by side, which puts
it on the study's scale; a candidate is paired with the anchor nearest its own
latency (:func:`nearest`), which shares its caches' fate; a later timing of the
same graph (a confirmation, the shipped student) names the anchor its first
timing used. Beside five neighbours (``bench/paired_estimators.py``, eight
students from 0.03 to 0.5 of the teacher, fp32 and int8), the p95 of a figure's
deviation from the quiet machine's was 1.9% to 4.8% (worst 5.0%) with the
nearest anchor, 2.9% to 9.0% (worst 9.2%) always with the teacher.

A machine that disturbs many rounds widens the interval; while it is wider than
``latency.interval_target``, more rounds follow, up to twice the rounds asked for.

Before either is timed, both are warmed up until consecutive blocks agree
(:func:`settle`): a cold process is never trusted. The anchor is settled once
per process and re-warmed with one block before each candidate.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from paretokd.config import LatencySpec
from paretokd.latency.export import onnx_vocab_size
from paretokd.latency.fingerprint import clock
from paretokd.latency.protocol import Run, block, host_lock, runner, settle, summarise
from paretokd.latency.session import session
from paretokd.records import Arch, LatencyStats

ROUND_BLOCK_SECONDS = 0.04
"""Timed time in each block of a round, candidate and anchor alike.

Candidate and anchor blocks last about as long, so a hiccup of the machine is
as likely to land in either; shorter blocks than the single-model protocol's
keep a paired timing's cost near a single one's.
"""

ROUND_BLOCK_RUNS = 1
"""A block of a round may hold a single run: its length is its time, not a count of runs.

The teacher's block is one ~40 ms run on MiniLM, a 22 ms student's two runs.
With the single-model protocol's five runs at least, that student's blocks
lasted 110 ms against the teacher's 40 ms, and its timing cost twice a small
student's.
"""

WARM_ROUNDS = 1
"""Untimed rounds of the alternation before the timed ones."""

BOOTSTRAP = 400
"""Resamples of the rounds behind the ratio's interval."""

TEACHER = "teacher"
"""The name of the ladder's top anchor."""


@dataclass(frozen=True)
class Anchor:
    """A graph candidates are paired with, and its latency on the study's scale."""

    name: str
    """:data:`TEACHER`, or the id of a rung cut from the teacher (:func:`rungs`)."""
    path: Path
    ms: float
    """Its p50 on the study's scale: the teacher's calibration, or a rung's ratio to
    the teacher (timed side by side) times it."""


def rungs(teacher: Arch) -> tuple[Arch, ...]:
    """The ladder's graphs below the teacher: one layer at full width, one at a third.

    Each is about a sixth of the one above it on MiniLM (L1-H384 reads 0.17 of the
    teacher, L1-H128 0.03), so every student has an anchor within a few times its
    own latency. Rungs a teacher is too small for (one layer, one head) are left out.
    """
    h, a, f = teacher.hidden_size, teacher.num_heads, teacher.intermediate_size
    out = [Arch(1, h, a, f)] if teacher.num_layers > 1 else []
    heads = max(1, round(a / 3))
    if heads < a:
        out.append(Arch(1, heads * (h // a), heads, max(1, f * heads // a)))
    return tuple(out)


def nearest(ladder: Sequence[Anchor], ms: float) -> Anchor:
    """The anchor of ``ladder`` whose latency is nearest ``ms`` on a log scale."""
    return min(ladder, key=lambda anchor: abs(math.log(anchor.ms / ms)))


@dataclass(frozen=True)
class Paired:
    """A candidate timed against the anchor, round by round."""

    candidate_blocks: tuple[tuple[float, ...], ...]
    """The candidate's runs (ms on the clock), one tuple per round."""
    anchor_blocks: tuple[tuple[float, ...], ...]
    """The anchor's runs in the same rounds."""
    kept: tuple[int, ...]
    """The rounds whose runs describe the candidate's own spread (see :func:`quiet_rounds`)."""
    candidate: LatencyStats
    """The candidate's own runs in the kept rounds (the machine's state at the time)."""
    anchor: LatencyStats
    """The anchor's runs in the kept rounds."""
    against: Anchor
    """The anchor the candidate was paired with, and its latency on the study's scale."""

    @property
    def round_ratios(self) -> np.ndarray:
        """Each round's ratio: the candidate block's mean run time over the anchor block's."""
        return _round_ratios(self.candidate_blocks, self.anchor_blocks)

    @property
    def ratio(self) -> float:
        """The median of :attr:`round_ratios` over every round."""
        return float(np.median(self.round_ratios))

    @property
    def ratio_ci(self) -> tuple[float, float]:
        """A 95% interval for :attr:`ratio`: a bootstrap over the rounds (seeded)."""
        return _bootstrap(self.round_ratios)

    def stats(self) -> LatencyStats:
        """The candidate's latency on the study's scale: the ratio times the anchor's latency."""
        ratio, (lo, hi), c = self.ratio, self.ratio_ci, self.candidate
        anchor_ms = self.against.ms
        # The distribution of runs keeps its shape; the scale is the anchor's.
        scale = ratio * anchor_ms / c.p50_ms
        return LatencyStats(
            p50_ms=ratio * anchor_ms,
            p90_ms=c.p90_ms * scale,
            mean_ms=c.mean_ms * scale,
            runs=c.runs,
            p99_ms=c.p99_ms * scale if c.p99_ms is not None else None,
            ci_ms=(lo * anchor_ms, hi * anchor_ms),
            min_ms=c.min_ms * scale if c.min_ms is not None else None,
            seconds=c.seconds,
            measured_at=c.measured_at,
            lock_wait_s=c.lock_wait_s,
            clock=c.clock,
            wall_p50_ms=c.wall_p50_ms,
            runs_dropped=sum(len(b) for b in self.candidate_blocks) - c.runs,
            ratio=ratio,
            ratio_ci=(lo, hi),
            rounds=len(self.candidate_blocks),
            raw_p50_ms=c.p50_ms,
            anchor_p50_ms=self.anchor.p50_ms,
            anchor=self.against.name,
        )


def _round_ratios(cand: Sequence[Sequence[float]], anch: Sequence[Sequence[float]]) -> np.ndarray:
    return np.array([np.mean(c) / np.mean(a) for c, a in zip(cand, anch, strict=True)])


def _bootstrap(ratios: np.ndarray) -> tuple[float, float]:
    """A seeded 95% bootstrap interval of the median of the rounds' ``ratios``."""
    rng = np.random.default_rng(0)
    draws = np.median(ratios[rng.integers(0, len(ratios), (BOOTSTRAP, len(ratios)))], axis=1)
    lo, hi = np.percentile(draws, [2.5, 97.5])
    return float(lo), float(hi)


def quiet_rounds(
    cand: list[list[float]], anch: list[list[float]], tolerance: float | None
) -> list[int]:
    """The rounds in which neither block's median is ``tolerance`` above its quietest block's.

    When fewer than half the rounds are that quiet, the quietest half counts.
    These rounds describe the candidate's own spread (its p90, p99) in the
    machine's quieter moments; the ratio is read from every round.
    """
    n = len(cand)
    if tolerance is None:
        return list(range(n))
    excess = []
    for blocks in (cand, anch):
        medians = [float(np.median(b)) for b in blocks]
        excess.append([m / min(medians) - 1.0 for m in medians])
    worst = [max(c, a) for c, a in zip(*excess, strict=True)]
    quiet = [i for i in range(n) if worst[i] <= tolerance]
    if len(quiet) * 2 >= n:
        return quiet
    return sorted(sorted(range(n), key=lambda i: worst[i])[: (n + 1) // 2])


def measure_paired(
    candidate: Path,
    ladder: Sequence[Anchor],
    spec: LatencySpec,
    rounds: int | None = None,
    vocab_size: int | None = None,
    anchor: str | None = None,
) -> Paired:
    """Time ``candidate`` against an anchor of ``ladder`` in alternating blocks.

    The anchor is the one named ``anchor`` (a confirmation or a shipped student
    is paired as its search trial was), else the one nearest the candidate's
    latency, read from one block once it has settled (see the module docstring).

    With ``spec.interval_target``, rounds go on, :data:`EXTRA_ROUNDS` at a time and up
    to twice ``rounds``, while the ratio's 95% interval is wider than that fraction of
    the ratio either side: a machine that disturbs many rounds gets more of them, a
    quiet one pays for ``rounds`` only.

    Args:
        candidate: The ``.onnx`` file to time.
        ladder: The anchors it may be paired with (the study's teacher and its rungs).
        spec: The latency setup.
        rounds: Rounds of one candidate and one anchor block; ``spec.rounds`` by default.
        vocab_size: Upper bound of the random token ids; read from the graphs when omitted.
        anchor: The name of the anchor to pair with; the nearest one when omitted or
            not on the ladder.
    """
    rounds = rounds or spec.rounds
    limit = 2 * rounds if spec.interval_target is not None else rounds
    which = clock(spec)
    on_cpu = which == "cpu"
    cand_run = runner(session(candidate, spec), spec, vocab_size or onnx_vocab_size(candidate) or 1)
    cand: list[list[float]] = []
    anch: list[list[float]] = []
    gc_was_enabled = gc.isenabled()
    with host_lock() as waited:
        settle(cand_run, spec, on_cpu)
        against = _pair_with(ladder, anchor, cand_run, on_cpu)
        anchor_run = _anchor_runner(against.path, spec, vocab_size)
        anchor_run.warm(spec, on_cpu)
        # Each model settled alone; the alternation itself (each evicting the other's
        # weights from the caches) is warmed by one untimed round, so a fresh process's
        # first figure is not read cold (one read 4.9% high without it).
        for _ in range(WARM_ROUNDS):
            _round_block(anchor_run, on_cpu)
            _round_block(cand_run, on_cpu)
        gc.disable()  # a collection inside a timed run is noise, not the model
        started, t0 = time.time(), time.perf_counter()
        try:
            while len(cand) < rounds or (len(cand) < limit and not _narrow(cand, anch, spec)):
                step = rounds if not cand else min(EXTRA_ROUNDS, limit - len(cand))
                for r in range(len(cand), len(cand) + step):
                    # ABBA: a trend within the measurement weighs on both alike.
                    first_anchor = r % 2 == 0
                    if first_anchor:
                        anch.append(_round_block(anchor_run, on_cpu))
                    cand.append(_round_block(cand_run, on_cpu))
                    if not first_anchor:
                        anch.append(_round_block(anchor_run, on_cpu))
        finally:
            if gc_was_enabled:
                gc.enable()
        seconds = time.perf_counter() - t0
    kept = quiet_rounds(cand, anch, spec.block_tolerance)
    extra = {"seconds": seconds, "measured_at": started, "lock_wait_s": waited(), "clock": which}
    return Paired(
        tuple(tuple(b) for b in cand),
        tuple(tuple(b) for b in anch),
        tuple(kept),
        summarise([t for i in kept for t in cand[i]], **extra),
        summarise([t for i in kept for t in anch[i]], **extra),
        against,
    )


def _round_block(run: Run, on_cpu: bool) -> list[float]:
    """One block of a round: :data:`ROUND_BLOCK_SECONDS` of runs, a single run if it is longer."""
    return block(run, on_cpu, ROUND_BLOCK_RUNS, ROUND_BLOCK_SECONDS)


def _pair_with(ladder: Sequence[Anchor], name: str | None, cand_run: Run, on_cpu: bool) -> Anchor:
    """The anchor named ``name``, else the one nearest one settled block of ``cand_run``."""
    named = [a for a in ladder if a.name == name]
    if named:
        return named[0]
    probe = _round_block(cand_run, on_cpu)
    return nearest(ladder, float(np.median(probe)))


EXTRA_ROUNDS = 4
"""Rounds added at a time while a paired timing's interval is too wide (an even number: ABBA)."""


def _narrow(cand: list[list[float]], anch: list[list[float]], spec: LatencySpec) -> bool:
    """Whether the ratio's interval over the rounds so far is within ``spec.interval_target``."""
    assert spec.interval_target is not None
    ratios = _round_ratios(cand, anch)
    lo, hi = _bootstrap(ratios)
    return (hi - lo) / 2 <= spec.interval_target * float(np.median(ratios))


class _Anchor:
    """The anchor's session, opened once per process: every candidate is paired with it."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.settled = False

    def __call__(self) -> None:
        self.run()

    def warm(self, spec: LatencySpec, on_cpu: bool) -> None:
        """Settle the anchor the first time in this process; afterwards one untimed block.

        Settling is about the process (a cold session, lazy allocations), which
        happens once; what changes later is the machine, which the rounds'
        ratio absorbs. One block brings the anchor's weights back into the
        caches the candidate used.
        """
        if self.settled:
            _round_block(self.run, on_cpu)
            return
        settle(self.run, spec, on_cpu)
        self.settled = True


_ANCHORS: dict[tuple[Path, LatencySpec], _Anchor] = {}


def _anchor_runner(anchor: Path, spec: LatencySpec, vocab_size: int | None) -> _Anchor:
    key = (anchor.resolve(), spec)
    if key not in _ANCHORS:
        vocab = vocab_size or onnx_vocab_size(anchor) or 1
        _ANCHORS[key] = _Anchor(runner(session(anchor, spec), spec, vocab))
    return _ANCHORS[key]


def calibrate(
    anchor: Path, spec: LatencySpec, vocab_size: int | None = None, blocks: int | None = None
) -> LatencyStats:
    """The anchor's own latency, timed with care once per study: the scale of every figure.

    Settled first, then ``blocks`` blocks (``spec.calibration_rounds`` by default)
    of about 50 ms each, as short as an anchor's block in a round (two runs of
    MiniLM); the p50 of their runs. Blocks of five runs cost 2.5x the time for
    the same figure: six alternations of the two on MiniLM read p50s 0.8% apart
    on average (the largest gap 2.1%), each spreading 3.7-3.9% across the six.
    """
    which = clock(spec)
    on_cpu = which == "cpu"
    run = _anchor_runner(anchor, spec, vocab_size)
    gc_was_enabled = gc.isenabled()
    with host_lock() as waited:
        settle(run, spec, on_cpu)
        run.settled = True
        gc.disable()
        started, t0 = time.time(), time.perf_counter()
        try:
            timed = [
                block(run, on_cpu, ROUND_BLOCK_RUNS)
                for _ in range(blocks or spec.calibration_rounds)
            ]
        finally:
            if gc_was_enabled:
                gc.enable()
        seconds = time.perf_counter() - t0
    times = [t for b in timed for t in b]
    return summarise(times, seconds=seconds, measured_at=started, lock_wait_s=waited(), clock=which)


def calibrate_ladder(
    graphs: dict[str, Path], spec: LatencySpec, vocab_size: int | None = None
) -> dict[str, LatencyStats]:
    """Time a ladder of anchors with care once per study: the scale of its figures.

    Args:
        graphs: The anchors' graphs by name, the teacher (:data:`TEACHER`) first,
            then its rungs (:func:`rungs`).
        spec: The latency setup.
        vocab_size: Upper bound of the random token ids; read from the graphs when omitted.

    Returns:
        Each anchor's timing by name: the teacher's own (:func:`calibrate`; its p50
        is the scale), then each rung's ratio to it, timed side by side as a
        confirmation is (``spec.confirm_rounds`` rounds, more while its interval is
        wide), times that p50. Over 40 rounds, the rungs of all-MiniLM-L6-v2 read
        within 0.9-2.3% either side (95%), inside the 3% a confirmation asks for;
        the 16 rounds more cost 1.5 s a rung.
    """
    teacher = calibrate(graphs[TEACHER], spec, vocab_size)
    top = [Anchor(TEACHER, graphs[TEACHER], teacher.p50_ms)]
    out = {TEACHER: teacher}
    for name, graph in graphs.items():
        if name != TEACHER:
            timed = measure_paired(graph, top, spec, spec.confirm_rounds, vocab_size, TEACHER)
            out[name] = timed.stats()
    return out


def ladder(graphs: dict[str, Path], timings: dict[str, LatencyStats]) -> tuple[Anchor, ...]:
    """The anchors timed in ``timings`` (:func:`calibrate_ladder`), their ``graphs`` here."""
    return tuple(Anchor(name, graphs[name], stats.p50_ms) for name, stats in timings.items())
