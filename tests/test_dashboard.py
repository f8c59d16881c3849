"""The study in optuna-dashboard: artifacts, note and figures (publish), and the server command."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import optuna
import optuna_dashboard
import pytest
from click.testing import CliRunner
from factories import FINGERPRINT
from optuna.artifacts import get_all_artifact_meta

from paretokd import report
from paretokd.cli import main
from paretokd.records import (
    LOSS,
    Arch,
    Evaluation,
    FinalStudent,
    LatencyStats,
    RunRecord,
    SearchSpend,
    TeacherRecord,
)
from paretokd.report import dashboard
from paretokd.search.artifacts import artifact_store, attach_to_trial
from paretokd.search.recommend import pick, trials

BUDGETS = (4.0, 6.0)


def _latency(ms: float) -> LatencyStats:
    return LatencyStats(p50_ms=ms, p90_ms=ms * 1.1, mean_ms=ms, runs=10)


def _arch(layers: int, hidden: int) -> dict[str, int]:
    return {"num_layers": layers, "hidden_size": hidden, "num_heads": 2, "intermediate_size": 64}


@pytest.fixture()
def run_dir(tmp_path: Path) -> Path:
    """A finished run folder: a stored study, two final students and a report."""
    out = tmp_path / "run"
    out.mkdir()
    study = optuna.create_study(
        study_name="demo",
        storage=f"sqlite:///{out / 'study.db'}",
        directions=["minimize", "minimize"],
    )
    for i, (loss, ms) in enumerate([(0.6, 2.0), (0.4, 3.5), (0.3, 5.0), (0.5, 5.5), (1.0, 7.0)]):
        study.add_trial(
            optuna.trial.create_trial(
                values=[loss, ms],
                user_attrs={
                    "arch": _arch(i + 1, 32),
                    "params": 100_000 * (i + 1),
                    "latency": _latency(ms).to_json(),
                },
                constraints={"latency_over_budget_ms": ms - max(BUDGETS)},
            )
        )
    for budget in ("4ms", "6ms"):
        student = out / "students" / budget
        student.mkdir(parents=True)
        (student / "model.onnx").write_bytes(b"onnx " + budget.encode())
        (student / "latency.json").write_text(json.dumps({"p50_ms": 1.0, "budget": budget}))
    (out / "report.html").write_text("<html>report</html>")
    return out


def _study(out: Path) -> optuna.Study:
    return optuna.load_study(study_name="demo", storage=f"sqlite:///{out / 'study.db'}")


def _final(out: Path, budget: float, loss: float, ms: float, score: float | None) -> FinalStudent:
    folder = f"{budget:g}ms"
    return FinalStudent(
        folder=folder,
        arch=Arch(2, 32, 2, 64),
        budget_ms=budget,
        trial=1,
        loss=loss,
        latency=_latency(ms),
        parity_max_abs_diff=0.0,
        steps=10,
        dir=out / "students" / folder,
        score=score,
    )


def _publish(out: Path, evaluation: bool = False) -> dashboard.Published:
    """Publish the run of ``run_dir``; with ``evaluation``, the 4ms student scored 0.81."""
    study = _study(out)
    done = trials(study)
    run = RunRecord(
        study="demo",
        storage=f"sqlite:///{out / 'study.db'}",
        objective=LOSS,
        fingerprint=FINGERPRINT,
        teacher=TeacherRecord("tiny", "hub", 5_000_000, _latency(9.0)),
        reference=None,
        picks=tuple(pick(done, BUDGETS, LOSS)),
        finals=(
            _final(out, 4.0, 0.35, 3.0, 0.81 if evaluation else None),
            _final(out, 6.0, 0.25, 4.5, None),
        ),
        evaluation=Evaluation("dev.tsv", "accuracy", 100, teacher=0.9) if evaluation else None,
        search=SearchSpend(len(done), 10.0, 1, 1.0),
    )
    return dashboard.publish(study, out, run, report.figures(done, run), out / "report.html")


def test_publish_uploads_files_note_and_figures(run_dir: Path) -> None:
    published = _publish(run_dir)

    study = _study(run_dir)
    metas = {m.filename: m for m in get_all_artifact_meta(study)}
    assert sorted(metas) == [
        "4ms-latency.json",
        "4ms-model.onnx",
        "6ms-latency.json",
        "6ms-model.onnx",
        "report.html",
    ]
    assert metas["report.html"].mimetype == "text/html"
    assert metas["4ms-latency.json"].mimetype == "application/json"
    # The stored bytes are the files' bytes.
    store = artifact_store(run_dir)
    with store.open_reader(metas["6ms-model.onnx"].artifact_id) as fh:
        assert fh.read() == b"onnx 6ms"
    recorded = study.user_attrs[dashboard.ARTIFACTS_ATTR]
    assert recorded["students/4ms/model.onnx"]["artifact_id"] == metas["4ms-model.onnx"].artifact_id
    assert published.artifacts == {k: v["artifact_id"] for k, v in recorded.items()}
    assert sorted(published.uploaded) == sorted(recorded)
    assert study.user_attrs[dashboard.ARTIFACT_DIR_ATTR] == str((run_dir / "artifacts").resolve())

    note = optuna_dashboard.get_note(study)
    assert published.note and note.startswith("## Recommendations of demo")
    assert "| 4ms | 1 | L2-H32-A2-F64 |" in note  # trial 1: loss 0.4 at 3.5 ms
    assert "| proxy loss |" in note and "Evaluation" not in note
    assert "`4ms-model.onnx`, `4ms-latency.json`" in note
    assert "- **trials**: 5" in note
    assert published.figures == [
        "pareto-front",
        "hypervolume",
        "latency-vs-params",
        "architectures",
    ]
    # optuna-dashboard keeps each figure's JSON in study system attributes, by graph id.
    system = study._storage.get_study_system_attrs(study._study_id)
    for graph_id in published.figures:
        assert any(k.startswith(f"dashboard:plot_data:{graph_id}:") for k in system)


def test_publish_adds_the_evaluation_scores_to_the_note(run_dir: Path) -> None:
    assert _publish(run_dir, evaluation=True).note
    note = optuna_dashboard.get_note(_study(run_dir))
    assert "### Evaluation: accuracy on dev.tsv (100 examples)" in note
    assert "| pick for 4ms | 0.8100 | 90.0% | 3.00 | 3.0× |" in note


def test_publish_again_uploads_nothing_new(run_dir: Path) -> None:
    first = _publish(run_dir)
    n_files = len(list((run_dir / "artifacts").iterdir()))

    again = _publish(run_dir)
    assert again.uploaded == [] and not again.note
    assert again.artifacts == first.artifacts
    assert len(get_all_artifact_meta(_study(run_dir))) == 5
    assert len(list((run_dir / "artifacts").iterdir())) == n_files

    # A new student for a budget replaces the stored bytes under the same artifact id.
    (run_dir / "students" / "4ms" / "model.onnx").write_bytes(b"retrained")
    third = _publish(run_dir)
    assert third.uploaded == ["students/4ms/model.onnx"]
    assert third.artifacts == first.artifacts
    store = artifact_store(run_dir)
    with store.open_reader(first.artifacts["students/4ms/model.onnx"]) as fh:
        assert fh.read() == b"retrained"
    assert len(get_all_artifact_meta(_study(run_dir))) == 5


def test_attach_to_trial_uploads_to_a_running_trial(tmp_path: Path) -> None:
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'study.db'}")

    def objective(trial: optuna.Trial) -> float:
        attach_to_trial(trial, "latency.json", {"p50_ms": 1.5}, tmp_path)
        return 1.0

    study.optimize(objective, n_trials=1)
    (meta,) = get_all_artifact_meta(study.trials[0], storage=study._storage)
    assert meta.filename == "latency.json"
    with artifact_store(tmp_path).open_reader(meta.artifact_id) as fh:
        assert json.loads(fh.read()) == {"p50_ms": 1.5}


# --- paretokd dashboard ---------------------------------------------------------------------


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["dashboard", *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def _error_line(output: str) -> str:
    assert "Traceback" not in output
    (line,) = [line for line in output.splitlines() if line.startswith("error:")]
    return line


def test_dashboard_serves_the_run_with_its_artifacts(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _publish(run_dir)
    calls: list[dict[str, Any]] = []

    def fake_run_server(storage: Any, **kwargs: Any) -> None:
        calls.append({"storage": storage, **kwargs})

    monkeypatch.setattr(optuna_dashboard, "run_server", fake_run_server)
    code, output = _cli("--out", str(run_dir))
    assert code == 0, output
    (call,) = calls
    assert (call["host"], call["port"]) == ("127.0.0.1", 8080)
    assert Path(call["artifact_store"]._base_path) == run_dir / "artifacts"
    assert "http://127.0.0.1:8080/dashboard/" in output and "warning" not in output

    # With only the storage URL, the artifact folder comes from the study.
    url = f"sqlite:///{run_dir / 'study.db'}"
    code, output = _cli("--storage", url, "--study-name", "demo", "--port", "9000")
    assert code == 0, output
    assert Path(calls[1]["artifact_store"]._base_path) == (run_dir / "artifacts").resolve()
    assert calls[1]["port"] == 9000

    code, output = _cli("--out", str(run_dir), "--host", "0.0.0.0")
    assert code == 0 and "warning: serving on 0.0.0.0" in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "pass --out DIR"),
        (["--out", "/nonexistent/run"], "no study database"),
        (["--storage", "sqlite:////nonexistent/study.db"], "no study database"),
        (["--storage", "nonsense://x"], "invalid storage URL"),
    ],
)
def test_dashboard_user_errors_are_one_line(args: list[str], message: str) -> None:
    code, output = _cli(*args)
    assert code == 2
    assert message in _error_line(output)


def test_dashboard_unknown_study_and_busy_port(run_dir: Path) -> None:
    code, output = _cli("--out", str(run_dir), "--study-name", "other")
    assert code == 2 and "no study named 'other'" in _error_line(output)

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, output = _cli("--out", str(run_dir), "--port", str(port))
    assert code == 2
    assert f"cannot serve on 127.0.0.1:{port}" in _error_line(output)
