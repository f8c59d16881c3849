"""Every error a user can cause: one line, exit status 2, nothing new written, study intact."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from paretokd import logs
from paretokd.cli import main


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def _snapshot(folder: Path) -> dict[str, int]:
    """Every file under ``folder`` with its modification time."""
    return {
        str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()
    }


@pytest.fixture(scope="module")
def existing(
    tmp_path_factory: pytest.TempPathFactory, tiny_teacher_dir: Path, corpus_file: Path
) -> tuple[list[str], Path]:
    """A finished small study, and the arguments that made it."""
    from conftest import TINY_SPEC

    root = tmp_path_factory.mktemp("errors")
    spec = root / "tiny.yaml"
    spec.write_text(TINY_SPEC)
    args = ["run", "--study", str(spec), "--teacher", str(tiny_teacher_dir)]
    args += ["--data", str(corpus_file), "--quiet", "--no-final", "--out", str(root / "run")]
    code, output = _invoke(*args)
    assert code == 0, output
    return args, root / "run"


def _files(root: Path) -> dict[str, Path]:
    root.mkdir(parents=True, exist_ok=True)
    paths = {
        "malformed.yaml": "name: [unclosed\n",
        "unknown.yaml": "name: x\nbudget: [10ms]\n",
        "empty.txt": "\n  \n",
        "small.txt": "One short sentence here.\nAnother short sentence there.\n",
        "afile": "not a folder\n",
    }
    for name, text in paths.items():
        (root / name).write_text(text)
    (root / "empty-model").mkdir(exist_ok=True)
    return {name: root / name for name in [*paths, "empty-model"]}


@pytest.fixture(scope="module")
def decoder_dir(tmp_path_factory: pytest.TempPathFactory, tiny_teacher_dir: Path) -> Path:
    from transformers import GPT2Config, GPT2Model

    out = tmp_path_factory.mktemp("gpt2")
    GPT2Model(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=100)).save_pretrained(out)
    return out


CASES = {
    # flag(s) to append: a fragment the error line must contain
    "budget without unit": (["--budgets", "10"], "unit"),
    "budget unit only": (["--budgets", "ms"], "invalid budget"),
    "negative budget": (["--budgets", "-5ms"], "invalid budget"),
    "zero budget": (["--budgets", "0ms"], "above zero"),
    "budget not a number": (["--budgets", "abc"], "invalid budget"),
    "empty budget list": (["--budgets", ","], "no latency budget"),
    "zero trials": (["--trials", "0"], "trials must be at least 1"),
    "negative trials": (["--trials", "-3"], "trials must be at least 1"),
    "missing study file": (["--study", "{root}/nope.yaml"], "does not exist"),
    "malformed study file": (["--study", "{malformed.yaml}"], "not valid YAML"),
    "unknown key in study file": (["--study", "{unknown.yaml}"], "unknown key"),
    "missing teacher path": (["--teacher", "/nonexistent/teacher"], "does not exist"),
    "teacher folder without a model": (["--teacher", "{empty-model}"], "holds no model"),
    "decoder-only teacher": (["--teacher", "{decoder}"], "decoder"),
    "empty corpus": (["--data", "{empty.txt}"], "no text"),
    "corpus smaller than the proxy split": (["--data", "{small.txt}"], "proxy"),
    "malformed storage URL": (["--storage", "not a url"], "storage"),
    "unreachable storage": (
        ["--storage", "postgresql://user:s3cret@127.0.0.1:1/db"],
        "cannot open storage",
    ),
    "output folder that cannot be written": (["--out", "{afile}/run"], "cannot write"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_user_error(
    case: str, existing: tuple[list[str], Path], decoder_dir: Path, tmp_path: Path
) -> None:
    args, run_dir = existing
    flags, fragment = CASES[case]
    files = _files(tmp_path)
    names = {**{k: str(v) for k, v in files.items()}, "decoder": str(decoder_dir)}
    names["root"] = str(tmp_path)
    for key, value in names.items():
        flags = [f.replace("{" + key + "}", value) for f in flags]
    before = _snapshot(run_dir)

    code, output = _invoke(*args, *flags)

    assert code == 2, output
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    assert fragment in errors[0], errors[0]
    assert "s3cret" not in output  # no secret from a storage URL is printed
    assert _snapshot(run_dir) == before  # the existing study and its files are untouched
    assert not (tmp_path / "afile").is_dir()


def test_a_fresh_output_folder_is_not_created_on_error(
    existing: tuple[list[str], Path], tmp_path: Path
) -> None:
    args, _ = existing
    fresh = tmp_path / "fresh"
    code, _ = _invoke(*args[:-1], str(fresh), "--data", "/nonexistent/corpus.txt")
    assert code == 2
    assert not fresh.exists()


def test_a_budget_nothing_fits_is_a_reason_not_an_error(
    existing: tuple[list[str], Path],
) -> None:
    _, run_dir = existing
    code, output = _invoke("recommend", "--out", str(run_dir), "--budgets", "0.0001ms")
    assert code == 0
    assert "fastest measured" in output


def test_recommend_without_a_study_is_an_error(tmp_path: Path) -> None:
    code, output = _invoke("recommend", "--out", str(tmp_path / "none"), "--budgets", "5ms")
    assert code == 2
    assert output.startswith("error:") and "no study database" in output
    assert not (tmp_path / "none").exists()


def test_a_run_cleans_its_scratch_folder(existing: tuple[list[str], Path]) -> None:
    _, run_dir = existing
    assert (run_dir / "study.db").is_file()
    assert not (run_dir / "tmp").exists()


def test_progress_without_a_terminal_is_a_line_now_and_then(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A 2,000-step final is 20 minutes of silence in a CI log without these lines.
    lines: list[str] = []
    clock = iter([0.0, 30.0, 70.0, 100.0, 200.0])
    monkeypatch.setattr(logs.time, "perf_counter", lambda: next(clock))
    monkeypatch.setattr(logs.log, "info", lambda fmt, *args: lines.append(fmt % args))
    update = logs.progress_lines("final 10ms", 4)
    for step in range(1, 5):
        update(step, 0.5)
    # 30 s: too soon; 70 s: a line (70 s for 2 steps, 2 to go); 100 s: 30 s after it;
    # the last step is the stage's own line.
    assert lines == ["final 10ms: step 2/4, loss 0.5000, about 70 s left"]
