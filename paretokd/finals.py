"""The finals stage: distil each pick, check its shipped graph against its budget, fall back.

A budget is a promise. Each pick is distilled on the full training split and
its exported graph is timed again, paired with the teacher like every figure
of the study. A student over its budget is timed once more; still over, the
next best candidate that fits takes its place (confirmed and distilled in
turn), and the pick records why. A budget that no candidate keeps ends with no
student and a reason, never with a student that breaks it.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import optuna
from optuna.trial import FixedTrial
from transformers import PreTrainedModel

from paretokd.config import StudySpec, format_budget
from paretokd.distill import final
from paretokd.distill.targets import TeacherTargets
from paretokd.models.data import Splits
from paretokd.models.teacher import Teacher
from paretokd.records import (
    REFERENCE_FOLDER,
    FinalStudent,
    Fingerprint,
    LatencyStats,
    Objective,
    Pick,
    ReferenceStudent,
    TrialRecord,
)
from paretokd.search import confirm, recommend, space
from paretokd.search.context import Context, time_onnx

log = logging.getLogger(__name__)

ProgressFactory = Callable[[str, int], Callable[[int, float], None]]
"""Given a label and a total, returns a per-step callback (the CLI draws a bar)."""

MAX_FALLBACKS = 2
"""Candidates tried after the pick for one budget before the budget is given up."""


def time_final(path: Path, ctx: Context) -> LatencyStats:
    """Time a shipped graph as the study timed its candidates, with the confirmation's rounds."""
    return time_onnx(path, ctx, ctx.spec.latency.confirm_rounds)


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
    models: dict[str, PreTrainedModel] = field(default_factory=dict)
    """Folder → the trained model (for the evaluation)."""
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

    Returns:
        The picks as shipped (a fallback, or no trial and a reason, where a
        budget was not kept) and the final students, the reference's last.
    """
    shipped: list[Pick] = []
    finals: list[FinalStudent] = []
    for p in picks:
        kept, student = _ship_pick(s, p)
        shipped.append(kept)
        if student is not None:
            finals.append(student)
    if with_reference and reference is not None and finals:
        # Scored against the picks, the reference gets the same final training
        # (or a copy, when a pick is the reference's architecture).
        finals.append(_distil(s, final.Job(REFERENCE_FOLDER, reference.arch, None, None)))
    return shipped, finals


def _ship_pick(s: Shipping, pick: Pick) -> tuple[Pick, FinalStudent | None]:
    """Ship ``pick``, falling back to the next best candidate while the student is over budget."""
    over: list[tuple[TrialRecord, FinalStudent]] = []
    while pick.trial is not None:
        student = _checked(s, _distil(s, _job(s.spec, pick)))
        if student.within_budget:
            return pick, student
        over.append((pick.trial, student))
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
    return final.Job(pick.budget, arch, pick.budget_ms, pick.trial.number)


def _checked(s: Shipping, student: FinalStudent) -> FinalStudent:
    """``student``, timed once more when its shipped graph was over budget."""
    if student.within_budget is not False:
        return student
    log.info(
        "%s: p50 %.2f ms is over budget; timing it again", student.folder, student.latency.p50_ms
    )
    again = time_final(student.onnx, s.ctx)
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
        log.info("final %s: distilling %s for %d steps", job.folder, job.arch.id, steps)
        label = f"final {job.folder}"
        student, model = final.distill_and_export(
            job,
            s.spec,
            s.teacher,
            s.full_train,
            s.ctx.proxy_eval,
            s.ctx.slicing,
            lambda path: time_final(path, s.ctx),
            s.fingerprint,
            s.out_dir,
            progress=s.progress(label, steps) if s.progress else None,
        )
    s.done[job.arch.id] = student
    s.models[job.folder] = model
    return student
