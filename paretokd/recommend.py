"""From a study's Pareto front to one recommended architecture per latency budget."""

from __future__ import annotations

from dataclasses import dataclass

import optuna

from paretokd.config import format_budget
from paretokd.space import Arch


@dataclass(frozen=True)
class TrialPoint:
    """One measured trial as the recommendation and the report see it."""

    number: int
    arch: dict[str, int]
    params: int
    loss: float
    """Objective 1: the proxy loss, or the task metric in a study that maximises one."""
    latency_ms: float
    latency_p90_ms: float
    feasible: bool
    """False when the architecture was slower than the largest budget (never trained)."""
    on_front: bool
    """On the feasible Pareto front, as Optuna's ``study.best_trials`` computes it."""


@dataclass(frozen=True)
class Pick:
    """The recommendation for one budget: a trial, or the reason there is none."""

    budget_ms: float
    trial: int | None
    reason: str | None = None
    arch: dict[str, int] | None = None
    params: int | None = None
    proxy_loss: float | None = None
    latency_ms: float | None = None


def points(study: optuna.Study) -> list[TrialPoint]:
    """Every complete trial of ``study`` as a :class:`TrialPoint`, in trial order."""
    front = {t.number for t in study.best_trials}
    out = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        attrs = t.user_attrs
        assert t.values is not None  # COMPLETE trials always carry values
        out.append(
            TrialPoint(
                number=t.number,
                arch=attrs["arch"],
                params=int(attrs["params"]),
                loss=float(t.values[0]),
                latency_ms=float(t.values[1]),
                latency_p90_ms=float(attrs["latency"]["p90_ms"]),
                feasible=all(v <= 0 for v in t.constraints.values()),
                on_front=t.number in front,
            )
        )
    return out


def pick(
    trials: list[TrialPoint], budgets: tuple[float, ...], maximise: bool = False
) -> list[Pick]:
    """For each budget, the best Pareto-optimal trial whose p50 fits.

    The best trial under a budget is always on the feasible front, so looking
    only at the front loses nothing. Ties go to the faster trial.

    Args:
        trials: All complete trials (see :func:`points`).
        budgets: Budgets in milliseconds.
        maximise: Objective 1 is a task metric (higher is better), not a loss.

    Returns:
        One :class:`Pick` per budget, in the order given.
    """
    front = [t for t in trials if t.on_front and t.feasible]
    picks = []
    for budget in budgets:
        fitting = [t for t in front if t.latency_ms <= budget]
        if not fitting:
            picks.append(Pick(budget_ms=budget, trial=None, reason=_no_fit_reason(trials, budget)))
            continue
        sign = -1.0 if maximise else 1.0
        best = min(fitting, key=lambda t: (sign * t.loss, t.latency_ms))
        picks.append(
            Pick(
                budget_ms=budget,
                trial=best.number,
                arch=best.arch,
                params=best.params,
                proxy_loss=best.loss,
                latency_ms=best.latency_ms,
            )
        )
    return picks


def _no_fit_reason(trials: list[TrialPoint], budget: float) -> str:
    if not trials:
        return f"no trial has finished yet, so nothing is known to fit {format_budget(budget)}"
    fastest = min(trials, key=lambda t: t.latency_ms)
    return (
        f"no architecture found runs within {format_budget(budget)}: the fastest measured "
        f"(trial {fastest.number}, {Arch.from_dict(fastest.arch).id}) "
        f"takes {fastest.latency_ms:.2f} ms; "
        "raise the budget or widen the search space towards smaller students"
    )
