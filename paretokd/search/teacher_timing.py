"""The teacher's latency: calibrated once per study (the scale of its figures); the drift guard."""

from __future__ import annotations

import logging
from collections.abc import Callable

import optuna
from optuna.trial import TrialState

from paretokd import latency
from paretokd.records import FP32, LatencyStats
from paretokd.search import claims
from paretokd.search.context import Context, anchor_onnx, anchor_precisions, calibrate_anchor

log = logging.getLogger(__name__)


TEACHER_LATENCY_ATTR = "teacher_latency"
"""Study user attribute: the teacher's :class:`LatencyStats` at the study's start."""


def _attr(precision: str) -> str:
    """The study attribute of the teacher's calibration in ``precision``."""
    return TEACHER_LATENCY_ATTR if precision == FP32 else f"{TEACHER_LATENCY_ATTR}_{precision}"


def calibrate(study: optuna.Study, ctx: Context) -> LatencyStats:
    """The teacher's own latency, timed with care once per study and stored in it.

    It is the scale of every figure of the study (``latency.paired``): a
    candidate's latency is its ratio to the teacher, timed side by side, times
    this. The teacher in each reduced precision (the quantised teacher's, the
    space's) is calibrated too: graphs of that precision are paired with it.
    Sets ``ctx.anchor_ms``; a worker or a rerun reads the stored figures.

    Workers started together calibrate once: the calibration is a unit of work
    claimed through the storage (``claims``), so one of them times the teacher
    while the others wait for its figures. Timing it in several processes at
    once would both load the machine during the timings and leave the workers
    on different scales.

    Returns:
        The fp32 teacher's calibration.
    """
    precisions = anchor_precisions(ctx.spec)
    missing = [p for p in precisions if _attr(p) not in study.user_attrs]
    if missing:
        key = ",".join(missing)
        rnd = claims.open_round(study, "calibration", key, key, missing, [_UNIT])
        done = claims.work(rnd, lambda _: {p: _time(ctx, p) for p in missing})
        for precision, stats in done[_UNIT].items():
            study.set_user_attr(_attr(precision), stats)
    attrs = study.user_attrs
    for precision in precisions:
        ctx.anchor_ms[precision] = LatencyStats.from_json(attrs[_attr(precision)]).p50_ms
    return LatencyStats.from_json(attrs[TEACHER_LATENCY_ATTR])


_UNIT = "teacher"
"""The calibration's one unit of work: every missing precision, timed in turn by one worker."""


def _time(ctx: Context, precision: str) -> dict[str, object]:
    stats = calibrate_anchor(ctx, precision)
    log.info("teacher calibrated in %s: p50 %.2f ms", precision, stats.p50_ms)
    return stats.to_json()


DRIFT_EVERY = 8
"""The drift guard re-times the teacher after every this many complete trials of a run."""


def check_drift(study: optuna.Study, ctx: Context, trial: int | None = None) -> bool:
    """Re-time the teacher and compare with the p50 the study stored for it.

    A change beyond :data:`paretokd.latency.DRIFT_THRESHOLD` means the machine
    is not running at the speed it had when the study was calibrated (other
    load, thermal or frequency changes). Figures stay comparable, since every
    candidate is timed paired with the teacher, but the raw milliseconds of the
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
