"""The teacher's latency: measured once per study, re-timed beside the finals; the drift guard."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from pathlib import Path

import optuna
from optuna.trial import TrialState

from paretokd import latency
from paretokd.records import LatencyStats
from paretokd.search.context import Context

log = logging.getLogger(__name__)


TEACHER_LATENCY_ATTR = "teacher_latency"
"""Study user attribute: the teacher's :class:`LatencyStats` at the study's start."""


def measure_teacher(study: optuna.Study, ctx: Context) -> LatencyStats:
    """The teacher's latency under the study's setup, measured once and stored in the study."""
    stored = study.user_attrs.get(TEACHER_LATENCY_ATTR)
    if stored is not None:
        return LatencyStats.from_json(stored)
    # Kept in the workdir: the drift guard re-times this very graph.
    stats = latency.measure(_teacher_onnx(ctx), ctx.spec.latency, ctx.teacher.config.vocab_size)
    study.set_user_attr(TEACHER_LATENCY_ATTR, stats.to_json())
    return stats


def retime_teacher(ctx: Context) -> LatencyStats:
    """The teacher timed again now, e.g. side by side with the final students.

    A CPU that has been training for minutes runs inference measurably slower
    (up to +12% seen here) than the fresh one the study's first measurement
    saw; speed-ups of final students are honest only against a teacher timed
    in the same state.
    """
    with tempfile.TemporaryDirectory(prefix="paretokd-teacher-") as tmp:
        names = ctx.teacher.tokenizer.model_input_names
        path = Path(tmp) / "teacher.onnx"
        return latency.measure_model(ctx.teacher.model, names, ctx.spec.latency, path)


DRIFT_EVERY = 8
"""The drift guard re-times the teacher after every this many complete trials of a run."""


def _teacher_onnx(ctx: Context) -> Path:
    path = ctx.workdir / "teacher.onnx"
    if not path.exists():
        names = ctx.teacher.tokenizer.model_input_names
        latency.export_onnx(ctx.teacher.model, names, path, ctx.spec.latency)
    return path


def check_drift(study: optuna.Study, ctx: Context, trial: int | None = None) -> bool:
    """Re-time the teacher and compare with the p50 the study stored for it.

    A change beyond :data:`paretokd.latency.DRIFT_THRESHOLD` means the machine
    is not running at the speed the study's earlier latencies were measured at
    (other load, thermal or frequency changes): it is logged as a warning and
    appended to the study's ``latency_drift`` user attribute.

    Returns:
        Whether the machine drifted.
    """
    stored = study.user_attrs.get(TEACHER_LATENCY_ATTR)
    if stored is None:
        return False
    baseline = LatencyStats.from_json(stored).p50_ms
    check = latency.check_drift(
        _teacher_onnx(ctx), ctx.spec.latency, baseline, ctx.teacher.config.vocab_size
    )
    if not check.drifted:
        log.debug("drift guard: teacher p50 %.2f ms (study: %.2f ms)", check.p50_ms, baseline)
        return False
    log.warning(
        "latency drift: the teacher now runs at p50 %.2f ms, %+.0f%% from the %.2f ms this "
        "study stored; latencies measured now may not be comparable with earlier ones",
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
