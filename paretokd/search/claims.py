"""Work shared between the workers of one study, each unit claimed through the study's storage.

The finals use it: each pick's final distillation is one *unit*, claimed by one
worker, so workers on several machines distil different picks at once. A claim
is an Optuna trial, so it is kept alive and given up exactly as a search trial
is, by the library rather than by hand:

- A *round* is a companion study in the same storage, ``<study>.<kind>.<n>``,
  holding the plan (JSON the caller owns) and one WAITING trial per unit.
  Creating a study is atomic, so one worker starts each round; the others join it.
- A worker takes a unit inside ``study.optimize``: its ``ask`` hands each
  waiting trial to one process only, and the storage's heartbeat thread beats
  for the claim while the unit runs. The result goes into the trial's user
  attributes just before it completes.
- A killed worker stops beating. After the grace period ``fail_stale_trials``
  fails its claim and the storage's retry callback queues it again (three times
  at most) for whichever worker looks next.

Every worker then waits until each unit has a complete claim, and reads all
the results back.
"""

from __future__ import annotations

import logging
import os
import platform
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.samplers import RandomSampler
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from paretokd.errors import ParetokdError
from paretokd.search.storage import COMPANION_ATTR, GRACE_HEARTBEATS

log = logging.getLogger(__name__)

UNIT_ATTR = "unit"
"""A claim's user attribute: the unit it is for (a retry copies it)."""
RESULT_ATTR = "result"
"""A complete claim's user attribute: the unit's result, JSON the caller owns."""
WORKER_ATTR = "worker"
"""A claim's user attribute: ``host:pid`` of the process that took it last."""

_KEY, _FAMILY, _PLAN, _UNITS, _READY = "plan_key", "plan_family", "plan", "units", "ready"

POLL_SECONDS = 1.0
"""How often a worker with nothing left to take looks at the round again (one small query)."""

LOG_EVERY_SECONDS = 30.0
"""The longest silence between two of a waiting worker's progress lines."""

_NOT_READY_SECONDS = 60.0
"""How long a round stays unready (its creator died while enqueuing) when heartbeats are off."""


@dataclass(frozen=True)
class Round:
    """One round of shared work: its companion study and its plan."""

    study: optuna.Study
    number: int
    key: str
    """Identifies the plan exactly: a run with the same key reads a finished round back."""
    family: str
    """What a joining worker must share with the plan to adopt it (budgets, recipe length)."""
    plan: Any
    """The plan as its creator stored it (JSON), which every worker of the round follows."""
    units: tuple[str, ...]
    started_here: bool


@dataclass
class _Units:
    """The claims of a round, unit by unit."""

    claims: dict[str, list[FrozenTrial]] = field(default_factory=dict)

    def waiting(self) -> bool:
        return any(t.state == TrialState.WAITING for ts in self.claims.values() for t in ts)

    def result(self, unit: str) -> FrozenTrial | None:
        return next((t for t in self.claims.get(unit, []) if t.state == TrialState.COMPLETE), None)

    def live(self, unit: str) -> list[FrozenTrial]:
        states = (TrialState.WAITING, TrialState.RUNNING)
        return [t for t in self.claims.get(unit, []) if t.state in states]

    def is_open(self, units: Sequence[str]) -> bool:
        return any(self.live(u) for u in units if self.result(u) is None)

    def complete(self, units: Sequence[str]) -> bool:
        return all(self.result(u) is not None for u in units)


def open_round(
    study: optuna.Study, kind: str, key: str, family: str, plan: Any, units: Sequence[str]
) -> Round:
    """Join the study's open round of ``kind`` work, or start one for ``units``.

    A worker joins the latest round when it is still open and of the same
    ``family`` (another worker of this run planned it a moment earlier, maybe
    from a slightly different view of the study), or when it finished the very
    same plan (``key``): then its results are read back. Otherwise (a rerun with
    other budgets, or a round that failed) it starts the next round.

    Args:
        study: The study whose storage holds the claims.
        kind: Names the work (``finals``): rounds are ``<study>.<kind>.<n>``.
        key: Identifies ``plan`` exactly.
        family: What another worker's plan must share to be adopted.
        plan: JSON, stored for the workers that join.
        units: The units of work, in the order they are taken.
    """
    storage = study._storage  # the same heartbeats and grace period as the study's trials
    prefix = f"{study.study_name}.{kind}."
    while True:
        latest = _latest(storage, prefix)
        if latest:
            found = _load(storage, f"{prefix}{latest}", latest)
            if found is not None and _joinable(found, key, family):
                log.info("%s: joining round %d of %s", kind, latest, found.study.study_name)
                return found
        try:
            return _start(study, f"{prefix}{latest + 1}", latest + 1, key, family, plan, units)
        except optuna.exceptions.DuplicatedStudyError:
            continue  # another worker started it a moment ago: look again, and join it


def _latest(storage: BaseStorage, prefix: str) -> int:
    numbers = [
        int(name[len(prefix) :])
        for name in optuna.get_all_study_names(storage)
        if name.startswith(prefix) and name[len(prefix) :].isdigit()
    ]
    return max(numbers, default=0)


def _grace_seconds(study: optuna.Study) -> float:
    """How long a silent claim is left alone before it counts as dead."""
    beat = getattr(study._storage, "get_heartbeat_interval", None)
    interval = beat() if beat is not None else None
    return float(GRACE_HEARTBEATS * interval) if interval else _NOT_READY_SECONDS


def _load(storage: BaseStorage, name: str, number: int) -> Round | None:
    """Round ``name``, once its creator has enqueued every unit; ``None`` if it never does."""
    study = optuna.load_study(study_name=name, storage=storage, sampler=RandomSampler())
    deadline = time.monotonic() + _grace_seconds(study)
    attrs = study.user_attrs
    while not attrs.get(_READY):
        if time.monotonic() > deadline:
            log.warning("%s was never completed by the worker that started it: skipping it", name)
            return None
        time.sleep(0.1)  # its creator is enqueuing the units: milliseconds
        attrs = study.user_attrs
    return Round(
        study, number, attrs[_KEY], attrs[_FAMILY], attrs[_PLAN], tuple(attrs[_UNITS]), False
    )


def _joinable(found: Round, key: str, family: str) -> bool:
    _fail_stale(found.study)  # a dead worker's claims are queued again before judging
    units = _read(found)
    if found.key == key and units.complete(found.units):
        return True
    return found.family == family and units.is_open(found.units)


def _start(
    study: optuna.Study,
    name: str,
    number: int,
    key: str,
    family: str,
    plan: Any,
    units: Sequence[str],
) -> Round:
    rs = optuna.create_study(
        study_name=name, storage=study._storage, sampler=RandomSampler(), direction="minimize"
    )
    rs.set_user_attr(COMPANION_ATTR, study.study_name)
    for attr, value in ((_KEY, key), (_FAMILY, family), (_PLAN, plan), (_UNITS, list(units))):
        rs.set_user_attr(attr, value)
    for unit in units:
        rs.enqueue_trial({}, user_attrs={UNIT_ATTR: unit})
    rs.set_user_attr(_READY, True)  # last: a worker joins only a round whose units are all queued
    log.info("%s: started with %d units to share: %s", name, len(units), ", ".join(units))
    return Round(rs, number, key, family, plan, tuple(units), True)


def _fail_stale(study: optuna.Study) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def _read(rnd: Round) -> _Units:
    units = _Units()
    for t in rnd.study.get_trials(deepcopy=False):
        unit = t.user_attrs.get(UNIT_ATTR)
        if unit is not None:
            units.claims.setdefault(unit, []).append(t)
    return units


def work(
    rnd: Round, run_unit: Callable[[str], Any], poll_seconds: float = POLL_SECONDS
) -> dict[str, Any]:
    """Take the round's units one at a time until none is left; then wait for the others' units.

    Args:
        rnd: The round (see :func:`open_round`).
        run_unit: Does one unit and returns its result (JSON).
        poll_seconds: How often to look again while other workers hold the last units.

    Returns:
        Every unit's result, by unit, whichever worker made it.

    Raises:
        ParetokdError: If a unit failed in every worker that tried it.
    """
    logged_at, logged_done = 0.0, -1
    while True:
        _fail_stale(rnd.study)  # a dead worker's claims go back in the queue
        units = _read(rnd)
        if units.waiting():
            # optimize, not a bare ask: the storage beats for the claim while it runs,
            # and a failing unit marks its claim failed before the error goes up.
            rnd.study.optimize(lambda t: _take(rnd, t, run_unit), n_trials=1)
            continue
        done = [u for u in rnd.units if units.result(u) is not None]
        if len(done) == len(rnd.units):
            return {u: _result_of(units, u) for u in rnd.units}
        dead = [u for u in rnd.units if units.result(u) is None and not units.live(u)]
        if dead:
            raise ParetokdError(_failed_text(rnd, units, dead))
        now = time.monotonic()
        if len(done) != logged_done or now - logged_at >= LOG_EVERY_SECONDS:
            log.info(
                "%s: %d of %d done; waiting for %s",
                rnd.study.study_name,
                len(done),
                len(rnd.units),
                _holders(units, rnd.units),
            )
            logged_at, logged_done = now, len(done)
        time.sleep(poll_seconds)


def _result_of(units: _Units, unit: str) -> Any:
    trial = units.result(unit)
    assert trial is not None
    return trial.user_attrs[RESULT_ATTR]


def _worker() -> str:
    # Named as search trials name theirs (``trial.worker``), without importing the
    # objective's torch: a process that only claims starts in a fraction of a second.
    return f"{platform.node()}:{os.getpid()}"


def _take(rnd: Round, trial: optuna.Trial, run_unit: Callable[[str], Any]) -> float:
    """The objective of a claim: run its unit, store the result; returns the unit's seconds."""
    unit = trial.user_attrs.get(UNIT_ATTR)
    if unit is None:
        # Another worker took the last waiting unit first, so ask made a new, empty trial.
        raise optuna.TrialPruned("nothing left to claim")
    trial.set_user_attr(WORKER_ATTR, _worker())
    log.info("%s: %s claimed by %s (claim %d)", rnd.study.study_name, unit, _worker(), trial.number)
    start = time.perf_counter()
    try:
        result = run_unit(unit)
    except KeyboardInterrupt:
        # Stopped by its user, not broken: the unit goes back in the queue (Optuna
        # fails the claim itself), so no other worker gives up waiting for it.
        rnd.study.enqueue_trial({}, user_attrs={UNIT_ATTR: unit})
        raise
    seconds = time.perf_counter() - start
    trial.set_user_attr(RESULT_ATTR, result)
    log.info("%s: %s done in %.1f s", rnd.study.study_name, unit, seconds)
    return seconds


def _holders(units: _Units, pending: Sequence[str]) -> str:
    now = time.time()
    parts = []
    for unit in pending:
        if units.result(unit) is not None:
            continue
        running = [t for t in units.live(unit) if t.state == TrialState.RUNNING]
        started = running[0].datetime_start if running else None
        if started is None:
            parts.append(f"{unit} (queued)")
            continue
        held = now - started.timestamp()
        parts.append(f"{unit} (in {running[0].user_attrs.get(WORKER_ATTR, '?')} for {held:.0f} s)")
    return ", ".join(parts)


def _failed_text(rnd: Round, units: _Units, dead: Sequence[str]) -> str:
    tries = "; ".join(
        f"{u} in "
        + ", ".join(str(t.user_attrs.get(WORKER_ATTR, "?")) for t in units.claims.get(u, []))
        for u in dead
    )
    return (
        f"{rnd.study.study_name}: {', '.join(dead)} failed in every worker that tried "
        f"({tries}); see their logs, and run again to retry"
    )
