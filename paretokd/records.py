"""The typed records that cross module boundaries: one shape, one way in and out, per fact.

Every record is a frozen dataclass. Those that are stored have exactly one pair
of functions that write and read them: ``to_json``/``from_json`` for the files
paretokd writes, and :meth:`TrialRecord.write`/:meth:`TrialRecord.read` for a
trial's Optuna attributes (names in :class:`Attr`). A derived number (an
architecture's id, a speed-up, feasibility, a share) is a property of the record
that owns it, computed in one place.

This module is the floor of the package: it imports nothing of paretokd but the
config's budget format, the metrics' worst values and the atomic file writer, and no library
beyond the standard one, so every layer can use it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from paretokd.config import format_budget
from paretokd.errors import ParetokdError
from paretokd.files import write_text
from paretokd.metrics import WORST

SCHEMA_VERSION = 1
"""The layout of ``recommendations.json``; bumped whenever a field changes meaning."""

UNTRAINED_LOSS = 1.0
"""The normalised distillation loss of a student that explains nothing (see
``distill.losses.normalised_mse`` and ``distill.losses.logit_loss_sums``)."""

METRIC_IDEAL = 1.0
"""The best value every task metric of :mod:`paretokd.metrics` can take."""


# --- the architecture -------------------------------------------------------------------

_ARCH_FIELDS = ("num_layers", "hidden_size", "num_heads", "intermediate_size")


@dataclass(frozen=True)
class Arch:
    """One student architecture. Latency depends on this alone, not on weights."""

    num_layers: int
    hidden_size: int
    num_heads: int
    intermediate_size: int

    @property
    def id(self) -> str:
        """A stable, readable id, used as a cache key and in file names."""
        return f"L{self.num_layers}-H{self.hidden_size}-A{self.num_heads}-F{self.intermediate_size}"

    def to_dict(self) -> dict[str, int]:
        """The architecture as plain JSON-ready values (also a trial's parameters)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Arch:
        """Inverse of :meth:`to_dict`."""
        return cls(**{k: int(raw[k]) for k in _ARCH_FIELDS})


# --- objective 1 ------------------------------------------------------------------------


@dataclass(frozen=True)
class Objective:
    """Objective 1 of a study: the proxy distillation loss, or a task metric on proxy labels.

    Objective 2 is always the latency p50 in milliseconds, minimised.
    """

    name: str
    """``loss``, or a metric of :data:`paretokd.metrics.WORST` (``accuracy``, ...)."""

    def __post_init__(self) -> None:
        if self.name != "loss" and self.name not in WORST:
            known = ", ".join(["loss", *WORST])
            raise ParetokdError(f"unknown objective {self.name!r}: expected one of {known}")

    @property
    def maximise(self) -> bool:
        """Whether higher is better (a task metric) rather than lower (the loss)."""
        return self.name != "loss"

    @property
    def direction(self) -> str:
        """Optuna's word for :attr:`maximise`: ``maximize`` or ``minimize``."""
        return "maximize" if self.maximise else "minimize"

    @property
    def worst(self) -> float:
        """What a student that was never trained scores: the hypervolume's reference."""
        return WORST[self.name] if self.maximise else UNTRAINED_LOSS

    @property
    def ideal(self) -> float:
        """The best value it can take: the far corner of the hypervolume's box."""
        return METRIC_IDEAL if self.maximise else 0.0

    @property
    def label(self) -> str:
        """How tables and axes name it: ``proxy loss``, ``proxy accuracy``."""
        return f"proxy {self.name}"

    def better(self, a: float, b: float) -> bool:
        """Whether value ``a`` is strictly better than ``b``."""
        return a > b if self.maximise else a < b

    def sort_key(self, value: float) -> float:
        """A key that sorts values best first."""
        return -value if self.maximise else value

    def to_json(self) -> dict[str, Any]:
        """JSON-ready: the name and Optuna's direction."""
        return {"name": self.name, "direction": self.direction}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Objective:
        """Inverse of :meth:`to_json`."""
        return cls(str(raw["name"]))


LOSS = Objective("loss")
"""The task-agnostic default objective."""


# --- latency ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LatencyStats:
    """Latency statistics of one model, in milliseconds.

    The first four fields are what older studies stored; the others default so
    that those still load with :meth:`from_json`.
    """

    p50_ms: float
    p90_ms: float
    mean_ms: float
    runs: int
    p99_ms: float | None = None
    ci_ms: tuple[float, float] | None = None
    """A 95% confidence interval for p50 (order statistics of the timed runs)."""
    min_ms: float | None = None
    seconds: float | None = None
    """Wall time of the timed runs (warm-up excluded)."""
    measured_at: float | None = None
    """Unix time at which the timed runs started."""
    lock_wait_s: float | None = None
    """Time spent waiting for another process's measurement to finish."""
    clock: str | None = None
    """What the figures above time: ``cpu`` or ``wall`` (see ``latency.fingerprint.clock``)."""
    wall_p50_ms: float | None = None
    """The wall-clock p50 of every run: far above ``p50_ms`` when the core was shared."""
    runs_dropped: int | None = None
    """Timed runs left out because other load slowed their block (see ``latency.measure``)."""

    def __post_init__(self) -> None:
        if self.ci_ms is not None:  # JSON gives a list back
            object.__setattr__(self, "ci_ms", (float(self.ci_ms[0]), float(self.ci_ms[1])))

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-ready values."""
        out = asdict(self)
        out["ci_ms"] = list(self.ci_ms) if self.ci_ms is not None else None
        return out

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> LatencyStats:
        """Inverse of :meth:`to_json`."""
        return cls(**raw)


@dataclass(frozen=True)
class Fingerprint:
    """The hardware and settings a latency figure is only valid for."""

    device: str
    hardware: str
    """The CPU model, or the GPU name with ``device: cuda``."""
    cores: int
    provider: str
    onnxruntime: str
    threads: int
    inter_op_threads: int
    spinning: bool
    execution_mode: str
    graph_optimization: str
    graph: str
    """How the timed graph was made (exporter, opset, attention form, fusions)."""
    clock: str
    """``cpu`` (the model thread's CPU time) or ``wall``."""
    batch: int
    seq_len: int

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-ready values."""
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Fingerprint:
        """Inverse of :meth:`to_json`."""
        return cls(**raw)


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
    cached_from: str | None = None
    """``trial N`` or ``reference`` when the figures were reused, not measured again."""
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds per stage: ``build_s``, ``latency_s``, ``distill_s``, ``metric_s``."""
    worker: str | None = None
    """``host:pid`` of the process that ran it."""

    @property
    def feasible(self) -> bool:
        """Whether it fits the largest budget (and so was trained and can be picked)."""
        return self.over_budget_ms <= 0

    @property
    def latency_ms(self) -> float:
        """Objective 2: the latency p50."""
        return self.latency.p50_ms

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
        }
        for key, figure in optional.items():
            if figure is not None:
                trial.set_user_attr(key, figure)

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
        )


# --- the comparison models --------------------------------------------------------------


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
    """The teacher: what it is, and its latency at the search and beside the finals."""

    name: str
    source: str
    params: int
    latency: LatencyStats
    """Timed once per study, before the first trial."""
    latency_final: LatencyStats | None = None
    """Timed again beside the final students, in the machine's state at that time."""

    @property
    def latency_ms(self) -> float:
        """The p50 every speed-up divides: beside the finals when re-timed, else the search's."""
        return (self.latency_final or self.latency).p50_ms

    def speedup(self, latency_ms: float) -> float:
        """How many times faster than the teacher a model of p50 ``latency_ms`` runs."""
        return self.latency_ms / latency_ms

    def to_json(self) -> dict[str, Any]:
        """JSON-ready."""
        final = self.latency_final
        return {
            "name": self.name,
            "source": self.source,
            "params": self.params,
            "latency_ms": self.latency.p50_ms,
            "latency": self.latency.to_json(),
            "latency_final_ms": final.p50_ms if final else None,
            "latency_final": final.to_json() if final else None,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> TeacherRecord:
        """Inverse of :meth:`to_json`."""
        final = raw.get("latency_final")
        return cls(
            name=str(raw["name"]),
            source=str(raw["source"]),
            params=int(raw["params"]),
            latency=LatencyStats.from_json(raw["latency"]),
            latency_final=LatencyStats.from_json(final) if final else None,
        )


# --- picks and final students -----------------------------------------------------------


@dataclass(frozen=True)
class Pick:
    """The recommendation for one budget: a trial, or the reason there is none."""

    budget_ms: float
    trial: TrialRecord | None
    reason: str | None = None

    @property
    def budget(self) -> str:
        """The budget as the user writes it (``10ms``): the key of its final student."""
        return format_budget(self.budget_ms)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready: the budget, and the trial's architecture and figures."""
        t = self.trial
        return {
            "budget": self.budget,
            "budget_ms": self.budget_ms,
            "reason": self.reason,
            "trial": t.number if t else None,
            "arch": t.arch.to_dict() if t else None,
            "arch_id": t.arch.id if t else None,
            "params": t.params if t else None,
            "value": t.value if t else None,
            "latency_ms": t.latency_ms if t else None,
            "latency": t.latency.to_json() if t else None,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Pick:
        """Inverse of :meth:`to_json` (the trial's other figures stay in the study)."""
        trial = None
        if raw["trial"] is not None:
            trial = TrialRecord(
                number=int(raw["trial"]),
                arch=Arch.from_dict(raw["arch"]),
                params=int(raw["params"]),
                value=float(raw["value"]),
                latency=LatencyStats.from_json(raw["latency"]),
                over_budget_ms=0.0,  # a pick always fits the largest budget
                on_front=True,
            )
        return cls(float(raw["budget_ms"]), trial, raw.get("reason"))


REFERENCE_FOLDER = "reference"
"""The hand-crafted student's final folder (``students/reference``)."""


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

    @property
    def onnx(self) -> Path:
        """The exported graph that was timed."""
        return self.dir / "model.onnx"

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

    def percent_of_teacher(self, score: float) -> float | None:
        """``score`` as a percentage of the teacher's."""
        return 100.0 * score / self.teacher if self.teacher else None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Evaluation:
        """Inverse of :meth:`to_json`."""
        return cls(str(raw["set"]), str(raw["metric"]), int(raw["examples"]), raw["teacher"])


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
        """``final``'s speed-up over the teacher (re-timed beside the finals when it was)."""
        return self.teacher.speedup(final.latency.p50_ms)

    def final_vs_search(self, pick: Pick) -> float | None:
        """How far the shipped student's p50 moved from the search's: final / search - 1."""
        done = self.final_of(pick)
        if done is None or pick.trial is None:
            return None
        return done.latency.p50_ms / pick.trial.latency_ms - 1

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
            "picks": [self._pick_json(p, base) for p in self.picks],
        }

    def _final_json(self, final: FinalStudent, base: Path) -> dict[str, Any]:
        out = final.to_json(base)
        out["speedup"] = self.speedup(final)
        out["percent_of_teacher"] = self.percent_of_teacher(final)
        return out

    def _pick_json(self, pick: Pick, base: Path) -> dict[str, Any]:
        done = self.final_of(pick)
        return {
            **pick.to_json(),
            "final": self._final_json(done, base) if done else None,
            "final_vs_search": self.final_vs_search(pick),
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
