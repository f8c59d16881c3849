"""The whole pipeline, end to end, on a tiny teacher: through the CLI, in-process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import optuna
import pytest
import yaml
from click.testing import CliRunner
from optuna.trial import TrialState

from paretokd.cli import main
from paretokd.records import Arch, RunRecord, TrialRecord


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


@pytest.fixture()
def base_args(tiny_spec_file: Path, tiny_teacher_dir: Path, corpus_file: Path) -> list[str]:
    return [
        "run",
        "--study",
        str(tiny_spec_file),
        "--teacher",
        str(tiny_teacher_dir),
        "--data",
        str(corpus_file),
        "--quiet",
    ]


def _error_line(output: str) -> str:
    """The one ``error:`` line a user error prints (log lines may precede it)."""
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if line.startswith(("error:", "Error:"))]
    assert len(errors) == 1, output
    return errors[0]


def _trials(out: Path) -> list[tuple[int, dict, tuple[float, ...]]]:
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'study.db'}")
    return [
        (t.number, t.params, tuple(t.values))
        for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    ]


def test_run_writes_picks_students_and_report(base_args: list[str], tmp_path: Path) -> None:
    out = tmp_path / "run"
    code, output = _run(*base_args, "--out", str(out))
    assert code == 0, output

    rec = RunRecord.read(out / "recommendations.json")
    assert rec.study == "tiny"
    assert rec.fingerprint.seq_len == 32 and rec.fingerprint.device == "cpu"
    assert rec.teacher.params > 0 and rec.teacher.latency.p50_ms > 0
    assert [p.budget_ms for p in rec.picks] == [50.0, 100.0]
    # The hand-crafted reference: the 4-layer tiny teacher with every other layer kept.
    ref = rec.reference
    assert ref is not None and ref.arch == Arch(2, 64, 4, 128)
    assert 0 <= ref.proxy_loss < 1.0 and ref.latency.p50_ms > 0
    # It is in the space, so the search starts from it: trial 0 is the reference.
    first = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'study.db'}").trials[0]
    assert first.params == ref.arch.to_dict()
    # ...and reuses the reference's figures instead of measuring and distilling it again.
    first_record = TrialRecord.read(first)
    assert first_record.cached_from == "reference"
    assert "latency_s" not in first_record.timings
    assert first.values == [ref.proxy_loss, ref.latency.p50_ms]
    # Where the trial time went: the share spent on trials no budget could use.
    spent = rec.search
    assert spent is not None and spent.trials == 5 and spent.seconds > 0
    assert 0 <= spent.never_pickable_seconds <= spent.seconds
    assert "time on never-pickable trials" in (out / "report.html").read_text()
    # Every figure is a ratio to an anchor timed side by side, times the anchor's figure:
    # the teacher's calibration, or a rung's ratio to the teacher times it. The speed-up
    # is the teacher's figure over the student's, with an interval.
    raw = json.loads((out / "recommendations.json").read_text())
    attrs = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'study.db'}").user_attrs
    scale = {"teacher": rec.teacher.latency_ms}
    scale |= {name: stats["p50_ms"] for name, stats in attrs["anchor_ladder"].items()}
    for pick, raw_pick in zip(rec.picks, raw["picks"], strict=True):
        final = rec.final_of(pick)
        assert final is not None and pick.trial is not None
        assert final.latency.ratio is not None and pick.trial.latency.ratio is not None
        # Shipped, it was paired with the anchor its search trial was paired with.
        assert final.latency.anchor == pick.trial.latency.anchor in scale
        anchor_ms = scale[final.latency.anchor]
        assert final.latency.p50_ms == pytest.approx(final.latency.ratio * anchor_ms)
        assert rec.speedup(final) == pytest.approx(rec.teacher.latency_ms / final.latency.p50_ms)
        lo, hi = raw_pick["final"]["speedup_ci"]
        assert lo <= rec.speedup(final) <= hi
        assert raw_pick["final"]["speedup"] == pytest.approx(rec.speedup(final))
        # Every pick was timed again before it was committed, and fits with margin.
        assert pick.trial.confirmed is not None
        assert pick.trial.timing.upper_ms <= pick.budget_ms
        assert final.within_budget
        assert rec.final_vs_search(pick) == pytest.approx(
            final.latency.p50_ms / pick.trial.timing.p50_ms - 1
        )
        # Paths in the file are relative to its folder.
        assert raw_pick["final"]["dir"] == f"students/{pick.budget}"
    for pick in rec.picks:
        assert pick.trial is not None and pick.reason is None
        assert pick.trial.latency_ms <= pick.budget_ms
        final = rec.final_of(pick)
        assert final is not None
        assert final.latency.p50_ms <= pick.budget_ms
        assert 0 <= final.loss < 1.0
        assert final.parity_max_abs_diff < 1e-3
        for name in ("config.json", "model.safetensors", "tokenizer.json", "latency.json"):
            assert (final.dir / name).is_file(), name
        # The shipped ONNX file runs in ONNX Runtime with the tokenizer's inputs.
        sess = ort.InferenceSession(str(final.onnx), providers=["CPUExecutionProvider"])
        feed = {i.name: np.ones((2, 7), dtype=np.int64) for i in sess.get_inputs()}
        (hidden,) = sess.run(None, feed)
        assert hidden.shape == (2, 7, pick.trial.arch.hidden_size)
    assert not list(out.glob("students/*.partial"))
    assert "plotly" in (out / "report.html").read_text()
    assert len(_trials(out)) == 5
    # Every measured trial carries its latency.json as an Optuna artifact.
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'study.db'}")
    for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        if TrialRecord.read(t).cached_from is None:
            metas = optuna.artifacts.get_all_artifact_meta(t, storage=study._storage)
            assert [m.filename for m in metas] == ["latency.json"]
    # The console shows the table and the teacher's latency.
    assert "teacher" in output and "50ms" in output and "speed-up" in output


def test_rerun_resumes_without_repeating(base_args: list[str], tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert _run(*base_args, "--out", str(out), "--no-final")[0] == 0
    first = _trials(out)

    code, output = _run(*base_args, "--out", str(out), "--no-final")
    assert code == 0, output
    assert _trials(out) == first
    assert "(0 new)" in output
    # The teacher's outputs on the proxy splits were kept on disk and read back.
    assert len(list((out / "teacher").glob("*.pt"))) == 2
    assert "read from disk" in output

    code, output = _run(*base_args, "--out", str(out), "--no-final", "--trials", "7")
    assert code == 0, output
    after = _trials(out)
    assert len(after) == 7 and after[:5] == first
    assert "(2 new)" in output


def test_finished_students_are_reused(base_args: list[str], tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert _run(*base_args, "--out", str(out))[0] == 0
    marker = out / "students" / "50ms" / "final.json"
    before = marker.stat().st_mtime_ns
    assert _run(*base_args, "--out", str(out))[0] == 0
    assert marker.stat().st_mtime_ns == before


def test_recommend_repicks_from_a_stored_study(base_args: list[str], tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert _run(*base_args, "--out", str(out), "--no-final")[0] == 0
    code, output = _run("recommend", "--out", str(out), "--budgets", "0.001ms,80ms", "--json")
    assert code == 0, output
    picks = json.loads(output)
    assert picks[0]["trial"] is None and "fastest measured" in picks[0]["reason"]
    assert picks[1]["trial"] is not None and picks[1]["trial"]["latency"]["p50_ms"] <= 80


def test_over_budget_architectures_are_not_trained(base_args: list[str], tmp_path: Path) -> None:
    out = tmp_path / "run"
    code, output = _run(*base_args, "--out", str(out), "--budgets", "0.001ms")
    assert code == 0, output
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'study.db'}")
    trials = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(trials) == 5
    for t in trials:
        record = TrialRecord.read(t)
        assert not record.feasible
        assert "distill_s" not in record.timings
        assert t.values[0] == 1.0
        assert t.constraints["latency_over_budget_ms"] > 0
    assert study.best_trials == []
    (pick,) = RunRecord.read(out / "recommendations.json").picks
    assert pick.trial is None
    assert pick.reason is not None and "fastest measured" in pick.reason
    assert not (out / "students").exists()

    # Continued with a larger budget, the architectures timed over the old one
    # train first, on their stored latency, within the study's new total.
    code, output = _run(
        *base_args, "--out", str(out), "--budgets", "1000ms", "--trials", "12", "--no-final"
    )
    assert code == 0, output
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'study.db'}")
    timed = {TrialRecord.read(t).arch: TrialRecord.read(t).latency for t in trials}
    old = set(timed)
    after = [TrialRecord.read(t) for t in study.get_trials(states=(TrialState.COMPLETE,))]
    assert len(after) == 12
    # Trained once per shape: the other precision follows as its sibling.
    retried = [r for r in after[5:] if r.arch in old]
    assert {r.arch for r in retried} == old
    assert len(retried) == len(old)
    assert sum("distill_s" in r.timings for r in retried) == len({a.sizes for a in old})
    for r in retried:
        assert r.feasible and r.proxy_loss is not None
        assert r.latency == timed[r.arch]  # timed once, in the first run
    assert study.best_trials


def test_a_changed_spec_is_refused_on_an_existing_study(
    base_args: list[str], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    assert _run(*base_args, "--out", str(out), "--no-final")[0] == 0
    first = _trials(out)
    code, output = _run(*base_args, "--out", str(out), "--no-final", "--seed", "7")
    assert code == 2
    line = _error_line(output)
    assert "seed" in line and "--study-name" in line
    assert _trials(out) == first


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--budgets", "10"], "unit"),
        (["--budgets", "-5ms"], "invalid budget"),
        (["--trials", "0"], "trials"),
        (["--teacher", "/nonexistent/teacher"], "does not exist"),
        (["--data", "/nonexistent/corpus.txt"], "nonexistent"),
    ],
)
def test_user_errors_are_one_line_and_write_nothing(
    base_args: list[str], tmp_path: Path, flags: list[str], message: str
) -> None:
    out = tmp_path / "run"
    code, output = _run(*base_args, "--out", str(out), *flags)
    assert code == 2
    assert message in _error_line(output)
    assert not out.exists()


def test_help_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from paretokd.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("NO-TORCH")


def test_finals_too_large_to_keep_train_side_by_side(
    base_args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Teacher outputs over the cache limit: one claim, every shape trained from one pass."""
    from paretokd.distill import final
    from paretokd.distill.targets import TeacherTargets

    monkeypatch.setattr(final, "CACHE_LIMIT_BYTES", 0)
    passes = 0
    compute = TeacherTargets.__getitem__

    def counted(self: TeacherTargets, index: int) -> object:
        nonlocal passes
        passes += not self.keep  # the full split's outputs, recomputed on every visit
        return compute(self, index)

    monkeypatch.setattr(TeacherTargets, "__getitem__", counted)
    # fp32 only, so that no two trials share a shape (an int8 sibling would).
    raw = yaml.safe_load(Path(base_args[2]).read_text())
    raw["space"]["precision"] = ["fp32"]
    spec_file = tmp_path / "fp32.yaml"
    spec_file.write_text(yaml.safe_dump(raw))
    args = [*base_args[:2], str(spec_file), *base_args[3:]]
    out = tmp_path / "run"
    code, output = _run(*args, "--out", str(out), "--no-final")
    assert code == 0, output
    # Two budgets that pick two shapes: 100ms takes the best trial, and the low budget a
    # smaller one. Picks are confirmed and shipped timed again, so the low budget sits midway
    # (in ratio) between a trial and the fastest of those better than it, where that gap is
    # widest: room on both sides on a busy machine.
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'study.db'}")
    trained = [TrialRecord.read(t) for t in study.get_trials(states=(TrialState.COMPLETE,))]
    feasible = [t for t in trained if t.feasible]

    def above(trial: TrialRecord) -> float:
        """The fastest figure among the trials better than ``trial`` (0 for the best)."""
        better = [t.timing.upper_ms for t in feasible if t.value < trial.value]
        return min(better, default=0.0)

    low_pick = max(feasible, key=lambda t: above(t) / t.timing.upper_ms)
    assert above(low_pick) > 1.2 * low_pick.timing.upper_ms, "no gap wide enough for a budget"
    low = f"{(above(low_pick) * low_pick.timing.upper_ms) ** 0.5:.4f}ms"
    code, output = _run(*args, "--budgets", f"{low},100ms", "--out", str(out))
    assert code == 0, output
    rec = RunRecord.read(out / "recommendations.json")
    shipped = [rec.final_of(p) for p in rec.picks]
    for student in shipped:
        assert student is not None and student.within_budget
        assert (student.dir / "model.safetensors").is_file()
    assert len({student.arch.sizes.id for student in shipped}) == 2  # two shapes to train
    assert passes == shipped[0].steps  # one teacher pass for both, not one per shape
    study = optuna.load_study(study_name="tiny.finals.1", storage=f"sqlite:///{out / 'study.db'}")
    (claim,) = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert claim.user_attrs["unit"] == "+".join(p.budget for p in rec.picks)  # one claim
    assert "side by side" in output
