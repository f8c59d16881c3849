"""The run's record (recommendations.json) and the records it holds: teacher, reference, finals."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from paretokd.errors import ParetokdError
from paretokd.files import write_text
from paretokd.records.measures import Arch, Fingerprint, LatencyStats, Objective
from paretokd.records.trial import Pick

REFERENCE_FOLDER = "reference"
"""The hand-crafted student's final folder (``students/reference``)."""

SCHEMA_VERSION = 1
"""The layout of ``recommendations.json``; bumped whenever a field changes meaning."""


@dataclass(frozen=True)
class ReferenceStudent:
    """The hand-crafted student (every other teacher layer), measured like a trial."""

    arch: Arch
    params: int
    latency: LatencyStats
    proxy_loss: float
    proxy_metric: float | None = None
    name: str = "every other teacher layer"

    def value(self, objective: Objective) -> float | None:
        """Its objective 1; ``None`` for a metric study without proxy labels."""
        return self.proxy_metric if objective.maximise else self.proxy_loss

    def to_json(self) -> dict[str, Any]:
        """JSON-ready (also how the study stores it, in its ``reference`` attribute)."""
        return {
            "name": self.name,
            "arch": self.arch.to_dict(),
            "arch_id": self.arch.id,
            "params": self.params,
            "proxy_loss": self.proxy_loss,
            "proxy_metric": self.proxy_metric,
            "latency_ms": self.latency.p50_ms,
            "latency": self.latency.to_json(),
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> ReferenceStudent:
        """Inverse of :meth:`to_json`."""
        return cls(
            arch=Arch.from_dict(raw["arch"]),
            params=int(raw["params"]),
            latency=LatencyStats.from_json(raw["latency"]),
            proxy_loss=float(raw["proxy_loss"]),
            proxy_metric=raw.get("proxy_metric"),
            name=str(raw["name"]),
        )


@dataclass(frozen=True)
class TeacherRecord:
    """The teacher: what it is, and its calibrated latency (the scale of the study's figures)."""

    name: str
    source: str
    params: int
    latency: LatencyStats
    """Calibrated once per study, before the first trial: the scale of every figure."""

    @property
    def latency_ms(self) -> float:
        """The teacher's p50 on the study's scale."""
        return self.latency.p50_ms

    def speedup(self, latency_ms: float) -> float:
        """How many times faster than the teacher a model of p50 ``latency_ms`` runs.

        Every figure of a study is a ratio to an anchor timed side by side, times
        the anchor's figure on the study's scale: :attr:`latency_ms` for the
        teacher, whose ratio this is the inverse of; for a rung cut from the
        teacher, its own ratio to the teacher, timed side by side when the study
        began, times it (``latency.paired``).
        """
        return self.latency_ms / latency_ms

    def to_json(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "name": self.name,
            "source": self.source,
            "params": self.params,
            "latency_ms": self.latency.p50_ms,
            "latency": self.latency.to_json(),
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> TeacherRecord:
        """Inverse of :meth:`to_json`."""
        return cls(
            name=str(raw["name"]),
            source=str(raw["source"]),
            params=int(raw["params"]),
            latency=LatencyStats.from_json(raw["latency"]),
        )


# --- picks and final students -----------------------------------------------------------


@dataclass(frozen=True)
class FinalStudent:
    """A student distilled on the full training split, exported and re-timed."""

    folder: str
    """Its folder under ``students/``: the budget (``10ms``) or :data:`REFERENCE_FOLDER`."""
    arch: Arch
    budget_ms: float | None
    """The budget it must meet; ``None`` for the reference."""
    trial: int | None
    loss: float
    """Held-out distillation loss on the proxy eval split, comparable with the search's."""
    latency: LatencyStats
    parity_max_abs_diff: float
    steps: int
    dir: Path
    """The student's folder (absolute in memory, relative to the run folder on disk)."""
    score: float | None = None
    """Its score on the evaluation set, when the run has one."""
    learning_rate: float | None = None
    """The peak rate of its final distillation: its trial's (``distill.recipe.learning_rate``)."""
    curve: tuple[tuple[int, float], ...] = ()
    """(step, held-out proxy loss) during its final distillation (``distill.final_eval_every``)."""
    best_step: int | None = None
    """The step whose weights it ships: the lowest of :attr:`curve`."""

    @property
    def onnx(self) -> Path:
        """The graph that ships, was timed and scored (``model.int8.onnx`` for an int8 student)."""
        return self.dir / self.arch.graph_file

    @property
    def within_budget(self) -> bool | None:
        """Whether the re-timed p50 fits the budget (``None`` for the reference)."""
        return None if self.budget_ms is None else self.latency.p50_ms <= self.budget_ms

    def to_json(self, base: Path) -> dict[str, Any]:
        """JSON-ready, with the folder relative to ``base``."""
        return {
            "folder": self.folder,
            "arch": self.arch.to_dict(),
            "arch_id": self.arch.id,
            "budget_ms": self.budget_ms,
            "trial": self.trial,
            "loss": self.loss,
            "latency_ms": self.latency.p50_ms,
            "within_budget": self.within_budget,
            "latency": self.latency.to_json(),
            "parity_max_abs_diff": self.parity_max_abs_diff,
            "steps": self.steps,
            "dir": _relative(self.dir, base),
            "onnx": _relative(self.onnx, base),
            "score": self.score,
            "learning_rate": self.learning_rate,
            "curve": [list(point) for point in self.curve],
            "best_step": self.best_step,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any], base: Path) -> FinalStudent:
        """Inverse of :meth:`to_json`: the folder resolved against ``base``."""
        return cls(
            folder=str(raw["folder"]),
            arch=Arch.from_dict(raw["arch"]),
            budget_ms=raw["budget_ms"],
            trial=raw["trial"],
            loss=float(raw["loss"]),
            latency=LatencyStats.from_json(raw["latency"]),
            parity_max_abs_diff=float(raw["parity_max_abs_diff"]),
            steps=int(raw["steps"]),
            dir=(base / raw["dir"]).resolve(),
            score=raw.get("score"),
            learning_rate=raw.get("learning_rate"),
            curve=tuple((int(s), float(v)) for s, v in raw.get("curve", [])),
            best_step=raw.get("best_step"),
        )

    def for_job(self, folder: str, budget_ms: float | None, trial: int | None) -> FinalStudent:
        """The same student shipped for another job (a copy in ``folder``)."""
        return replace(self, folder=folder, budget_ms=budget_ms, trial=trial)


def _relative(path: Path, base: Path) -> str:
    try:
        return Path(path).resolve().relative_to(base.resolve()).as_posix() or "."
    except ValueError:  # outside the run folder: keep it whole rather than guess
        return str(Path(path).resolve())


# --- evaluation and search accounting ---------------------------------------------------


@dataclass(frozen=True)
class Evaluation:
    """The evaluation set and the teacher's score on it (students carry their own)."""

    set: str
    """What was scored: the evaluation file or split and its columns."""
    metric: str
    examples: int
    teacher: float
    """The teacher's score: 100% of every percentage."""
    quantized_teacher: float | None = None
    """The quantised teacher's score (its int8, or fp16, graph)."""

    def percent_of_teacher(self, score: float) -> float | None:
        """``score`` as a percentage of the teacher's."""
        return 100.0 * score / self.teacher if self.teacher else None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Evaluation:
        """Inverse of :meth:`to_json`."""
        return cls(
            str(raw["set"]),
            str(raw["metric"]),
            int(raw["examples"]),
            raw["teacher"],
            raw.get("quantized_teacher"),
        )


@dataclass(frozen=True)
class SearchSpend:
    """Where a study's trial time went."""

    trials: int
    seconds: float
    """Wall time of every complete trial, summed (over all workers)."""
    never_pickable: int
    """Trials slower than the largest budget: measured, never trained, never pickable."""
    never_pickable_seconds: float

    @property
    def never_pickable_share(self) -> float:
        """The fraction of trial time spent on trials that could never be picked."""
        return self.never_pickable_seconds / self.seconds if self.seconds else 0.0

    def to_json(self) -> dict[str, Any]:
        """JSON-ready, with the share."""
        return {**asdict(self), "never_pickable_share": self.never_pickable_share}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> SearchSpend:
        """Inverse of :meth:`to_json`."""
        return cls(
            int(raw["trials"]),
            float(raw["seconds"]),
            int(raw["never_pickable"]),
            float(raw["never_pickable_seconds"]),
        )


# --- the whole run ----------------------------------------------------------------------


@dataclass(frozen=True)
class RunRecord:
    """Everything a finished run recommends: the content of ``recommendations.json``.

    Written and read only through :meth:`write` and :meth:`read`; every path in
    the file is relative to the folder that holds it, so a run folder can be
    moved or archived.
    """

    study: str
    storage: str
    """The storage URL, password redacted."""
    objective: Objective
    fingerprint: Fingerprint
    teacher: TeacherRecord
    reference: ReferenceStudent | None
    picks: tuple[Pick, ...]
    finals: tuple[FinalStudent, ...] = ()
    """The final students, the reference's included when it was distilled."""
    evaluation: Evaluation | None = None
    search: SearchSpend | None = None
    quantized_teacher: ReferenceStudent | None = None
    """The teacher itself in int8 (fp16 on a GPU), timed and scored like a candidate."""

    def final(self, folder: str) -> FinalStudent | None:
        """The final student in ``students/<folder>`` (a budget or ``reference``), if any."""
        return next((f for f in self.finals if f.folder == folder), None)

    def final_of(self, pick: Pick) -> FinalStudent | None:
        """The final student of ``pick``, if it was distilled."""
        return self.final(pick.budget)

    @property
    def reference_final(self) -> FinalStudent | None:
        """The hand-crafted student after the same final distillation, if it had one."""
        return self.final(REFERENCE_FOLDER)

    def speedup(self, final: FinalStudent) -> float:
        """``final``'s speed-up over the teacher, from their paired timing."""
        return self.teacher.speedup(final.latency.p50_ms)

    def beaten_by_quantized_teacher(self, pick: Pick) -> bool:
        """Whether the quantised teacher is as fast as ``pick`` and at least as good.

        Such a pick is not worth distilling: the user can ship the quantised teacher.
        """
        qt, t = self.quantized_teacher, pick.trial
        if qt is None or t is None:
            return False
        value = qt.value(self.objective)
        if value is None:
            return False
        as_good = not self.objective.better(t.value, value)
        return qt.latency.p50_ms <= t.timing.p50_ms and as_good

    def speedup_ci(self, final: FinalStudent) -> tuple[float, float] | None:
        """A 95% interval for :meth:`speedup` (from the timing's interval), if it has one."""
        ci = final.latency.ci_ms
        if ci is None:
            return None
        return self.teacher.speedup(ci[1]), self.teacher.speedup(ci[0])

    def final_vs_search(self, pick: Pick) -> float | None:
        """How far the shipped student's p50 moved from the search's: final / search - 1.

        The search's figure is the one the pick was committed on and that the
        console and report show: its confirmation (``search.confirm`` times every
        pick again), else its trial's.
        """
        done = self.final_of(pick)
        if done is None or pick.trial is None:
            return None
        return done.latency.p50_ms / pick.trial.timing.p50_ms - 1

    def percent_of_teacher(self, final: FinalStudent) -> float | None:
        """``final``'s evaluation score as a percentage of the teacher's."""
        if self.evaluation is None or final.score is None:
            return None
        return self.evaluation.percent_of_teacher(final.score)

    def to_json(self, base: Path) -> dict[str, Any]:
        """JSON-ready, paths relative to ``base``; derived figures written out for readers."""
        ref_final = self.reference_final
        return {
            "schema_version": SCHEMA_VERSION,
            "study": self.study,
            "storage": self.storage,
            "objective": self.objective.to_json(),
            "latency_setup": self.fingerprint.to_json(),
            "teacher": self.teacher.to_json(),
            "reference": self.reference.to_json() if self.reference else None,
            "reference_final": self._final_json(ref_final, base) if ref_final else None,
            "evaluation": self.evaluation.to_json() if self.evaluation else None,
            "search": self.search.to_json() if self.search else None,
            "quantized_teacher": qt.to_json() if (qt := self.quantized_teacher) else None,
            "picks": [self._pick_json(p, base) for p in self.picks],
        }

    def _final_json(self, final: FinalStudent, base: Path) -> dict[str, Any]:
        out = final.to_json(base)
        out["speedup"] = self.speedup(final)
        ci = self.speedup_ci(final)
        out["speedup_ci"] = list(ci) if ci else None
        out["percent_of_teacher"] = self.percent_of_teacher(final)
        return out

    def _pick_json(self, pick: Pick, base: Path) -> dict[str, Any]:
        done = self.final_of(pick)
        return {
            **pick.to_json(),
            "final": self._final_json(done, base) if done else None,
            "final_vs_search": self.final_vs_search(pick),
            "beaten_by_quantized_teacher": self.beaten_by_quantized_teacher(pick),
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any], base: Path) -> RunRecord:
        """Inverse of :meth:`to_json`: paths resolved against ``base``.

        Raises:
            ParetokdError: If the file was written with another schema.
        """
        version = raw.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ParetokdError(
                f"recommendations.json has schema_version {version!r}; this paretokd reads "
                f"{SCHEMA_VERSION}: run the study again to rewrite it"
            )
        finals = [FinalStudent.from_json(p["final"], base) for p in raw["picks"] if p["final"]]
        if raw.get("reference_final"):
            finals.append(FinalStudent.from_json(raw["reference_final"], base))
        ref, ev, spent = raw.get("reference"), raw.get("evaluation"), raw.get("search")
        qt = raw.get("quantized_teacher")
        return cls(
            study=str(raw["study"]),
            storage=str(raw["storage"]),
            objective=Objective.from_json(raw["objective"]),
            fingerprint=Fingerprint.from_json(raw["latency_setup"]),
            teacher=TeacherRecord.from_json(raw["teacher"]),
            reference=ReferenceStudent.from_json(ref) if ref else None,
            picks=tuple(Pick.from_json(p) for p in raw["picks"]),
            finals=tuple(finals),
            evaluation=Evaluation.from_json(ev) if ev else None,
            search=SearchSpend.from_json(spent) if spent else None,
            quantized_teacher=ReferenceStudent.from_json(qt) if qt else None,
        )

    def write(self, path: Path) -> Path:
        """Write as JSON at ``path`` (atomically), paths relative to its folder."""
        text = json.dumps(self.to_json(path.parent), indent=2) + "\n"
        return write_text(path, text)

    @classmethod
    def read(cls, path: Path) -> RunRecord:
        """Read a ``recommendations.json`` written by :meth:`write`.

        Raises:
            ParetokdError: If it is missing, not JSON, or of another schema.
        """
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ParetokdError(
                f"no finished run in {str(path.parent)!r}: {path.name} is missing"
            ) from None
        except (OSError, ValueError) as exc:
            raise ParetokdError(f"cannot read {str(path)!r}: {exc}") from None
        return cls.from_json(raw, Path(path).parent)
