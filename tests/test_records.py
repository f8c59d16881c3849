"""The typed records: one way in and one way out for each, and a run folder that can move."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import optuna
import pytest
from factories import FINGERPRINT

from paretokd.errors import ParetokdError
from paretokd.records import (
    CONSTRAINT,
    LOSS,
    SCHEMA_VERSION,
    Arch,
    Evaluation,
    FinalStudent,
    LatencyStats,
    Objective,
    Pick,
    ReferenceStudent,
    RunRecord,
    SearchSpend,
    TeacherRecord,
    TrialRecord,
)


def _stats(p50: float) -> LatencyStats:
    return LatencyStats(p50_ms=p50, p90_ms=p50 * 1.1, mean_ms=p50, runs=40, ci_ms=(p50 - 0.1, p50))


def _record(out_dir: Path) -> RunRecord:
    """A run with two budgets (one picked and distilled, one without a fit) and a reference."""
    arch = Arch(2, 64, 4, 128)
    trial = TrialRecord(
        3,
        arch,
        12345,
        0.4,
        _stats(4.0),
        over_budget_ms=-16.0,
        on_front=True,
        confirmed=_stats(4.05),  # timed again as a pick: read back as a record too
        trained_on="cpu",
    )
    picks = (Pick(10.0, trial), Pick(1.0, None, "nothing fits 1ms"))
    student = FinalStudent(
        folder="10ms",
        arch=arch,
        budget_ms=10.0,
        trial=3,
        loss=0.3,
        latency=_stats(4.2),
        parity_max_abs_diff=1e-5,
        steps=6,
        dir=out_dir / "students" / "10ms",
        score=0.8,
        learning_rate=1e-3,
        curve=((50, 0.4), (100, 0.3)),
        best_step=100,
    )
    ref_arch = Arch(2, 64, 4, 256)
    ref_final = FinalStudent(
        "reference",
        ref_arch,
        None,
        None,
        0.2,
        _stats(6.0),
        1e-5,
        6,
        out_dir / "students" / "reference",
        0.85,
    )
    return RunRecord(
        study="tiny",
        storage="sqlite:///study.db",
        objective=LOSS,
        fingerprint=FINGERPRINT,
        teacher=TeacherRecord("t", "/models/t", 99999, _stats(12.6)),
        reference=ReferenceStudent(ref_arch, 23456, _stats(6.1), 0.35, None),
        picks=picks,
        finals=(student, ref_final),
        evaluation=Evaluation("sts-dev.csv", "spearman", 100, 0.9),
        search=SearchSpend(5, 10.0, 1, 1.0),
    )


def test_a_run_record_round_trips_through_its_file(tmp_path: Path) -> None:
    record = _record(tmp_path)
    path = record.write(tmp_path / "recommendations.json")
    assert RunRecord.read(path) == record
    raw = json.loads(path.read_text())
    assert raw["schema_version"] == SCHEMA_VERSION
    # Paths are relative to the folder holding the file.
    assert raw["picks"][0]["final"]["dir"] == "students/10ms"
    assert raw["picks"][0]["final"]["onnx"] == "students/10ms/model.onnx"
    assert raw["reference_final"]["dir"] == "students/reference"


def test_derived_figures_are_computed_once_by_their_owner(tmp_path: Path) -> None:
    record = _record(tmp_path)
    (pick, none) = record.picks
    final = record.final_of(pick)
    assert final is not None and record.final_of(none) is None
    # The teacher's calibrated p50 over the student's (the inverse of their paired ratio).
    assert record.speedup(final) == pytest.approx(12.6 / 4.2)
    assert record.speedup_ci(final) == pytest.approx((12.6 / 4.2, 12.6 / 4.1))
    # Against the figure the pick was committed on: its confirmation.
    assert record.final_vs_search(pick) == pytest.approx(4.2 / 4.05 - 1)
    assert record.percent_of_teacher(final) == pytest.approx(100 * 0.8 / 0.9)
    assert final.within_budget is True
    assert record.reference_final is not None and record.reference_final.within_budget is None
    raw = record.to_json(tmp_path)
    assert raw["picks"][0]["final"]["speedup"] == pytest.approx(record.speedup(final))


def test_a_moved_run_folder_still_resolves_its_files(tmp_path: Path) -> None:
    first = tmp_path / "a" / "run"
    record = _record(first)
    for f in record.finals:
        f.dir.mkdir(parents=True)
        f.onnx.write_bytes(b"onnx")
    record.write(first / "recommendations.json")
    moved = tmp_path / "elsewhere" / "archived"
    moved.parent.mkdir()
    shutil.move(str(first), moved)
    back = RunRecord.read(moved / "recommendations.json")
    for f in back.finals:
        assert f.onnx.read_bytes() == b"onnx"
        assert moved.resolve() in f.dir.parents


def test_another_schema_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    path = _record(tmp_path).write(tmp_path / "recommendations.json")
    raw = json.loads(path.read_text())
    raw["schema_version"] = SCHEMA_VERSION + 1
    path.write_text(json.dumps(raw))
    with pytest.raises(ParetokdError, match="schema_version"):
        RunRecord.read(path)
    with pytest.raises(ParetokdError, match="is missing"):
        RunRecord.read(tmp_path / "nowhere" / "recommendations.json")


def test_a_trial_record_round_trips_through_optuna(tmp_path: Path) -> None:
    study = optuna.create_study(directions=["minimize", "minimize"])
    written: list[TrialRecord] = []

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        arch = Arch(trial.suggest_int("num_layers", 1, 3), 64, 4, 128)
        over = 1.0 if arch.num_layers == 3 else -1.0
        record = TrialRecord(
            trial.number, arch, 10, 0.5, _stats(2.0), over, proxy_loss=0.5, timings={"build_s": 0.1}
        )
        record.write(trial)
        written.append(record)
        return record.value, record.latency_ms

    study.optimize(objective, n_trials=4)
    for t, record in zip(study.trials, written, strict=True):
        back = TrialRecord.read(t)
        assert back == record
        assert back.feasible == (t.constraints[CONSTRAINT] <= 0)


def test_objective_knows_its_direction_and_bounds() -> None:
    assert (LOSS.maximise, LOSS.worst, LOSS.ideal, LOSS.label) == (False, 1.0, 0.0, "proxy loss")
    acc = Objective("accuracy")
    assert (acc.maximise, acc.worst, acc.ideal, acc.direction) == (True, 0.0, 1.0, "maximize")
    assert acc.better(0.9, 0.8) and LOSS.better(0.1, 0.2)
    assert Objective("spearman").worst == -1.0
    with pytest.raises(ParetokdError, match="unknown objective"):
        Objective("bleu")


def test_a_finished_run_folder_reads_back_after_moving(
    tmp_path_factory: pytest.TempPathFactory, tiny_teacher_dir: Path, corpus_file: Path
) -> None:
    from finished_run import finished_run

    from paretokd.report import load_run

    run_dir = finished_run(tmp_path_factory, tiny_teacher_dir, corpus_file)
    moved = tmp_path_factory.mktemp("archive") / "moved-run"
    shutil.copytree(run_dir, moved)
    record = RunRecord.read(moved / "recommendations.json")
    original = RunRecord.read(run_dir / "recommendations.json")
    # The same record, but for where its students are.
    assert [f.folder for f in record.finals] == [f.folder for f in original.finals]
    assert record.picks == original.picks and record.teacher == original.teacher
    assert record.finals
    for final in record.finals:
        assert moved.resolve() in final.dir.parents
        assert final.onnx.is_file()
    # The report reads the moved folder (its study database moved with it).
    run = load_run(moved)
    assert run.record == record and run.trials


@pytest.mark.parametrize("arch", [Arch(3, 384, 12, 1536), Arch(1, 64, 2, 256, "int8")])
def test_an_architecture_reads_back_from_its_id(arch: Arch) -> None:
    assert Arch.from_id(arch.id) == arch


def test_a_malformed_architecture_id_is_refused() -> None:
    with pytest.raises(ValueError, match="not an architecture id"):
        Arch.from_id("L3-H384")
