"""Running trials until the study holds its total, and accounting for their time."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

import optuna
import torch
from optuna.trial import TrialState

from paretokd.records import SearchSpend, TrialRecord
from paretokd.search.context import Context
from paretokd.search.storage import objective_of
from paretokd.search.teacher_timing import DRIFT_EVERY, check_drift, drift_guard
from paretokd.search.trial import objective

log = logging.getLogger(__name__)


def _log_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    if trial.state == TrialState.PRUNED:
        return  # not run: the study had its trials (see trial.objective)
    if trial.state != TrialState.COMPLETE or trial.values is None:
        log.warning("trial %d ended %s", trial.number, trial.state.name)
        return
    record = TrialRecord.read(trial)
    if record.cached_from is not None:
        note = f"figures of {record.cached_from}"
    elif record.feasible:
        note = "trained"
    else:
        note = "over budget, not trained"
    seconds = trial.duration.total_seconds() if trial.duration else 0.0
    log.info(
        "trial %3d  %-20s %5.1fM params  p50 %6.2f ms  %s %.4f  (%s, %.1f s)",
        record.number,
        record.arch.id,
        record.params / 1e6,
        record.latency_ms,
        objective_of(study).name,
        record.value,
        note,
        seconds,
    )


@dataclass(frozen=True)
class SearchResult:
    """What a search run did."""

    study_name: str
    complete: int
    """Complete trials in the study after this run."""
    ran: int
    """Trials this run added."""
    seconds: float


def _complete(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def run(
    study: optuna.Study, ctx: Context, show_progress: bool = True, torch_threads: int = 0
) -> SearchResult:
    """Run trials until the study holds ``spec.trials`` complete ones (a finished one runs none).

    Workers sharing the study stop at the study's total, not their own.

    Args:
        study: The study (see ``storage.open_study``).
        ctx: What every trial shares (see ``context.prepare``).
        show_progress: Draw Optuna's progress bar.
        torch_threads: Threads for training; 0 means every core.
    """
    start = time.perf_counter()
    # Trials of a killed worker, stale for longer than the grace period, are
    # failed and queued again before anything is counted.
    optuna.storages.fail_stale_trials(study)
    before = _complete(study)
    remaining = ctx.spec.trials - before
    if remaining <= 0:
        log.info("study %s already has %d complete trials: no new trial", study.study_name, before)
    else:
        log.info(
            "study %s: %d complete trials, running %d more", study.study_name, before, remaining
        )
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        # Training uses every core; latency is measured between trainings, in
        # its own session with its own fixed thread count, never concurrently.
        torch.set_num_threads(torch_threads or os.cpu_count() or 1)
        if before:  # resuming: is the machine as fast as when the study began?
            check_drift(study, ctx)
        study.optimize(
            lambda t: objective(t, ctx),
            # At most the trials missing now; with other workers on the study,
            # the objective's own check (trial.objective) stops at the total.
            n_trials=remaining,
            callbacks=[_log_trial, drift_guard(ctx, DRIFT_EVERY)],
            show_progress_bar=show_progress,
        )
    optuna.storages.fail_stale_trials(study)
    after = _complete(study)
    return SearchResult(study.study_name, after, after - before, time.perf_counter() - start)


def summary(study: optuna.Study, result: SearchResult) -> SearchResult:
    """``result`` with the study's complete trials counted again (other workers add some too)."""
    after = _complete(study)
    return SearchResult(
        result.study_name, after, after - (result.complete - result.ran), result.seconds
    )


def spend(study: optuna.Study) -> SearchSpend:
    """Sum the time of the study's complete trials, and of those that could never be picked."""
    total = wasted = 0.0
    n = n_wasted = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        seconds = t.duration.total_seconds() if t.duration else 0.0
        total += seconds
        n += 1
        if not TrialRecord.read(t).feasible:
            wasted += seconds
            n_wasted += 1
    return SearchSpend(n, total, n_wasted, wasted)
