"""The finals' round as workers share it: the plan, the units they claim, what each shipped.

Stored on the round beside the study (``search.claims``) by ``paretokd.finals``:
the first worker to reach the finals writes the :class:`Plan`; each :class:`Unit`
is one claim; a finished unit stores its :class:`UnitDone`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paretokd.records.measures import Arch
from paretokd.records.run import REFERENCE_FOLDER, FinalStudent
from paretokd.records.trial import Pick, TrialRecord

if TYPE_CHECKING:
    from paretokd.config import StudySpec


def _pick_json(pick: Pick) -> dict[str, Any]:
    """A pick as the round stores it: its trial by number (the study holds the record)."""
    number = pick.trial.number if pick.trial is not None else None
    return {
        "budget_ms": pick.budget_ms,
        "trial": number,
        "reason": pick.reason,
        "fallback": pick.fallback,
    }


def _pick_from(raw: dict[str, Any], trials: dict[int, TrialRecord]) -> Pick:
    number = raw["trial"]
    trial = None if number is None else trials[int(number)]
    return Pick(float(raw["budget_ms"]), trial, raw["reason"], raw["fallback"])


def _by_number(trials: list[TrialRecord]) -> dict[int, TrialRecord]:
    return {t.number: t for t in trials}


@dataclass(frozen=True)
class Unit:
    """One claim: a shape's final distillation, shipped to every folder that picked it."""

    sizes_id: str
    """The trained sizes (``Arch.sizes.id``), whatever precisions its folders ship;
    several joined by ``+`` when they are trained side by side (:attr:`Plan.together`)."""
    folders: tuple[str, ...]
    """Budgets (``10ms``), and :data:`REFERENCE_FOLDER` when the reference is this architecture."""

    @property
    def key(self) -> str:
        """How the round names it: its folders (``10ms+20ms``)."""
        return "+".join(self.folders)


@dataclass(frozen=True)
class Plan:
    """What a run's finals distil: the picks, and the reference when it is scored too.

    The first worker to reach the finals stores it; every worker follows it.
    """

    picks: tuple[Pick, ...]
    reference: Arch | None
    """The hand-crafted student's architecture, when it gets the same final training."""
    final_steps: int
    spec_hash: str
    trials: int
    """The study's total of trials the picks were made from (``spec.trials``)."""
    together: bool = False
    """Every shape in one unit, distilled side by side from one pass of the teacher:
    its outputs on the full split are too large to keep between students
    (``final.CACHE_LIMIT_BYTES``), so separate units would each pay a teacher pass."""

    @classmethod
    def make(
        cls, spec: StudySpec, picks: list[Pick], reference: Arch | None, together: bool = False
    ) -> Plan:
        """This worker's plan; the reference only when some budget has a pick to compare."""
        if not any(p.trial is not None for p in picks):
            reference = None
        steps = spec.distill.final_steps
        return cls(tuple(picks), reference, steps, spec.hash, spec.trials, together)

    def units(self) -> list[Unit]:
        """One unit per trained shape, in the picks' order.

        Two budgets may share an architecture, or its sizes in two precisions
        (an int8 pick and an fp32 one): one worker distils the sizes once and
        ships every precision.
        """
        folders: dict[str, list[str]] = {}
        for p in self.picks:
            if p.trial is not None:
                folders.setdefault(p.trial.arch.sizes.id, []).append(p.budget)
        if self.reference is not None:
            folders.setdefault(self.reference.sizes.id, []).append(REFERENCE_FOLDER)
        if self.together and folders:
            every = tuple(f for fs in folders.values() for f in fs)
            return [Unit("+".join(folders), every)]
        return [Unit(sizes_id, tuple(f)) for sizes_id, f in folders.items()]

    def unit_keys(self) -> list[str]:
        """The units' keys, in the order they are taken."""
        return [u.key for u in self.units()]

    def pick(self, folder: str) -> Pick:
        """The pick of budget ``folder``."""
        return next(p for p in self.picks if p.budget == folder)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready (the round's plan attribute)."""
        return {
            "picks": [_pick_json(p) for p in self.picks],
            "reference": self.reference.to_dict() if self.reference is not None else None,
            "final_steps": self.final_steps,
            "spec_hash": self.spec_hash,
            "trials": self.trials,
            "together": self.together,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any], trials: list[TrialRecord]) -> Plan:
        """Inverse of :meth:`to_json`, the picks' records read from the study's ``trials``."""
        known = _by_number(trials)
        ref = raw["reference"]
        return cls(
            tuple(_pick_from(p, known) for p in raw["picks"]),
            Arch.from_dict(ref) if ref is not None else None,
            int(raw["final_steps"]),
            str(raw["spec_hash"]),
            int(raw["trials"]),
            bool(raw.get("together", False)),
        )

    @property
    def key(self) -> str:
        """Identifies the plan exactly: the same picks, the same recipe."""
        return _digest(self.to_json())

    @property
    def family(self) -> str:
        """What another worker's plan must share for this one to follow it instead.

        Two workers of one run may pick from slightly different views of the
        study (the other's last trial, a confirmation); a rerun with other
        budgets, more trials or another final length must not follow an old round.
        """
        budgets = [p.budget_ms for p in self.picks]
        same = [self.spec_hash, self.final_steps, self.trials, budgets, self.reference is not None]
        return _digest(same)


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Outcome:
    """What a unit shipped to one folder."""

    folder: str
    pick: Pick | None
    """The pick as shipped (a fallback, or none and why); ``None`` for the reference."""
    student: FinalStudent | None


@dataclass(frozen=True)
class UnitDone:
    """A finished unit, as its worker stores it on its claim."""

    worker: str
    """``host:pid`` of the process that distilled it."""
    out_dir: Path
    """That process's output folder (absolute, on its host)."""
    outcomes: tuple[Outcome, ...]

    @property
    def host(self) -> str:
        """The machine it was distilled on."""
        return self.worker.rpartition(":")[0]

    def outcome(self, folder: str) -> Outcome:
        """What it shipped to ``folder``."""
        return next(o for o in self.outcomes if o.folder == folder)

    def to_json(self, base: Path) -> dict[str, Any]:
        """JSON-ready; students' folders relative to ``base``, the worker's output folder."""
        return {
            "worker": self.worker,
            "out_dir": str(self.out_dir),
            "outcomes": [
                {
                    "folder": o.folder,
                    "pick": _pick_json(o.pick) if o.pick is not None else None,
                    "student": o.student.to_json(base) if o.student is not None else None,
                }
                for o in self.outcomes
            ],
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any], trials: list[TrialRecord]) -> UnitDone:
        """Inverse of :meth:`to_json`; students' folders as paths on the worker's host."""
        out_dir = Path(raw["out_dir"])
        known = _by_number(trials)
        outcomes = tuple(
            Outcome(
                str(o["folder"]),
                _pick_from(o["pick"], known) if o["pick"] is not None else None,
                FinalStudent.from_json(o["student"], out_dir) if o["student"] is not None else None,
            )
            for o in raw["outcomes"]
        )
        return cls(str(raw["worker"]), out_dir, outcomes)
