"""The report: figure data (computed, then drawn) and the self-contained HTML page."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from plotly.offline import get_plotlyjs

from paretokd.recommend import Pick, TrialPoint, pick
from paretokd.report import (
    INFEASIBLE_NAME,
    TRIAL_META,
    ReferencePoint,
    pareto_figure,
    pareto_info,
    write_report,
)


def _arch(layers: int, hidden: int, heads: int, ffn: int) -> dict[str, int]:
    return {
        "num_layers": layers,
        "hidden_size": hidden,
        "num_heads": heads,
        "intermediate_size": ffn,
    }


def _point(
    number: int,
    arch: dict[str, int],
    latency: float,
    loss: float,
    *,
    feasible: bool = True,
    on_front: bool = False,
) -> TrialPoint:
    return TrialPoint(
        number=number,
        arch=arch,
        params=1_000_000 * (number + 1),
        loss=loss,
        latency_ms=latency,
        latency_p90_ms=latency * 1.1,
        feasible=feasible,
        on_front=on_front,
    )


# Budgets 2ms, 10ms, 20ms. Trials 4 and 5 are over 20ms: never trained, untrained loss.
POINTS = [
    _point(0, _arch(1, 128, 2, 256), 3.0, 0.9, on_front=True),
    _point(3, _arch(4, 384, 8, 1536), 15.0, 0.3, on_front=True),  # out of latency order
    _point(1, _arch(2, 256, 4, 512), 8.0, 0.5, on_front=True),
    _point(2, _arch(2, 192, 4, 512), 9.0, 0.7),
    _point(4, _arch(6, 384, 8, 1536), 30.0, 5.0, feasible=False),
    _point(5, _arch(5, 384, 8, 1536), 25.0, 4.8, feasible=False),
]
BUDGETS = (2.0, 10.0, 20.0)
TEACHER = ReferencePoint(name="teacher", latency_ms=39.1, loss=None, params=22_700_000)


def _picks() -> list[Pick]:
    return pick(POINTS, BUDGETS)


def test_info_splits_trials_into_front_dominated_and_infeasible() -> None:
    info = pareto_info(POINTS, _picks(), [TEACHER])

    assert [p.trial for p in info.front] == [0, 1, 3]
    assert [p.x for p in info.front] == sorted(p.x for p in info.front)
    assert [p.trial for p in info.dominated] == [2]
    assert [p.trial for p in info.infeasible] == [4, 5]
    assert info.n_trials == len(POINTS)
    assert (info.infeasible[0].x, info.infeasible[0].y) == (30.0, 5.0)


def test_info_budget_lines_picks_and_references() -> None:
    info = pareto_info(POINTS, _picks(), [TEACHER])

    assert [(b.budget_ms, b.label) for b in info.budgets] == [
        (2.0, "2ms budget"),
        (10.0, "10ms budget"),
        (20.0, "20ms budget"),
    ]
    # 2ms has no pick, so no marker; 10ms -> trial 1, 20ms -> trial 3.
    assert [(m.trial, m.label, m.x, m.y) for m in info.picks] == [
        (1, "pick for 10ms", 8.0, 0.5),
        (3, "pick for 20ms", 15.0, 0.3),
    ]
    (teacher,) = info.references
    assert (teacher.x, teacher.y, teacher.label) == (39.1, None, "teacher 39.1 ms")
    # Everything drawn lies inside the axis ranges.
    assert info.x_range[0] <= 2.0 and info.x_range[1] >= 39.1
    assert info.y_range[0] <= 0.3 and info.y_range[1] >= 5.0
    assert info.x_range[0] >= 0.0


def test_hover_names_trial_arch_params_loss_and_latencies() -> None:
    info = pareto_info(POINTS, _picks(), [TEACHER])
    hover = next(p.hover for p in info.front if p.trial == 1)
    for part in ("trial 1", "L2-H256-A4-F512", "2.00 M", "loss 0.5", "p50 8.00 ms", "p90 8.80 ms"):
        assert part in hover
    assert "not trained" in info.infeasible[0].hover


def test_one_trial_picked_for_two_budgets_gets_one_marker() -> None:
    picks = pick(POINTS, (16.0, 20.0))
    info = pareto_info(POINTS, picks, [])
    assert [(m.trial, m.budgets_ms, m.label) for m in info.picks] == [
        (3, (16.0, 20.0), "pick for 16ms, 20ms")
    ]


def test_reference_with_a_loss_is_a_point_inside_the_y_range() -> None:
    ref = ReferencePoint(name="baseline <small>", latency_ms=12.0, loss=7.5, params=5_000_000)
    info = pareto_info(POINTS, _picks(), [ref])
    (mark,) = info.references
    assert (mark.x, mark.y) == (12.0, 7.5)
    assert "&lt;small&gt;" in mark.label and "<small>" not in mark.hover
    assert info.y_range[1] >= 7.5


def test_empty_study_still_has_an_info_and_a_figure() -> None:
    picks = pick([], (10.0,))
    info = pareto_info([], picks, [TEACHER])
    assert info.n_trials == 0 and info.picks == ()
    fig = pareto_figure(info)
    assert not [t for t in fig.data if t.meta == TRIAL_META]


def test_figure_draws_one_marker_per_trial() -> None:
    info = pareto_info(POINTS, _picks(), [TEACHER])
    fig = pareto_figure(info)

    trial_traces = [t for t in fig.data if t.meta == TRIAL_META]
    assert sum(len(t.x) for t in trial_traces) == len(POINTS)
    front = next(t for t in trial_traces if t.line.shape == "hv")
    assert list(front.x) == [3.0, 8.0, 15.0]
    assert "lines" in front.mode
    infeasible = next(t for t in trial_traces if t.name == INFEASIBLE_NAME)
    assert infeasible.marker.symbol == "x"
    assert len(infeasible.x) == 2

    (stars,) = [t for t in fig.data if t.meta == "picks"]
    assert stars.marker.symbol == "star" and list(stars.x) == [8.0, 15.0]

    assert fig.layout.xaxis.title.text == "Latency p50 (ms)"
    assert fig.layout.yaxis.title.text == "Distillation loss (proxy eval)"
    dashes = sorted((s.x0, s.line.dash) for s in fig.layout.shapes)
    assert dashes == [(2.0, "dash"), (10.0, "dash"), (20.0, "dash"), (39.1, "dot")]
    texts = {a.text for a in fig.layout.annotations}
    assert {"10ms budget", "pick for 10ms", "pick for 20ms", "teacher 39.1 ms"} <= texts


def _write(tmp_path: Path, **kwargs: Any) -> Path:
    picks = [
        Pick(budget_ms=2.0, trial=None, reason="nothing fits 2ms <try> R&D"),
        *pick(POINTS, (10.0, 20.0)),
    ]
    args: dict[str, Any] = {
        "title": "Study <demo>",
        "points": POINTS,
        "picks": picks,
        "references": [TEACHER],
        "summary": {"teacher": "tiny & fast", "trials": "6"},
    }
    args.update(kwargs)
    return write_report(tmp_path / "report.html", **args)


def test_write_report_is_self_contained_and_escaped(tmp_path: Path) -> None:
    finals = {10.0: {"loss": 0.42, "latency_ms": 7.5, "dir": "students/10ms"}}
    path = _write(tmp_path, finals=finals)

    assert path == tmp_path / "report.html"
    text = path.read_text(encoding="utf-8")
    assert get_plotlyjs()[:2000] in text  # the JS bundle is inline: opens offline
    assert not re.search(r"<script[^>]*\bsrc=", text)  # nothing fetched from a CDN
    assert "<title>Study &lt;demo&gt;</title>" in text
    assert "<td>tiny &amp; fast</td>" in text
    assert "nothing fits 2ms &lt;try&gt; R&amp;D" in text
    assert "<try>" not in text
    # Pick rows: arch id, search latency, and for 10ms the final numbers and speed-up.
    assert "L2-H256-A4-F512" in text and "L4-H384-A8-F1536" in text
    assert "0.42" in text and "7.50" in text and "students/10ms" in text
    assert f"{39.1 / 7.5:.1f}×" in text
    assert "not trained yet" in text  # 20ms has no final entry
    assert sorted(os.listdir(tmp_path)) == ["report.html"]


def test_write_report_without_finals_has_no_final_columns(tmp_path: Path) -> None:
    text = _write(tmp_path).read_text(encoding="utf-8")
    assert "final loss" not in text and "search p50" in text
    assert sorted(os.listdir(tmp_path)) == ["report.html"]


def test_write_report_replaces_atomically_and_cleans_up_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "report.html"
    path.write_text("old", encoding="utf-8")

    def fail(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        _write(tmp_path)
    assert path.read_text(encoding="utf-8") == "old"
    assert sorted(os.listdir(tmp_path)) == ["report.html"]

    monkeypatch.undo()
    _write(tmp_path)
    assert path.read_text(encoding="utf-8") != "old"
    assert sorted(os.listdir(tmp_path)) == ["report.html"]
