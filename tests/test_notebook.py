"""notebooks/explore_study.ipynb runs top to bottom against a tiny finished run (nbclient)."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest
from finished_run import finished_run
from nbclient import NotebookClient

from paretokd.records import RunRecord

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "explore_study.ipynb"
PLOTLY_MIME = "application/vnd.plotly.v1+json"


def _parameter_cell(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    (cell,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    return cell


def test_committed_notebook_has_no_outputs_and_a_parameter_cell() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    assert 'RUN_DIR = "../runs/default"' in _parameter_cell(nb).source
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


def test_notebook_runs_against_a_tiny_run(
    tmp_path_factory: pytest.TempPathFactory,
    tiny_teacher_dir: Path,
    corpus_file: Path,
    tmp_path: Path,
) -> None:
    out = finished_run(tmp_path_factory, tiny_teacher_dir, corpus_file)

    nb = nbformat.read(NOTEBOOK, as_version=4)
    _parameter_cell(nb).source = f"RUN_DIR = {str(out)!r}\nBUDGETS = '0.001ms,80ms'"
    # Which Python runs the kernel: it must be this environment's, which has paretokd.
    nb.cells.append(nbformat.v4.new_code_cell("import sys\nprint(sys.executable)"))
    client = NotebookClient(
        nb,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell

    assert nb.cells[-1].outputs[0]["text"].strip() == sys.executable
    plotly_outputs = [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
        if PLOTLY_MIME in o.get("data", {})
    ]
    assert len(plotly_outputs) == 5  # four figures, and the Pareto figure of the re-pick
    markdown = [
        o["data"]["text/markdown"]
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
        if "text/markdown" in o.get("data", {})
    ]
    record = RunRecord.read(out / "recommendations.json")
    assert markdown[0].startswith(f"## Recommendations of {record.study}")
    # The re-pick: 0.001ms fits nothing, 80ms fits a trial.
    assert markdown[1].startswith("### Re-picked for 0.001ms,80ms")
    assert "0.001ms | — | no architecture found" in markdown[1]
    assert "| 80ms |" in markdown[1]
    pareto = plotly_outputs[0]["data"][PLOTLY_MIME]
    n_points = sum(len(t["x"]) for t in pareto["data"] if t.get("meta") == "trials")
    assert n_points == 5  # the tiny spec's trials


@pytest.fixture(autouse=True)
def _no_plotly_browser(monkeypatch: pytest.MonkeyPatch) -> None:
    # The kernel inherits the environment: never let plotly try to open a browser.
    monkeypatch.setenv("PLOTLY_RENDERER", "plotly_mimetype")
