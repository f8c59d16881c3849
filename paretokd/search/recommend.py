"""From a study's trials to one recommended architecture per latency budget."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import replace

import optuna

from paretokd.config import format_budget
from paretokd.records import LatencyStats, Objective, Pick, TrialRecord

CONFIRMED_ATTR = "confirmed_latency"
"""Study user attribute: trial number → its latency timed again before a pick
(``search.confirm``). Finished trials take no new attributes, so the study keeps them."""


def trials(study: optuna.Study) -> list[TrialRecord]:
    """Every complete trial of ``study`` as a :class:`TrialRecord`, in trial order.

    Each carries its confirmation, when it was timed again as a pick or near a budget.
    """
    front = {t.number for t in study.best_trials}
    confirmed = study.user_attrs.get(CONFIRMED_ATTR, {})
    out = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        record = TrialRecord.read(t, on_front=t.number in front)
        if str(t.number) in confirmed:
            record = replace(record, confirmed=LatencyStats.from_json(confirmed[str(t.number)]))
        out.append(record)
    return out


def candidates(
    trials: Sequence[TrialRecord],
    budget: float,
    objective: Objective,
    exclude: Collection[int] = (),
) -> list[TrialRecord]:
    """The trials that may serve ``budget``, best first: trained, p50 within it, not excluded.

    Ties on objective 1 go to the faster trial.
    """
    fitting = [
        t for t in trials if t.feasible and t.timing.p50_ms <= budget and t.number not in exclude
    ]
    return sorted(fitting, key=lambda t: (objective.sort_key(t.value), t.timing.p50_ms))


def pick_one(
    trials: Sequence[TrialRecord],
    budget: float,
    objective: Objective,
    exclude: Collection[int] = (),
) -> Pick:
    """The best trial that meets ``budget`` with margin (:meth:`TrialRecord.fits`), or why none."""
    for t in candidates(trials, budget, objective, exclude):
        if t.fits(budget):
            return Pick(budget, t)
    return Pick(budget, None, _no_fit_reason(trials, budget, objective, exclude))


def pick(
    trials: Sequence[TrialRecord], budgets: tuple[float, ...], objective: Objective
) -> list[Pick]:
    """For each budget, the best trial whose latency interval lies within it.

    A trial fits when the upper bound of its p50's interval (of its confirmation,
    when it was timed again near the budget) is within the budget: a pick keeps
    its promise with the margin its own measurement says it needs.

    Args:
        trials: All complete trials (see :func:`trials`).
        budgets: Budgets in milliseconds.
        objective: Objective 1, which says whether higher or lower is better.

    Returns:
        One :class:`Pick` per budget, in the order given.
    """
    return [pick_one(trials, budget, objective) for budget in budgets]


def _no_fit_reason(
    trials: Sequence[TrialRecord], budget: float, objective: Objective, exclude: Collection[int]
) -> str:
    label = format_budget(budget)
    if not trials:
        return f"no trial has finished yet, so nothing is known to fit {label}"
    near = candidates(trials, budget, objective, exclude)
    if near:
        t = near[0]
        return (
            f"no architecture fits {label} with margin: the best at p50 within it "
            f"(trial {t.number}, {t.arch.id}, p50 {t.timing.p50_ms:.2f} ms) may take up to "
            f"{t.timing.upper_ms:.2f} ms; raise the budget a little"
        )
    fastest = min(trials, key=lambda t: t.timing.p50_ms)
    return (
        f"no architecture found runs within {label}: the fastest measured "
        f"(trial {fastest.number}, {fastest.arch.id}) takes {fastest.timing.p50_ms:.2f} ms; "
        "raise the budget or widen the search space towards smaller students"
    )
