"""Each student's learning rate: the rule by distance from the teacher, or the spec's one rate."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from paretokd import config, pipeline
from paretokd.config import StudySpec
from paretokd.distill import recipe
from paretokd.records import Arch

TEACHER = Arch(6, 384, 12, 1536)


def test_the_rule_falls_as_a_student_nears_the_teacher() -> None:
    spec = StudySpec()
    students = [Arch(1, 64, 2, 256), Arch(2, 192, 6, 768), Arch(3, 384, 12, 1536), TEACHER]
    shares = [recipe.teacher_share(a, TEACHER) for a in students]
    rates = [recipe.learning_rate(a, TEACHER, spec) for a in students]
    assert shares == sorted(shares) and shares[-1] == 1.0
    assert rates == sorted(rates, reverse=True)
    # The measured landmarks (bench/learning_rate.py): far, half the teacher, the teacher.
    assert rates[0] == pytest.approx(recipe.RATE_FAR, rel=0.05)
    assert rates[2] == pytest.approx(1e-3, rel=0.25)
    assert rates[3] == recipe.RATE_MIN
    # Precision does not change what is trained.
    int8 = dataclasses.replace(students[1], precision="int8")
    assert recipe.learning_rate(int8, TEACHER, spec) == rates[1]


def test_a_rate_in_the_spec_is_every_students() -> None:
    spec = StudySpec(distill=dataclasses.replace(StudySpec().distill, learning_rate=3e-4))
    assert {recipe.learning_rate(a, TEACHER, spec) for a in (Arch(1, 64, 2, 256), TEACHER)} == {
        3e-4
    }


def test_trials_record_the_rule_and_finals_replay_it(
    tiny_spec_file: Path, tiny_teacher_dir: Path, corpus_file: Path, tmp_path: Path
) -> None:
    spec = config.override(
        config.load(tiny_spec_file),
        budgets=(100.0,),
        **{"teacher.name": str(tiny_teacher_dir), "data.source": str(corpus_file)},
    )
    out = tmp_path / "run"
    result = pipeline.run(spec, out=out, show_progress=False)
    trained = [t for t in result.trials if t.proxy_loss is not None]
    assert trained
    teacher = Arch(4, 64, 4, 128)  # the tiny teacher
    for t in trained:
        assert t.learning_rate == recipe.learning_rate(t.arch, teacher, spec)
    # The final distillation of a pick runs at its trial's rate.
    (pick,) = result.record.picks
    final = result.record.final_of(pick)
    assert pick.trial is not None and final is not None
    assert final.learning_rate == pick.trial.learning_rate


def test_a_task_heads_students_take_smaller_steps() -> None:
    agnostic = StudySpec()
    task = config.from_dict({"task": {"kind": "classification"}})
    for arch in (Arch(1, 64, 2, 256), Arch(2, 192, 6, 768), Arch(3, 384, 12, 1536)):
        hidden = recipe.learning_rate(arch, TEACHER, agnostic)
        logits = recipe.learning_rate(arch, TEACHER, task)
        assert logits == pytest.approx(hidden * recipe.RATE_FAR_LOGITS / recipe.RATE_FAR)
    # The measured landmark on SST-2: about 2e-4 at half the teacher.
    assert recipe.learning_rate(Arch(3, 384, 12, 1536), TEACHER, task) == pytest.approx(
        1.8e-4, rel=0.05
    )
    assert recipe.learning_rate(TEACHER, TEACHER, task) == recipe.RATE_MIN
