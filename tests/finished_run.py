"""One finished tiny run per test session, shared by the notebook and browser tests.

A run takes seconds; the tests that only read one (the notebook, the report and
the dashboard in a browser) share it instead of each making their own.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from paretokd.cli import main

_made: dict[str, Path] = {}


def finished_run(
    tmp_path_factory: pytest.TempPathFactory, teacher_dir: Path, corpus_file: Path
) -> Path:
    """The output folder of ``paretokd run`` on the tiny spec (search, picks, students)."""
    if "run" not in _made:
        from conftest import TINY_SPEC  # the spec behind the ``tiny_spec_file`` fixture

        base = tmp_path_factory.mktemp("finished")
        spec = base / "tiny.yaml"
        spec.write_text(TINY_SPEC)
        out = base / "run"
        args = ["run", "--study", str(spec), "--teacher", str(teacher_dir)]
        args += ["--data", str(corpus_file), "--out", str(out), "--quiet"]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        _made["run"] = out
    return _made["run"]
