"""A trial's record in Optuna attributes, and the pick made from it for a budget."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from paretokd.config import format_budget
from paretokd.records.measures import Arch, LatencyStats

# --- a trial ----------------------------------------------------------------------------


class Attr:
    """The names of a trial's Optuna user attributes (see :class:`TrialRecord`)."""

    ARCH = "arch"
    ARCH_ID = "arch_id"
    PARAMS = "params"
    LATENCY = "latency"
    PROXY_LOSS = "proxy_loss"
    PROXY_METRIC = "proxy_metric"
    TRAIN_LOSS = "train_loss"
    TIMINGS = "timings"
    CACHED_FROM = "cached_from"
    WORKER = "worker"
    TRAINED_ON = "trained_on"
    LEARNING_RATE = "learning_rate"


CONSTRAINT = "latency_over_budget_ms"
"""The trial's Optuna constraint: its p50 minus the largest budget (feasible when <= 0)."""


class _WritableTrial(Protocol):
    def set_user_attr(self, key: str, value: Any) -> None: ...

    def set_constraint(self, key: str, value: float) -> None: ...


class _FrozenTrial(Protocol):
    number: int
    values: list[float] | None
    user_attrs: dict[str, Any]

    @property
    def constraints(self) -> dict[str, float]: ...


@dataclass(frozen=True)
class TrialRecord:
    """One complete trial: what was sampled and what it measured.

    Written to a trial's Optuna attributes by :meth:`write` and read back by
    :meth:`read`; the objective values and the constraint are Optuna's own.
    """

    number: int
    arch: Arch
    params: int
    value: float
    """Objective 1 (see :class:`Objective`); the worst value when not trained."""
    latency: LatencyStats
    over_budget_ms: float
    """p50 minus the study's largest budget: above 0, the trial was never trained."""
    on_front: bool = False
    """On the feasible Pareto front, as Optuna's ``study.best_trials`` computes it."""
    proxy_loss: float | None = None
    proxy_metric: float | None = None
    """The task metric on the proxy texts' gold labels, when they have labels."""
    train_loss: float | None = None
    learning_rate: float | None = None
    """The rate its proxy distillation ran at (``distill.recipe.learning_rate``)."""
    cached_from: str | None = None
    """``trial N`` or ``reference`` when the figures were reused, not measured again."""
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds per stage: ``build_s``, ``latency_s``, ``distill_s``, ``metric_s``."""
    worker: str | None = None
    """``host:pid`` of the process that ran it."""
    trained_on: str | None = None
    """The device its distillation ran on (``cpu``, ``cuda (NVIDIA H200)``): ``distill.device``."""
    confirmed: LatencyStats | None = None
    """Its latency timed again, with more rounds, as a budget's pick or because it lay
    near a budget (``search.confirm``); kept on the study, not on the trial."""

    @property
    def feasible(self) -> bool:
        """Whether it fits the largest budget (and so was trained and can be picked)."""
        return self.over_budget_ms <= 0

    @property
    def latency_ms(self) -> float:
        """Objective 2: the latency p50 the search measured."""
        return self.latency.p50_ms

    @property
    def timing(self) -> LatencyStats:
        """Its best latency figure: the confirmation when there is one, else the search's."""
        return self.confirmed or self.latency

    def fits(self, budget_ms: float) -> bool:
        """Whether it meets ``budget_ms`` with margin: the upper bound of its p50's interval."""
        return self.feasible and self.timing.upper_ms <= budget_ms

    def write(self, trial: _WritableTrial) -> None:
        """Store the record on a running Optuna trial: user attributes and the constraint."""
        trial.set_constraint(CONSTRAINT, self.over_budget_ms)
        trial.set_user_attr(Attr.ARCH, self.arch.to_dict())
        trial.set_user_attr(Attr.ARCH_ID, self.arch.id)  # for people reading the dashboard
        trial.set_user_attr(Attr.PARAMS, self.params)
        trial.set_user_attr(Attr.LATENCY, self.latency.to_json())
        trial.set_user_attr(Attr.TIMINGS, self.timings)
        optional = {
            Attr.PROXY_LOSS: self.proxy_loss,
            Attr.PROXY_METRIC: self.proxy_metric,
            Attr.TRAIN_LOSS: self.train_loss,
            Attr.CACHED_FROM: self.cached_from,
            Attr.WORKER: self.worker,
            Attr.TRAINED_ON: self.trained_on,
            Attr.LEARNING_RATE: self.learning_rate,
        }
        for key, figure in optional.items():
            if figure is not None:
                trial.set_user_attr(key, figure)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready, for files (a pick's trial); the study keeps it with :meth:`write`."""
        out = asdict(self)
        out.update(arch=self.arch.to_dict(), arch_id=self.arch.id, latency=self.latency.to_json())
        out["confirmed"] = self.confirmed.to_json() if self.confirmed else None
        return out

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> TrialRecord:
        """Inverse of :meth:`to_json`."""
        fields = {k: v for k, v in raw.items() if k != "arch_id"}
        confirmed = raw.get("confirmed")
        fields.update(
            arch=Arch.from_dict(raw["arch"]),
            latency=LatencyStats.from_json(raw["latency"]),
            confirmed=LatencyStats.from_json(confirmed) if confirmed else None,
        )
        return cls(**fields)

    @classmethod
    def read(cls, trial: _FrozenTrial, on_front: bool = False) -> TrialRecord:
        """The record of a complete Optuna trial (``FrozenTrial``)."""
        a = trial.user_attrs
        assert trial.values is not None, "only complete trials carry a record"
        return cls(
            number=trial.number,
            arch=Arch.from_dict(a[Attr.ARCH]),
            params=int(a[Attr.PARAMS]),
            value=float(trial.values[0]),
            latency=LatencyStats.from_json(a[Attr.LATENCY]),
            over_budget_ms=max(trial.constraints.values(), default=0.0),
            on_front=on_front,
            proxy_loss=a.get(Attr.PROXY_LOSS),
            proxy_metric=a.get(Attr.PROXY_METRIC),
            train_loss=a.get(Attr.TRAIN_LOSS),
            cached_from=a.get(Attr.CACHED_FROM),
            timings=dict(a.get(Attr.TIMINGS, {})),
            worker=a.get(Attr.WORKER),
            trained_on=a.get(Attr.TRAINED_ON),
            learning_rate=a.get(Attr.LEARNING_RATE),
        )


# --- the comparison models --------------------------------------------------------------


@dataclass(frozen=True)
class Pick:
    """The recommendation for one budget: a trial, or the reason there is none."""

    budget_ms: float
    trial: TrialRecord | None
    reason: str | None = None
    """Why there is no trial: nothing fits, or the budget could not be kept when shipped."""
    fallback: str | None = None
    """Why this trial replaced a better one: that one's shipped student was over budget."""

    @property
    def budget(self) -> str:
        """The budget as the user writes it (``10ms``): the key of its final student."""
        return format_budget(self.budget_ms)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready: the budget, and the trial's record (or the reason there is none)."""
        return {
            "budget": self.budget,
            "budget_ms": self.budget_ms,
            "reason": self.reason,
            "fallback": self.fallback,
            "trial": self.trial.to_json() if self.trial else None,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Pick:
        """Inverse of :meth:`to_json`."""
        trial = TrialRecord.from_json(raw["trial"]) if raw["trial"] else None
        return cls(float(raw["budget_ms"]), trial, raw.get("reason"), raw.get("fallback"))
