"""The anchors' latency: calibrated once per study (the scale of its figures); the drift guard."""

from __future__ import annotations

import logging
from collections.abc import Callable

import optuna
from optuna.trial import TrialState

from paretokd import latency
from paretokd.latency import paired
from paretokd.records import FP32, LatencyStats
from paretokd.search import claims
from paretokd.search.context import (
    Context,
    anchor_onnx,
    anchor_precisions,
    calibrate_anchor,
    set_ladder,
)

log = logging.getLogger(__name__)


TEACHER_LATENCY_ATTR = "teacher_latency"
"""Study user attribute: the teacher's :class:`LatencyStats` at the study's start."""

LADDER_ATTR = "anchor_ladder"
"""Study user attribute: the ladder's rungs (``latency.paired.rungs``) by id, each timed
paired with the teacher at the study's start (its :class:`LatencyStats` on the study's scale)."""


def _attr(name: str, precision: str) -> str:
    """The study attribute ``name`` for the anchors in ``precision``."""
    return name if precision == FP32 else f"{name}_{precision}"


def calibrate(study: optuna.Study, ctx: Context) -> LatencyStats:
    """The ladder of anchors, timed with care once per study and stored in it.

    The teacher's own latency is the scale of every figure of the study
    (``latency.paired``): a candidate's latency is its ratio to an anchor, timed
    side by side, times the anchor's figure on that scale; the anchors below the
    teacher (its rungs) are put on it by their ratio to the teacher. The ladder
    in each reduced precision (the quantised teacher's, the space's) is
    calibrated too: graphs of that precision are paired with it. Sets
    ``ctx.ladder``; a worker or a rerun reads the stored figures.

    Workers started together calibrate once: the calibration is a unit of work
    claimed through the storage (``claims``), so one of them times the anchors
    while the others wait for their figures. Timing them in several processes at
    once would both load the machine during the timings and leave the workers
    on different scales.

    Returns:
        The fp32 teacher's calibration.
    """
    precisions = anchor_precisions(ctx.spec)
    attrs = study.user_attrs
    names = (TEACHER_LATENCY_ATTR, LADDER_ATTR)
    missing = [p for p in precisions if any(_attr(n, p) not in attrs for n in names)]
    if missing:
        key = ",".join(missing)
        rnd = claims.open_round(study, "calibration", key, key, missing, [_UNIT])
        done = claims.work(rnd, lambda _: {p: _time(ctx, p) for p in missing})
        for precision, timings in done[_UNIT].items():
            teacher = timings.pop(paired.TEACHER)
            study.set_user_attr(_attr(TEACHER_LATENCY_ATTR, precision), teacher)
            study.set_user_attr(_attr(LADDER_ATTR, precision), timings)
        attrs = study.user_attrs
    for precision in precisions:
        stored = {paired.TEACHER: attrs[_attr(TEACHER_LATENCY_ATTR, precision)]}
        stored.update(attrs[_attr(LADDER_ATTR, precision)])
        set_ladder(ctx, precision, {k: LatencyStats.from_json(v) for k, v in stored.items()})
    return LatencyStats.from_json(attrs[TEACHER_LATENCY_ATTR])


_UNIT = "teacher"
"""The calibration's one unit of work: every missing precision, timed in turn by one worker."""


def _time(ctx: Context, precision: str) -> dict[str, dict[str, object]]:
    timings = calibrate_anchor(ctx, precision)
    log.info(
        "anchors calibrated in %s: %s",
        precision,
        ", ".join(f"{name} p50 {stats.p50_ms:.2f} ms" for name, stats in timings.items()),
    )
    return {name: stats.to_json() for name, stats in timings.items()}


DRIFT_EVERY = 8
"""The drift guard re-times the teacher after every this many complete trials of a run."""


def check_drift(study: optuna.Study, ctx: Context, trial: int | None = None) -> bool:
    """Re-time the teacher and compare with the p50 the study stored for it.

    A change beyond :data:`paretokd.latency.DRIFT_THRESHOLD` means the machine
    is not running at the speed it had when the study was calibrated (other
    load, thermal or frequency changes). Figures stay comparable, since every
    candidate is timed paired with an anchor, but the raw milliseconds of the
    moment would not be: it is logged and appended to the study's
    ``latency_drift`` user attribute.

    Returns:
        Whether the machine drifted.
    """
    stored = study.user_attrs.get(TEACHER_LATENCY_ATTR)
    if stored is None:
        return False
    baseline = LatencyStats.from_json(stored).p50_ms
    check = latency.check_drift(
        anchor_onnx(ctx), ctx.spec.latency, baseline, ctx.teacher.config.vocab_size
    )
    if not check.drifted:
        log.debug("drift guard: teacher p50 %.2f ms (study: %.2f ms)", check.p50_ms, baseline)
        return False
    log.warning(
        "latency drift: the teacher now runs at p50 %.2f ms, %+.0f%% from the %.2f ms the "
        "study was calibrated at; figures stay on the study's scale (timed paired with it)",
        check.p50_ms,
        100 * (check.ratio - 1),
        baseline,
    )
    events = list(study.user_attrs.get("latency_drift", []))
    events.append({**check.to_dict(), "after_trial": trial})
    study.set_user_attr("latency_drift", events)
    return True


def drift_guard(
    ctx: Context, every: int
) -> Callable[[optuna.Study, optuna.trial.FrozenTrial], None]:
    done = 0

    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        nonlocal done
        if trial.state != TrialState.COMPLETE:
            return
        done += 1
        if done % every == 0:
            check_drift(study, ctx, trial.number)

    return callback
