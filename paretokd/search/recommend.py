"""From a study's Pareto front to one recommended architecture per latency budget."""

from __future__ import annotations

from collections.abc import Sequence

import optuna

from paretokd.config import format_budget
from paretokd.records import Objective, Pick, TrialRecord


def trials(study: optuna.Study) -> list[TrialRecord]:
    """Every complete trial of ``study`` as a :class:`TrialRecord`, in trial order."""
    front = {t.number for t in study.best_trials}
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return [TrialRecord.read(t, on_front=t.number in front) for t in complete]


def pick(
    trials: Sequence[TrialRecord], budgets: tuple[float, ...], objective: Objective
) -> list[Pick]:
    """For each budget, the best Pareto-optimal trial whose p50 fits.

    The best trial under a budget is always on the feasible front, so looking
    only at the front loses nothing. Ties go to the faster trial.

    Args:
        trials: All complete trials (see :func:`trials`).
        budgets: Budgets in milliseconds.
        objective: Objective 1, which says whether higher or lower is better.

    Returns:
        One :class:`Pick` per budget, in the order given.
    """
    front = [t for t in trials if t.on_front and t.feasible]
    picks = []
    for budget in budgets:
        fitting = [t for t in front if t.latency_ms <= budget]
        if not fitting:
            picks.append(Pick(budget, None, _no_fit_reason(trials, budget)))
            continue
        best = min(fitting, key=lambda t: (objective.sort_key(t.value), t.latency_ms))
        picks.append(Pick(budget, best))
    return picks


def _no_fit_reason(trials: Sequence[TrialRecord], budget: float) -> str:
    if not trials:
        return f"no trial has finished yet, so nothing is known to fit {format_budget(budget)}"
    fastest = min(trials, key=lambda t: t.latency_ms)
    return (
        f"no architecture found runs within {format_budget(budget)}: the fastest measured "
        f"(trial {fastest.number}, {fastest.arch.id}) takes {fastest.latency_ms:.2f} ms; "
        "raise the budget or widen the search space towards smaller students"
    )
