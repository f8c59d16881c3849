"""The whole pipeline on tiny teachers of every family, task-agnostic and task-specific.

Labels here are made up from real sentences (a rule on the words), so the
numbers mean nothing; what is tested is that every stage runs on every family
in both modes and reports scores where they belong.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from conftest import FAMILIES, TINY_SPEC

from paretokd import config, pipeline
from paretokd.cli import main
from paretokd.errors import ParetokdError
from paretokd.records import Objective, RunRecord


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    # Two OpenMP threads on a busy 2-core machine spin-wait on each other.
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _label(sentence: str) -> str:
    return "positive" if len(sentence.split()) % 2 else "negative"


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory, sentences: list[str]) -> dict[str, Path]:
    """Training, evaluation and similarity files built from real sentences."""
    out = tmp_path_factory.mktemp("labelled")
    train, dev = sentences[:300], sentences[300:360]
    files = {}
    for name, rows in (("train", train), ("dev", dev)):
        path = out / f"{name}.tsv"
        lines = [f"{s}\t{_label(s)}\t{len(s.split()) / 10:.1f}" for s in rows]
        path.write_text("sentence\tlabel\tscore\n" + "\n".join(lines) + "\n")
        files[name] = path
    pairs = out / "pairs.tsv"
    lines = []
    for a, b in zip(dev, dev[1:] + dev[:1], strict=True):
        overlap = len(set(a.lower().split()) & set(b.lower().split()))
        lines.append(f"{a}\t{b}\t{overlap}")
    pairs.write_text("one\ttwo\tscore\n" + "\n".join(lines) + "\n")
    files["pairs"] = pairs
    return files


def _spec(**sections: dict) -> config.StudySpec:
    raw = yaml.safe_load(TINY_SPEC)
    raw["trials"] = 3
    raw["budgets"] = ["100ms"]
    raw["latency"]["max_seconds"] = 0.3  # a busy machine would otherwise time 3 s per student
    for key, value in sections.items():
        raw.setdefault(key, {}).update(value)
    return config.from_dict(raw)


@pytest.mark.parametrize("family", FAMILIES)
def test_task_agnostic_with_similarity_evaluation(
    family: str,
    tiny_family_teacher: Callable[[str, str], Path],
    labelled: dict[str, Path],
    tmp_path: Path,
) -> None:
    spec = _spec(
        teacher={"name": str(tiny_family_teacher(family, "base"))},
        data={"source": str(labelled["train"]), "text_columns": ["sentence"]},
        evaluation={
            "source": str(labelled["pairs"]),
            "text_columns": ["one", "two"],
            "label_column": "score",
        },
    )
    result = pipeline.run(spec, out=tmp_path / "run", show_progress=False)
    run = result.record
    evaluation = run.evaluation
    assert evaluation is not None and evaluation.metric == "spearman"
    assert evaluation.examples == 60
    assert -1 <= evaluation.teacher <= 1
    ref_final = run.reference_final
    assert ref_final is not None and ref_final.score is not None
    (pick,) = run.picks
    final = run.final_of(pick)
    assert final is not None and final.score is not None and -1 <= final.score <= 1
    assert run.speedup(final) > 0
    assert RunRecord.read(tmp_path / "run" / "recommendations.json") == run
    # The reference got the same final distillation as the pick (a copy when it is
    # the pick's architecture).
    students = tmp_path / "run" / "students"
    assert (students / "100ms" / "model.onnx").is_file()
    assert (students / "reference" / "model.onnx").is_file()
    assert run.reference is not None and ref_final.arch == run.reference.arch


@pytest.mark.parametrize("family", FAMILIES)
def test_classification_distils_logits_and_scores_accuracy(
    family: str,
    tiny_family_teacher: Callable[[str, str], Path],
    labelled: dict[str, Path],
    tmp_path: Path,
) -> None:
    columns = {"text_columns": ["sentence"], "label_column": "label"}
    spec = _spec(
        teacher={"name": str(tiny_family_teacher(family, "classification"))},
        task={"kind": "classification", "hidden_weight": 0.5},
        data={"source": str(labelled["train"]), **columns},
        evaluation={"source": str(labelled["dev"]), **columns},
    )
    result = pipeline.run(spec, out=tmp_path / "run", show_progress=False)
    run = result.record
    assert run.evaluation is not None and run.evaluation.metric == "accuracy"
    assert 0.0 <= run.evaluation.teacher <= 1.0
    for student in run.finals:
        assert student.score is not None and 0.0 <= student.score <= 1.0
    # The shipped student keeps the head: its ONNX graph outputs two logits per text.
    import onnxruntime as ort

    (final,) = [f for f in run.finals if f.budget_ms is not None]
    session = ort.InferenceSession(str(final.onnx), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["logits"]
    assert session.get_outputs()[0].shape[-1] == 2


def test_metric_objective_maximises_and_pairs_of_texts(
    tiny_family_teacher: Callable[[str, str], Path], labelled: dict[str, Path], tmp_path: Path
) -> None:
    # Regression on sentence pairs, ranked by the proxy Spearman (maximised).
    spec = _spec(
        teacher={"name": str(tiny_family_teacher("bert", "regression"))},
        task={"kind": "regression", "objective": "metric"},
        data={
            "source": str(labelled["pairs"]),
            "text_columns": ["one", "two"],
            "label_column": "score",
            "proxy_train": 24,
            "proxy_eval": 16,
        },
    )
    result = pipeline.run(spec, out=tmp_path / "run", show_progress=False, do_final=False)
    assert result.record.objective == Objective("spearman")
    import optuna

    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'run/study.db'}")
    assert study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    assert study.metric_names == ["spearman", "latency_ms"]
    trained = [r for r in result.trials if r.feasible]
    assert trained and all(r.value == r.proxy_metric for r in trained)
    # The pick is the best-scoring trial within the budget, not the lowest.
    (pick,) = result.record.picks
    best = max(r.value for r in trained if r.latency_ms <= 100.0)
    assert pick.trial is not None and pick.trial.value == best
    # `paretokd recommend` names the objective.
    out = CliRunner().invoke(main, ["recommend", "--out", str(tmp_path / "run"), "--budgets", "1s"])
    assert out.exit_code == 0, out.output
    assert "proxy spearman" in out.output


def test_task_errors_are_clear(
    tiny_family_teacher: Callable[[str, str], Path],
    tiny_teacher_dir: Path,
    labelled: dict[str, Path],
    tmp_path: Path,
) -> None:
    columns = {"text_columns": ["sentence"], "label_column": "label"}
    head = str(tiny_family_teacher("bert", "classification"))
    # A bare encoder has no head to distil.
    spec = _spec(
        teacher={"name": str(tiny_teacher_dir)},
        task={"kind": "classification"},
        data={"source": str(labelled["train"]), **columns},
    )
    with pytest.raises(ParetokdError, match="no trained sequence-classification head"):
        pipeline.run(spec, out=tmp_path / "a", show_progress=False)
    # Labels the head does not have.
    spec = _spec(
        teacher={"name": head},
        task={"kind": "classification"},
        data={"source": str(labelled["train"]), **columns},
        evaluation={
            "source": str(labelled["dev"]),
            "text_columns": ["sentence"],
            "label_column": "score",
        },
    )
    with pytest.raises(ParetokdError, match="is not one of the teacher head's 2 classes"):
        pipeline.run(spec, out=tmp_path / "b", show_progress=False)
    # A regression task on a two-class head.
    spec = _spec(teacher={"name": head}, task={"kind": "regression"})
    with pytest.raises(ParetokdError, match="regression head has one"):
        pipeline.run(spec, out=tmp_path / "c", show_progress=False)
    # A missing text column.
    spec = _spec(
        teacher={"name": head},
        task={"kind": "classification"},
        data={"source": str(labelled["train"]), "text_columns": ["body"]},
    )
    with pytest.raises(ParetokdError, match="text column 'body' is not a column"):
        pipeline.run(spec, out=tmp_path / "d", show_progress=False)
