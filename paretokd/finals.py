"""The finals stage: distil each pick, check its shipped graph against its budget, fall back.

A budget is a promise. Each pick is distilled on the full training split and
its exported graph is timed again, paired with the anchor its search trial
was paired with. A student over its budget is timed once more; still over, the
next best candidate that fits takes its place (confirmed and distilled in
turn), and the pick records why. A budget that no candidate keeps ends with no
student and a reason, never with a student that breaks it.

Workers share the finals (``search.claims``): the first to get here stores the
plan (the picks) in a round beside the study, each architecture's final is one
unit that one worker claims, and every worker waits until all are done and
reads them back, so each writes every pick. One process alone takes every unit
in turn, as it always did. When the teacher's outputs on the full split are too
large to keep between students, the plan is one unit of every shape, distilled
side by side from one pass of the teacher (:attr:`Plan.together`).
"""

from __future__ import annotations

import logging
import platform
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FixedTrial
from transformers import PreTrainedModel

from paretokd.config import StudySpec, format_budget
from paretokd.distill import final, recipe
from paretokd.distill.recipe import Distilled
from paretokd.distill.targets import TeacherTargets
from paretokd.models.data import Splits
from paretokd.models.teacher import Teacher
from paretokd.records import (
    REFERENCE_FOLDER,
    Arch,
    FinalStudent,
    Fingerprint,
    LatencyStats,
    Objective,
    Pick,
    ReferenceStudent,
    TrialRecord,
)
from paretokd.records.finals_round import Outcome, Plan, Unit, UnitDone
from paretokd.search import claims, confirm, recommend, space
from paretokd.search.context import Context, time_onnx
from paretokd.search.trial import worker

log = logging.getLogger(__name__)

ProgressFactory = Callable[[str, int], Callable[[int, float], None]]
"""Given a label and a total, returns a per-step callback (the CLI draws a bar)."""

MAX_FALLBACKS = 2
"""Candidates tried after the pick for one budget before the budget is given up."""

CLAIMS_KIND = "finals"
"""The finals' rounds of claims are the studies ``<study>.finals.<n>`` in the study's storage."""


def time_final(path: Path, ctx: Context, precision: str, anchor: str | None) -> LatencyStats:
    """Time a shipped graph as the study timed its candidates, with the confirmation's rounds.

    It is paired with ``anchor``, the one its search trial was paired with.
    """
    return time_onnx(path, ctx, precision, ctx.spec.latency.confirm_rounds, anchor)


@dataclass
class Shipping:
    """What the finals share: the study, its context and where students go."""

    splits: Splits
    study: optuna.Study
    ctx: Context
    """The search's context: the spec, the teacher, the fingerprint and the anchor."""
    out_dir: Path
    progress: ProgressFactory | None = None
    done: dict[str, FinalStudent] = field(default_factory=dict)
    """Architecture id → its finished student in this run (distilled once, copied)."""
    trained: dict[str, Distilled] = field(default_factory=dict)
    """Sizes id → its final distillation in this run: one training for every precision."""
    models: dict[str, PreTrainedModel] = field(default_factory=dict)
    """Folder → the trained model (for the evaluation)."""
    elsewhere: dict[str, str] = field(default_factory=dict)
    """Folder → ``host:path`` of a student another machine distilled, whose files are not here."""
    _full_train: TeacherTargets | None = None

    @property
    def spec(self) -> StudySpec:
        """The study's spec."""
        return self.ctx.spec

    @property
    def teacher(self) -> Teacher:
        """The loaded teacher."""
        return self.ctx.teacher

    @property
    def objective(self) -> Objective:
        """Objective 1 of the study."""
        return self.ctx.objective

    @property
    def fingerprint(self) -> Fingerprint:
        """The machine and latency setup every timing holds on."""
        return self.ctx.fingerprint

    @property
    def full_train(self) -> TeacherTargets:
        """The full training split with the teacher's outputs, made on first use."""
        if self._full_train is None:
            self._full_train = final.training_targets(self.spec, self.teacher, self.splits)
        return self._full_train


def ship(
    s: Shipping, picks: list[Pick], reference: ReferenceStudent | None, with_reference: bool
) -> tuple[list[Pick], list[FinalStudent]]:
    """Distil and check every pick; then the reference, when ``with_reference``.

    The work is shared with every other worker of the study that reaches its
    finals: each architecture is claimed by one of them, and this process
    returns once all are done, with every pick (:mod:`paretokd.search.claims`).
    A worker that joins a round follows its plan, so all of them ship the
    same picks. A student distilled on another machine is copied here when its
    folder can be read (a shared output folder or file system); otherwise it is
    listed with its figures, its files stay where they were made, and it is in
    :attr:`Shipping.elsewhere`.

    Returns:
        The picks as shipped (a fallback, or no trial and a reason, where a
        budget was not kept) and the final students, the reference's last.
    """
    ref = reference.arch if with_reference and reference is not None else None
    # Outputs too large to keep between students: every shape in one unit, trained
    # side by side from one pass of the teacher (a worker then distils them all).
    together = not final.keeps_outputs(s.spec, s.teacher, s.splits)  # no tokenising
    plan = Plan.make(s.spec, picks, ref, together=together)
    if not plan.units():
        return list(picks), []  # nothing fits any budget: each pick says why
    rnd = claims.open_round(
        s.study, CLAIMS_KIND, plan.key, plan.family, plan.to_json(), plan.unit_keys()
    )
    if rnd.key != plan.key:  # another worker planned it, from its own view of the study
        log.info("finals: following the picks of %s", rnd.study.study_name)
        plan = Plan.from_json(rnd.plan, recommend.trials(s.study))
    units = {u.key: u for u in plan.units()}
    mine: dict[str, UnitDone] = {}  # this process's units, kept as they are (no round trip)

    def run_unit(key: str) -> dict[str, Any]:
        mine[key] = _ship_unit(s, plan, units[key])
        return mine[key].to_json(s.out_dir)

    raw = claims.work(rnd, run_unit)
    others = {key: value for key, value in raw.items() if key not in mine}
    known = recommend.trials(s.study) if others else []  # their picks' records, read once
    done = {key: UnitDone.from_json(value, known) for key, value in others.items()}
    return _gather(s, plan, {**done, **mine})


def with_scores(students: list[FinalStudent], scored: list[FinalStudent]) -> list[FinalStudent]:
    """``students`` in their order, each replaced by its copy in ``scored`` where it has one."""
    by_folder = {f.folder: f for f in scored}
    return [by_folder.get(f.folder, f) for f in students]


def _ship_unit(s: Shipping, plan: Plan, unit: Unit) -> UnitDone:
    """Distil, check and ship one claimed architecture for each of its folders."""
    if plan.together:
        _train_side_by_side(s, plan, unit)
    outcomes = []
    for folder in unit.folders:
        if folder == REFERENCE_FOLDER:
            assert plan.reference is not None
            # Scored against the picks, the reference gets the same final training
            # (or a copy, when a pick is the reference's architecture).
            job = final.Job(REFERENCE_FOLDER, plan.reference, None, None)
            outcomes.append(Outcome(folder, None, _distil(s, job)))
        else:
            kept, student = _ship_pick(s, plan.pick(folder))
            outcomes.append(Outcome(folder, kept, student))
    return UnitDone(worker(), s.out_dir.resolve(), tuple(outcomes))


def _train_side_by_side(s: Shipping, plan: Plan, unit: Unit) -> None:
    """Distil every shape of ``unit`` at once, from one pass of the teacher (``s.trained``).

    Shapes an earlier run finished are not trained again; the shipping that
    follows finds the others trained, exports, times and checks them as usual
    (a fallback candidate, if one is needed, trains on its own).
    """
    jobs = [
        final.Job(REFERENCE_FOLDER, plan.reference, None, None)
        if folder == REFERENCE_FOLDER and plan.reference is not None
        else _job(s.spec, plan.pick(folder))
        for folder in unit.folders
    ]
    shapes: dict[str, Arch] = {}
    for job in jobs:
        sizes = job.arch.sizes
        if sizes.id not in s.trained and final.finished(job, s.spec, s.out_dir) is None:
            shapes.setdefault(sizes.id, sizes)
    if not shapes:
        return
    steps = s.spec.distill.final_steps
    log.info(
        "finals: distilling %s side by side for %d steps, from one pass of the teacher "
        "(its outputs are too large to keep between students)",
        ", ".join(shapes),
        steps,
    )
    models = [
        recipe.build(arch, s.teacher.model, s.spec, s.ctx.slicing) for arch in shapes.values()
    ]
    tick = s.progress(f"finals {unit.key}", steps) if s.progress else None
    done = recipe.distill_together(
        models,
        s.full_train,
        s.ctx.proxy_eval,
        s.spec,
        s.ctx.slicing,
        steps,
        [tick] + [None] * (len(models) - 1),
        keep_best=True,
    )
    s.trained.update(zip(shapes, done, strict=True))


def _gather(
    s: Shipping, plan: Plan, done: dict[str, UnitDone]
) -> tuple[list[Pick], list[FinalStudent]]:
    """Every unit's outcomes in the plan's order, students' files brought here when they can be."""
    units = {folder: u for u in plan.units() for folder in u.folders}
    for u in plan.units():
        if _lost_here(s, done[u.key]):
            log.warning("finals: %s was distilled here but its files are gone: again", u.key)
            done[u.key] = _ship_unit(s, plan, u)
    shipped: list[Pick] = []
    students: list[FinalStudent] = []
    for p in plan.picks:
        if p.trial is None:
            shipped.append(p)
            continue
        unit = done[units[p.budget].key]
        got = unit.outcome(p.budget)
        assert got.pick is not None
        shipped.append(got.pick)
        if got.student is not None:
            students.append(_adopt(s, got.student, unit))
    if plan.reference is not None and students:
        unit = done[units[REFERENCE_FOLDER].key]
        got = unit.outcome(REFERENCE_FOLDER)
        assert got.student is not None
        students.append(_adopt(s, got.student, unit))
    return shipped, students


def _job_of(student: FinalStudent) -> final.Job:
    return final.Job(
        student.folder, student.arch, student.budget_ms, student.trial, student.latency.anchor
    )


def _readable(s: Shipping, student: FinalStudent, unit: UnitDone) -> bool:
    """Whether the student's finished folder can be read from this machine."""
    return final.finished(_job_of(student), s.spec, unit.out_dir) is not None


def _lost_here(s: Shipping, unit: UnitDone) -> bool:
    """A unit this machine distilled into this output folder, whose files are gone since."""
    here = unit.host == platform.node() and unit.out_dir == s.out_dir.resolve()
    students = [o.student for o in unit.outcomes if o.student is not None]
    return here and any(not _readable(s, st, unit) for st in students)


def _adopt(s: Shipping, student: FinalStudent, unit: UnitDone) -> FinalStudent:
    """``student`` in this run's folder: made here, copied here, or left on its machine."""
    if student.folder in s.models:
        return student  # this process distilled it
    if _readable(s, student, unit):  # this output folder, or one shared with its worker
        here = final.copy_student(student, _job_of(student), s.out_dir, s.spec)
        s.models[here.folder] = final.load_model(here, s.teacher)
        return here
    s.elsewhere[student.folder] = f"{unit.host}:{student.dir}"
    log.warning(
        "finals: %s was distilled by %s into %s, not readable here: listed with its "
        "figures, its files stay on that machine",
        student.folder,
        unit.worker,
        student.dir,
    )
    return student


# --- one budget, with its fallbacks -------------------------------------------------------


def _ship_pick(s: Shipping, pick: Pick) -> tuple[Pick, FinalStudent | None]:
    """Ship ``pick``, falling back to the next best candidate while the student is over budget."""
    over: list[tuple[TrialRecord, FinalStudent]] = []
    while pick.trial is not None:
        student = _checked(s, _distil(s, _job(s.spec, pick)))
        if student.within_budget:
            return pick, student
        over.append((pick.trial, student))
        # Its folder is about to hold the next candidate (or nothing): the same
        # shape shipped later (the reference) is exported again, not copied from it.
        done = s.done.get(student.arch.id)
        if done is not None and done.folder == student.folder:
            del s.done[student.arch.id]
        log.warning(
            "%s: trial %d (%s) shipped at p50 %.2f ms, over its budget when timed twice",
            pick.budget,
            pick.trial.number,
            pick.trial.arch.id,
            student.latency.p50_ms,
        )
        if len(over) > MAX_FALLBACKS:
            break
        pick = _next_candidate(s, pick, over)
    if not over:
        return pick, None  # nothing fitted in the first place: the pick says why
    shutil.rmtree(s.out_dir / "students" / pick.budget, ignore_errors=True)
    reason = f"budget {pick.budget} cannot be kept: {_over_text(over)}"
    if pick.reason:
        reason += f"; {pick.reason}"
    return Pick(pick.budget_ms, None, reason), None


def _next_candidate(s: Shipping, pick: Pick, over: list[tuple[TrialRecord, FinalStudent]]) -> Pick:
    tried = {t.number for t, _ in over}
    trials = confirm.confirm(
        s.study, s.ctx, recommend.trials(s.study), [pick.budget_ms], s.objective, tried
    )
    nxt = recommend.pick_one(trials, pick.budget_ms, s.objective, tried)
    if nxt.trial is None:
        return nxt
    note = f"{_over_text(over)}; trial {nxt.trial.number} is the next best that fits"
    log.warning(
        "%s: falling back to trial %d (%s)", pick.budget, nxt.trial.number, nxt.trial.arch.id
    )
    return replace(nxt, fallback=note)


def _over_text(over: list[tuple[TrialRecord, FinalStudent]]) -> str:
    return "; ".join(
        f"trial {t.number} ({t.arch.id}) shipped at {f.latency.p50_ms:.2f} ms, over "
        f"{format_budget(f.budget_ms or 0.0)} when timed twice"
        for t, f in over
    )


def _job(spec: StudySpec, pick: Pick) -> final.Job:
    """The final job of a pick; its architecture replayed through the space (``FixedTrial``)."""
    assert pick.trial is not None
    arch = space.suggest(FixedTrial(pick.trial.arch.to_dict()), spec.space)
    return final.Job(pick.budget, arch, pick.budget_ms, pick.trial.number, pick.trial.timing.anchor)


def _checked(s: Shipping, student: FinalStudent) -> FinalStudent:
    """``student``, timed once more when its shipped graph was over budget."""
    if student.within_budget is not False:
        return student
    log.info(
        "%s: p50 %.2f ms is over budget; timing it again", student.folder, student.latency.p50_ms
    )
    again = time_final(student.onnx, s.ctx, student.arch.precision, student.latency.anchor)
    return final.retimed(student, again, s.fingerprint, s.spec)


def _distil(s: Shipping, job: final.Job) -> FinalStudent:
    """The finished student of ``job``: copied, reused from an earlier run, or distilled now."""
    steps = s.spec.distill.final_steps
    if job.arch.id in s.done:
        source = s.done[job.arch.id]
        student = final.copy_student(source, job, s.out_dir, s.spec)
        s.models[job.folder] = s.models[source.folder]
        return student
    reused = final.finished(job, s.spec, s.out_dir)
    if reused is not None:
        log.info("%s: reusing the finished student in %s", job.folder, reused.dir)
        student, model = reused, final.load_model(reused, s.teacher)
    else:
        trained = s.trained.get(job.arch.sizes.id)
        if trained is None:
            log.info("final %s: distilling %s for %d steps", job.folder, job.arch.id, steps)
        else:
            log.info("final %s: %s, distilled once for every precision", job.folder, job.arch.id)
        label = f"final {job.folder}"
        student, done = final.distill_and_export(
            job,
            s.spec,
            s.teacher,
            s.full_train,
            s.ctx.proxy_eval,
            s.ctx.slicing,
            lambda path: time_final(path, s.ctx, job.arch.precision, job.anchor),
            s.fingerprint,
            s.out_dir,
            progress=s.progress(label, steps) if s.progress and trained is None else None,
            trained=trained,
        )
        s.trained[job.arch.sizes.id] = done
        model = done.model
    s.done[job.arch.id] = student
    s.models[job.folder] = model
    return student
