"""Confirm before committing: every pick, and the candidates near a budget, are timed again.

A search trial is timed with ``latency.rounds`` paired rounds: enough to rank
architectures, not always to promise a budget. Before a pick is distilled, the
best candidates whose interval comes within :data:`GUARD` of a budget are timed
again with ``latency.confirm_rounds`` rounds, and the pick must fit with the
upper bound of that narrower interval (:meth:`TrialRecord.fits`). The pick
itself is timed again even when it fits with room to spare: the figure it is
committed on, and shown beside its shipped one, is then always a reading of
``confirm_rounds`` rounds taken minutes before the final timing, not a shorter
one taken while the search trained other students (``bench/budget_promise.py``:
a pick's search reading strayed from its shipped figure by up to 6.6%, its
confirmed reading by up to 4.4%).
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
    """Whether ``trial``'s figure must be confirmed before it may serve ``budget``.

    It must when it lies close enough to the budget that the search's interval
    cannot promise it, or when it would be the pick (it fits).
    """
    near = trial.timing.upper_ms > budget * (1.0 - GUARD)
    return trial.confirmed is None and (near or trial.fits(budget))


def confirm(
    study: optuna.Study,
    ctx: Context,
    trials: Sequence[TrialRecord],
    budgets: Sequence[float],
    objective: Objective,
    exclude: Collection[int] = (),
) -> list[TrialRecord]:
    """Time again each budget's pick and the better candidates near it.

    For each budget, candidates are walked best first; one near the budget, or
    one that fits, is timed again (at most :data:`MAX_CONFIRMATIONS` a budget),
    and the walk stops at the first that fits with margin once timed again.
    Confirmations are stored on the study, so a rerun or ``paretokd recommend``
    sees them.
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
