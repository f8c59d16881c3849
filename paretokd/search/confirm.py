"""Confirm before committing: candidates near a budget are timed again, with more rounds.

A search trial is timed with ``latency.rounds`` paired rounds: enough to rank
architectures, not always to promise a budget. Before a pick is distilled, the
best candidates whose interval comes within :data:`GUARD` of a budget are timed
again with ``latency.confirm_rounds`` rounds, and the pick must fit with the
upper bound of that narrower interval (:meth:`TrialRecord.fits`).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import replace

import optuna

from paretokd.config import format_budget
from paretokd.records import Objective, TrialRecord
from paretokd.search.context import Context, build_student, time_student
from paretokd.search.recommend import CONFIRMED_ATTR, candidates

log = logging.getLogger(__name__)

GUARD = 0.05
"""A candidate whose interval reaches above ``budget × (1 - GUARD)`` is timed again."""

MAX_CONFIRMATIONS = 4
"""Candidates timed again per budget, at most (the best ones first)."""


def needs_confirming(trial: TrialRecord, budget: float) -> bool:
    """Whether ``trial`` lies close enough to ``budget`` that its figure must be confirmed."""
    return trial.confirmed is None and trial.timing.upper_ms > budget * (1.0 - GUARD)


def confirm(
    study: optuna.Study,
    ctx: Context,
    trials: Sequence[TrialRecord],
    budgets: Sequence[float],
    objective: Objective,
    exclude: Collection[int] = (),
) -> list[TrialRecord]:
    """Time again the best candidates near each budget; returns the trials with confirmations.

    For each budget, candidates are walked best first; one near the budget is
    timed again (at most :data:`MAX_CONFIRMATIONS` a budget), and the walk
    stops at the first that fits with margin. Confirmations are stored on the
    study, so a rerun or ``paretokd recommend`` sees them.
    """
    out = list(trials)
    for budget in budgets:
        done = 0
        for t in candidates(out, budget, objective, exclude):
            if needs_confirming(t, budget) and done < MAX_CONFIRMATIONS:
                t = _timed_again(study, ctx, t)
                out = [t if o.number == t.number else o for o in out]
                done += 1
                log.info(
                    "confirmed for %s: trial %d (%s) p50 %.2f ms (%.2f-%.2f), search %.2f ms",
                    format_budget(budget),
                    t.number,
                    t.arch.id,
                    t.timing.p50_ms,
                    *(t.timing.ci_ms or (t.timing.p50_ms, t.timing.p50_ms)),
                    t.latency_ms,
                )
            if t.fits(budget):
                break
    return out


def _timed_again(study: optuna.Study, ctx: Context, trial: TrialRecord) -> TrialRecord:
    model = build_student(trial.arch, ctx)
    rounds = ctx.spec.latency.confirm_rounds
    stats = time_student(model, ctx, trial.arch.precision, rounds, trial.latency.anchor)
    stored = dict(study.user_attrs.get(CONFIRMED_ATTR, {}))
    stored[str(trial.number)] = stats.to_json()
    study.set_user_attr(CONFIRMED_ATTR, stored)
    return replace(trial, confirmed=stats)
