"""The report: figure data (computed, then drawn), the tables and the self-contained HTML page."""

from __future__ import annotations

import html
import os
import random
import re
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from factories import FINGERPRINT
from plotly.offline import get_plotlyjs

from paretokd.errors import ParetokdError
from paretokd.metrics import WORST
from paretokd.records import (
    LOSS,
    METRIC_IDEAL,
    UNTRAINED_LOSS,
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
from paretokd.report import (
    INFEASIBLE_NAME,
    PARAMS_TITLE,
    REFERENCE_MODEL,
    TRIAL_META,
    X_TITLE,
    Y_TITLE,
    ComparisonPoint,
    Table,
    architectures_figure,
    architectures_info,
    comparison_points,
    default_corner,
    evaluation_table,
    figures,
    hypervolume_2d,
    hypervolume_figure,
    hypervolume_info,
    latency_params_figure,
    latency_params_info,
    load_run,
    markdown_note,
    pareto_figure,
    pareto_info,
    picks_table,
    render_console,
    render_html,
    render_markdown,
    summary_rows,
    write_report,
)
from paretokd.report.curves import curves_figure, curves_info
from paretokd.search.recommend import pick
from paretokd.search.storage import objective_of
from paretokd.search.trial import Collected

ACCURACY = Objective("accuracy")
LARGEST_BUDGET = 20.0


def _latency(ms: float) -> LatencyStats:
    return LatencyStats(p50_ms=ms, p90_ms=ms * 1.1, mean_ms=ms, runs=10)


def _trial(
    number: int, arch: Arch, latency: float, value: float, *, on_front: bool = False
) -> TrialRecord:
    """A trial over the largest budget (20ms) is infeasible: never trained."""
    return TrialRecord(
        number=number,
        arch=arch,
        params=1_000_000 * (number + 1),
        value=value,
        latency=_latency(latency),
        over_budget_ms=latency - LARGEST_BUDGET,
        on_front=on_front,
    )


# Budgets 2ms, 10ms, 20ms. Trials 4 and 5 are over 20ms: never trained, untrained loss 1.
TRIALS = [
    _trial(0, Arch(1, 128, 2, 256), 3.0, 0.9, on_front=True),
    _trial(3, Arch(4, 384, 8, 1536), 15.0, 0.3, on_front=True),  # out of latency order
    _trial(1, Arch(2, 256, 4, 512), 8.0, 0.5, on_front=True),
    _trial(2, Arch(2, 192, 4, 512), 9.0, 0.7),
    _trial(4, Arch(6, 384, 8, 1536), 30.0, UNTRAINED_LOSS),
    _trial(5, Arch(5, 384, 8, 1536), 25.0, UNTRAINED_LOSS),
]
BUDGETS = (2.0, 10.0, 20.0)
TEACHER = ComparisonPoint(name="teacher", latency_ms=39.1, value=None, params=22_700_000)


def _picks() -> list[Pick]:
    return pick(TRIALS, BUDGETS, LOSS)


def _final(
    folder: str, latency: float, *, loss: float = 0.4, score: float | None = None
) -> FinalStudent:
    budget = None if folder == "reference" else float(folder.removesuffix("ms"))
    return FinalStudent(
        folder=folder,
        arch=Arch(2, 256, 4, 512),
        budget_ms=budget,
        trial=None if budget is None else 1,
        loss=loss,
        latency=_latency(latency),
        parity_max_abs_diff=0.0,
        steps=10,
        dir=Path("students") / folder,
        score=score,
    )


def _run(picks: list[Pick] | None = None, **fields: Any) -> RunRecord:
    """A run record: teacher ``tiny`` (39.1 ms), TRIALS' picks, no finals unless given."""
    record = RunRecord(
        study="demo",
        storage="sqlite:///run/study.db",
        objective=LOSS,
        fingerprint=FINGERPRINT,
        teacher=TeacherRecord("tiny", "hub", 22_700_000, _latency(39.1)),
        reference=None,
        picks=tuple(_picks() if picks is None else picks),
    )
    return replace(record, **fields)


def test_info_splits_trials_into_front_dominated_and_infeasible() -> None:
    info = pareto_info(TRIALS, _picks(), [TEACHER])

    assert [p.trial for p in info.front] == [0, 1, 3]
    assert [p.x for p in info.front] == sorted(p.x for p in info.front)
    assert [p.trial for p in info.dominated] == [2]
    assert [p.trial for p in info.infeasible] == [4, 5]
    assert info.n_trials == len(TRIALS)
    assert info.infeasible[0].x == 30.0


def test_info_budget_lines_picks_and_references() -> None:
    info = pareto_info(TRIALS, _picks(), [TEACHER])

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
    (teacher,) = info.comparisons
    assert (teacher.x, teacher.y, teacher.label) == (39.1, None, "teacher 39.1 ms")
    # Everything drawn lies inside the axis ranges.
    assert info.x_range[0] <= 2.0 and info.x_range[1] >= 39.1
    assert info.y_range[0] <= 0.3 and info.y_range[1] >= 0.9
    assert info.x_range[0] >= 0.0


def test_hover_names_trial_arch_params_loss_and_latencies() -> None:
    info = pareto_info(TRIALS, _picks(), [TEACHER])
    hover = next(p.hover for p in info.front if p.trial == 1)
    for part in ("trial 1", "L2-H256-A4-F512", "2.00 M", "loss 0.5", "p50 8.00 ms", "p90 8.80 ms"):
        assert part in hover
    assert "not trained" in info.infeasible[0].hover


def test_one_trial_picked_for_two_budgets_gets_one_marker() -> None:
    picks = pick(TRIALS, (16.0, 20.0), LOSS)
    info = pareto_info(TRIALS, picks, [])
    assert [(m.trial, m.budgets_ms, m.label) for m in info.picks] == [
        (3, (16.0, 20.0), "pick for 16ms, 20ms")
    ]


def test_a_pick_whose_trial_is_not_among_the_trials_is_placed_by_its_own_figures() -> None:
    info = pareto_info(TRIALS[:1], pick(TRIALS, (10.0,), LOSS), [])
    assert [(m.trial, m.x, m.y) for m in info.picks] == [(1, 8.0, 0.5)]


def test_reference_with_a_value_is_a_point_inside_the_y_range() -> None:
    ref = ComparisonPoint(name="baseline <small>", latency_ms=12.0, value=7.5, params=5_000_000)
    info = pareto_info(TRIALS, _picks(), [ref])
    (mark,) = info.comparisons
    assert (mark.x, mark.y) == (12.0, 7.5)
    assert "&lt;small&gt;" in mark.label and "<small>" not in mark.hover
    assert info.y_range[1] >= 7.5


def test_empty_study_still_has_an_info_and_a_figure() -> None:
    picks = pick([], (10.0,), LOSS)
    info = pareto_info([], picks, [TEACHER])
    assert info.n_trials == 0 and info.picks == ()
    fig = pareto_figure(info)
    assert not [t for t in fig.data if t.meta == TRIAL_META]
    assert len(figures([], _run(picks))) == 4


def test_figure_draws_one_marker_per_trial() -> None:
    info = pareto_info(TRIALS, _picks(), [TEACHER])
    fig = pareto_figure(info)

    trial_traces = [t for t in fig.data if t.meta == TRIAL_META]
    assert sum(len(t.x) for t in trial_traces) == len(TRIALS)
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


def _write(tmp_path: Path, trials: list[TrialRecord] = TRIALS, **fields: Any) -> Path:
    """report.html of a run with a budget nothing fits (2ms), then picks for 10ms and 20ms."""
    objective = fields.get("objective", LOSS)
    picks = [
        Pick(budget_ms=2.0, trial=None, reason="nothing fits 2ms <try> R&D"),
        *pick(trials, (10.0, 20.0), objective),
    ]
    teacher = TeacherRecord("tiny & fast", "hub", 22_700_000, _latency(39.1))
    run = _run(picks, study="<demo>", teacher=teacher, **fields)
    return write_report(tmp_path / "report.html", trials, run)


def test_write_report_is_self_contained_and_escaped(tmp_path: Path) -> None:
    path = _write(tmp_path, finals=(_final("10ms", 7.5, loss=0.42),))

    assert path == tmp_path / "report.html"
    text = path.read_text(encoding="utf-8")
    assert get_plotlyjs()[:2000] in text  # the JS bundle is inline: opens offline
    assert not re.search(r"<script[^>]*\bsrc=", text)  # nothing fetched from a CDN
    assert "<title>paretokd study &lt;demo&gt;</title>" in text
    assert "<td>tiny &amp; fast (22.7M params)</td>" in text
    assert "<th>trials</th><td>6</td>" in text
    assert "nothing fits 2ms &lt;try&gt; R&amp;D" in text
    assert "<try>" not in text
    # Pick rows: arch id, search latency, and for 10ms the final numbers and speed-up.
    assert "L2-H256-A4-F512" in text and "L4-H384-A8-F1536" in text
    assert "0.42" in text and "7.50" in text and "students/10ms" in text
    assert f"{39.1 / 7.5:.1f}×" in text
    assert "not trained yet" in text  # 20ms has no final student
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


# --- the Pareto figure's untrained row ------------------------------------------------------


def test_untrained_trials_sit_on_a_row_above_the_feasible_losses() -> None:
    info = pareto_info(TRIALS, _picks(), [TEACHER])

    rows = {p.y for p in info.infeasible}
    assert len(rows) == 1
    (row,) = rows
    feasible = [p.y for p in (*info.front, *info.dominated)]
    # The y axis fits the trained trials (0.3 to 0.9), not the untrained loss of 1.
    assert max(feasible) < row < info.y_range[1] < UNTRAINED_LOSS
    assert info.y_range[0] <= min(feasible)
    for p in info.infeasible:
        assert "loss: not trained" in p.hover and "over the largest budget" in p.hover
    fig = pareto_figure(info)
    (trace,) = [t for t in fig.data if t.name == INFEASIBLE_NAME]
    assert INFEASIBLE_NAME == "over budget: not trained"
    assert list(trace.y) == [row, row]


def test_with_no_feasible_trial_the_untrained_are_drawn_at_their_loss() -> None:
    trained = [t for t in TRIALS if t.feasible]
    (plain,) = architectures_figure(architectures_info(trained)).data
    assert (plain.line.cmin, plain.line.cmax) == (0.3, 0.9)  # no grey slot when not needed

    untrained = [t for t in TRIALS if not t.feasible]
    info = pareto_info(untrained, pick(untrained, (2.0,), LOSS), [])
    assert [p.y for p in info.infeasible] == [UNTRAINED_LOSS, UNTRAINED_LOSS]
    assert info.y_range[0] < UNTRAINED_LOSS < info.y_range[1]


# --- hypervolume ----------------------------------------------------------------------------


def test_reference_loss_is_the_untrained_students() -> None:
    assert LOSS.worst == UNTRAINED_LOSS
    assert default_corner(TRIALS, BUDGETS) == (UNTRAINED_LOSS, 20.0)
    assert default_corner(TRIALS, ()) == (UNTRAINED_LOSS, 30.0)
    assert default_corner([], ()) == (UNTRAINED_LOSS, 1.0)


def test_hypervolume_2d_by_hand() -> None:
    ref = (1.0, 10.0)
    assert hypervolume_2d([], ref) == 0.0
    assert hypervolume_2d([(0.5, 4.0)], ref) == pytest.approx(0.5 * 6.0)
    # A second front point adds its strip; a dominated one and points outside the box add nothing.
    two = [(0.5, 4.0), (0.2, 8.0)]
    assert hypervolume_2d(two, ref) == pytest.approx(0.5 * 6.0 + 0.3 * 2.0)
    extra = [*two, (0.6, 5.0), (1.0, 1.0), (0.1, 10.0), (0.1, 12.0)]
    assert hypervolume_2d(extra, ref) == pytest.approx(hypervolume_2d(two, ref))


def test_hypervolume_2d_agrees_with_optunas() -> None:
    # Optuna's WFG implementation is private; it is only the yardstick here.
    from optuna._hypervolume import compute_hypervolume

    rng = random.Random(0)
    ref = (1.0, 50.0)
    for _ in range(20):
        pts = [(rng.uniform(0, 1.2), rng.uniform(0, 60)) for _ in range(rng.randint(1, 25))]
        inside = np.array([p for p in pts if p[0] < ref[0] and p[1] < ref[1]])
        expected = compute_hypervolume(inside, np.array(ref)) if len(inside) else 0.0
        assert hypervolume_2d(pts, ref) == pytest.approx(expected)


def test_hypervolume_history_grows_in_trial_order_and_ignores_untrained() -> None:
    info = hypervolume_info(TRIALS, default_corner(TRIALS, BUDGETS))

    assert info.trials == (0, 1, 2, 3, 4, 5)
    assert all(a <= b for a, b in zip(info.values, info.values[1:], strict=False))
    assert info.values[0] == pytest.approx((20.0 - 3.0) * (1.0 - 0.9))
    assert info.values[2] == info.values[1]  # trial 2 is dominated by trial 1
    assert info.values[5] == info.values[3]  # trials 4 and 5 were not trained
    assert info.box == 20.0
    assert 0 < info.shares[-1] < 1
    fig = hypervolume_figure(info)
    (trace,) = fig.data
    assert list(trace.x) == [0, 1, 2, 3, 4, 5]
    assert list(trace.y) == pytest.approx([100 * s for s in info.shares])
    assert fig.layout.xaxis.title.text == "Trial number"
    assert "%" in fig.layout.yaxis.title.text


# --- latency against parameters -------------------------------------------------------------


def test_latency_params_info_and_figure() -> None:
    hand = ComparisonPoint("hand-crafted L3", latency_ms=12.0, value=0.6, params=9_000_000)
    info = latency_params_info(TRIALS, _picks(), [TEACHER, hand])

    assert info.n_trials == len(TRIALS)
    p1 = next(p for p in info.front if p.trial == 1)
    assert (p1.x, p1.y) == (2.0, 8.0)  # 2 M params, 8 ms
    assert "L2-H256-A4-F512" in p1.hover
    assert [p.trial for p in info.infeasible] == [4, 5]
    assert [b.budget_ms for b in info.budgets] == [2.0, 10.0, 20.0]
    assert [(m.trial, m.x, m.y) for m in info.picks] == [(1, 2.0, 8.0), (3, 4.0, 15.0)]
    assert [(r.name, r.x, r.y) for r in info.comparisons] == [
        ("teacher", 22.7, 39.1),
        ("hand-crafted L3", 9.0, 12.0),
    ]

    fig = latency_params_figure(info)
    assert sum(len(t.x) for t in fig.data if t.meta == TRIAL_META) == len(TRIALS)
    assert sorted(s.y0 for s in fig.layout.shapes) == [2.0, 10.0, 20.0]
    assert fig.layout.xaxis.title.text == PARAMS_TITLE
    assert fig.layout.yaxis.title.text == X_TITLE


# --- parallel coordinates -------------------------------------------------------------------


def test_architectures_info_has_one_line_per_trial() -> None:
    info = architectures_info(TRIALS)

    assert info.trials == (0, 1, 2, 3, 4, 5)
    labels = [a.label for a in info.axes]
    assert labels == ["layers", "hidden", "heads", "FFN", "params (M)", "p50 (ms)", "proxy loss"]
    layers, hidden = info.axes[0], info.axes[1]
    assert layers.values == (1, 2, 2, 4, 6, 5)
    assert hidden.ticks == (128, 192, 256, 384)
    assert info.axes[5].values == (3.0, 8.0, 9.0, 15.0, 30.0, 25.0)
    assert info.values == (0.9, 0.5, 0.7, 0.3, None, None)
    assert info.value_range == (0.3, 0.9)


def test_architectures_figure_colours_untrained_lines_grey() -> None:
    fig = architectures_figure(architectures_info(TRIALS))
    (par,) = fig.data
    assert par.type == "parcoords"
    assert len(par.dimensions) == 7
    assert list(par.dimensions[1].tickvals) == [128, 192, 256, 384]
    colors = list(par.line.color)
    assert colors[:4] == [0.9, 0.5, 0.7, 0.3]
    assert colors[4] == colors[5] == par.line.cmax > 0.9
    # The top of the colour scale, where the untrained lines land, is grey.
    assert par.line.colorscale[-1][1] == par.line.colorscale[-2][1] == "rgb(150, 150, 150)"

    trained = [t for t in TRIALS if t.feasible]
    (plain,) = architectures_figure(architectures_info(trained)).data
    assert (plain.line.cmin, plain.line.cmax) == (0.3, 0.9)  # no grey slot when not needed

    untrained = [t for t in TRIALS if not t.feasible]
    (grey,) = architectures_figure(architectures_info(untrained)).data
    assert grey.line.color == "rgb(150, 150, 150)"
    (empty,) = architectures_figure(architectures_info([])).data
    assert all(len(d.values) == 0 for d in empty.dimensions)


# --- all figures, the note, a run read back ------------------------------------------------


def test_figures_have_stable_ids_titles_and_captions() -> None:
    drawn = figures(TRIALS, _run())
    assert [f.id for f in drawn] == [
        "pareto-front",
        "hypervolume",
        "latency-vs-params",
        "architectures",
    ]
    assert all(f.title and f.caption for f in drawn)
    assert "p50 < 20.0 ms" in drawn[1].title  # the box runs up to the largest budget
    titled = drawn[0].titled()
    assert titled.layout.title.text == "Loss against latency"
    assert drawn[0].figure.layout.title.text is None  # the original is left untouched


def test_final_curves_are_drawn_with_the_step_each_student_ships() -> None:
    final = FinalStudent(
        folder="10ms",
        arch=Arch(2, 64, 4, 128),
        budget_ms=10.0,
        trial=1,
        loss=0.3,
        latency=_latency(4.0),
        parity_max_abs_diff=0.0,
        steps=150,
        dir=Path("run/students/10ms"),
        curve=((50, 0.42), (100, 0.31), (150, 0.33)),
        best_step=100,
    )
    (curve,) = curves_info(_run(finals=(final,)))
    assert curve.label == "10ms: L2-H64-A4-F128" and curve.steps == (50, 100, 150)
    line, star = curves_figure([curve]).data
    assert list(line.y) == [0.42, 0.31, 0.33]
    assert list(star.x) == [100] and list(star.y) == [0.31]
    drawn = figures(TRIALS, _run(finals=(final,)))
    assert drawn[-1].id == "final-curves"
    # A run whose finals recorded no curve has no such figure.
    assert "final-curves" not in [f.id for f in figures(TRIALS, _run())]


def test_reference_points_are_the_teacher_and_the_hand_crafted_student() -> None:
    # The teacher is drawn at its calibrated latency: the scale of every trial's figure.
    teacher = TeacherRecord("tiny", "hub", 22_700_000, _latency(39.1))
    hand = ReferenceStudent(Arch(3, 256, 4, 1024), 4, _latency(12.0), proxy_loss=0.45, name="hand")
    assert comparison_points(_run(teacher=teacher)) == [TEACHER]
    loss_run = _run(teacher=teacher, reference=hand)
    assert comparison_points(loss_run)[1] == ComparisonPoint("hand", 12.0, 0.45, 4)
    # The reference's proxy loss does not belong on an accuracy axis: a vertical line.
    assert comparison_points(replace(loss_run, objective=ACCURACY))[1].value is None
    metric_run = replace(loss_run, objective=ACCURACY, reference=replace(hand, proxy_metric=0.82))
    assert comparison_points(metric_run)[1].value == 0.82


def _finished(picks: list[Pick] | None = None, **fields: Any) -> RunRecord:
    """TRIALS' run with a budget nothing fits, a final student for 10ms, none for 20ms."""
    if picks is None:
        picks = [Pick(2.0, None, "nothing | fits"), *pick(TRIALS, (10.0, 20.0), LOSS)]
    spent = SearchSpend(trials=6, seconds=60.0, never_pickable=2, never_pickable_seconds=6.0)
    return _run(picks, finals=(_final("10ms", 7.5, loss=0.42),), search=spent, **fields)


def test_markdown_note_lists_picks_finals_and_reasons() -> None:
    note = markdown_note(_finished(), links={"10ms": "`10ms-model.onnx`"})
    lines = note.splitlines()
    assert lines[0] == "## Recommendations of demo"
    assert "- **trials**: 6" in lines and "- **teacher p50**: 39.10 ms" in lines
    assert "- **time on never-pickable trials**: 6.0 s of 60.0 s (10.0%, 2 of 6 trials " in note
    rows = [line for line in lines if line.startswith("| ")]
    assert len(rows) == 1 + 3  # the header and one row per budget
    assert all(row.count(" | ") == rows[0].count(" | ") for row in rows)
    assert "nothing \\| fits" in rows[1]
    assert "| 10ms | 1 | L2-H256-A4-F512 |" in rows[2]
    assert f"{39.1 / 7.5:.1f}×" in rows[2] and "`10ms-model.onnx`" in rows[2]
    assert "not trained yet" in rows[3]


def test_summary_rows() -> None:
    rows = summary_rows(_finished(), 6)
    assert list(rows) == [
        "teacher",
        "latency setup",
        "trials",
        "storage",
        "time on never-pickable trials",
    ]
    assert rows["teacher"] == "tiny (22.7M params)" and rows["trials"] == "6"
    assert "hardware=test CPU" in rows["latency setup"] and "seq_len=16" in rows["latency setup"]
    assert "time on never-pickable trials" not in summary_rows(_run(), 6)


# --- the tables -----------------------------------------------------------------------------


def _cells(table: Table) -> list[str]:
    texts = list(table.head)
    for row in table.rows:
        texts += [c.text for c in row.cells] + ([row.reason] if row.reason else [])
    return texts


def test_the_three_renderers_show_the_same_cells() -> None:
    table = picks_table(_finished().picks, LOSS, _finished())
    assert len(table.head) == 10 and len(table.rows) == 3
    console, markdown, page = render_console(table), render_markdown(table), render_html(table)
    for text in _cells(table):
        assert text in console
        assert text.replace("|", "\\|") in markdown
        assert html.escape(text) in page
    # One line per row in the terminal and in markdown (plus markdown's separator).
    assert len(console.splitlines()) == 1 + 3
    assert len(markdown.splitlines()) == 2 + 3
    assert page.count("<tr>") == 1 + 3


def test_picks_table_cells() -> None:
    run = _finished()
    table = picks_table(run.picks, LOSS, run)
    assert table.head == (
        "budget",
        "trial",
        "architecture",
        "params",
        "proxy loss",
        "search p50 (ms)",
        "final loss",
        "final p50 (ms)",
        "speed-up vs teacher",
        "files",
    )
    no_pick, p10, p20 = table.rows
    assert [c.text for c in no_pick.cells] == ["2ms", "—"] and no_pick.reason == "nothing | fits"
    assert [c.text for c in p10.cells] == [
        "10ms",
        "1",
        "L2-H256-A4-F512",
        "2.00 M",
        "0.5",
        "8.00",
        "0.42",
        "7.50",  # final latencies with two decimals
        f"{run.speedup(run.finals[0]):.1f}×",
        str(Path("students/10ms")),
    ]
    assert [c.numeric for c in p10.cells] == [False, True, False] + [True] * 6 + [False]
    assert [c.text for c in p20.cells][-4:] == ["—", "—", "—", "not trained yet"]

    # A re-pick (`paretokd recommend`) has no final columns.
    repick = picks_table(run.picks, ACCURACY)
    assert repick.head[-2:] == ("proxy accuracy", "search p50 (ms)")
    assert all(len(r.cells) == 6 for r in repick.rows if r.reason is None)


def test_console_table_is_aligned_and_keeps_the_reason() -> None:
    lines = render_console(picks_table(_finished().picks, LOSS)).splitlines()
    assert lines[0].split() == [
        "budget",
        "trial",
        "architecture",
        "params",
        "proxy",
        "loss",
        "search",
        "p50",
        "(ms)",
    ]
    assert lines[1].split()[:2] == ["2ms", "—"] and lines[1].endswith("nothing | fits")
    # Numbers are right-aligned: the search p50 column ends at the header's end.
    assert lines[2].endswith("8.00") and len(lines[2]) == len(lines[0])
    assert lines[2].index("L2-H256-A4-F512") == lines[0].index("architecture")


def _stored_run(
    tmp_path: Path,
    reference: bool = False,
    *,
    metric: bool = False,
    evaluation: bool = False,
) -> Path:
    """A run folder as ``paretokd run`` leaves it, built from TRIALS without training.

    With ``metric``, the study maximises accuracy (METRIC_TRIALS), as a task-metric
    study does; with ``evaluation``, the run scored its students (see ``_scored``).
    """
    out = tmp_path / "run"
    out.mkdir()
    objective = ACCURACY if metric else LOSS
    study = optuna.create_study(
        study_name="demo",
        storage=f"sqlite:///{out / 'study.db'}",
        directions=[objective.direction, "minimize"],
    )
    with warnings.catch_warnings():  # set_metric_names is marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([objective.name, "latency_ms"])
    trials = METRIC_TRIALS if metric else TRIALS
    for t in sorted(trials, key=lambda q: q.number):
        attrs = Collected()
        t.write(attrs)  # the record's own way into Optuna's attributes
        study.add_trial(
            optuna.trial.create_trial(
                values=[t.value, t.latency_ms],
                user_attrs=attrs.user_attrs,
                constraints=attrs.constraints,
            )
        )
    run = _run(pick(trials, BUDGETS, objective), objective=objective)
    if evaluation:
        run = _scored(run)
    else:
        run = replace(run, finals=(replace(_final("10ms", 7.0), dir=out / "students" / "10ms"),))
    if reference:
        hand = ReferenceStudent(Arch(3, 256, 4, 1024), 4_000_000, _latency(12.0), 0.45, name="hand")
        run = replace(run, reference=hand)
    run.write(out / "recommendations.json")
    return out


def test_load_run_reads_a_run_folder_back(tmp_path: Path) -> None:
    out = _stored_run(tmp_path)
    run = load_run(out)

    assert run.out_dir == out and run.study.study_name == "demo"
    assert [t.number for t in run.trials] == [0, 1, 2, 3, 4, 5]
    assert {t.number for t in run.trials if not t.feasible} == {4, 5}
    assert list(run.record.picks) == pick(run.trials, BUDGETS, LOSS)
    assert comparison_points(run.record) == [TEACHER]
    (final,) = run.record.finals
    assert (final.folder, final.loss, final.dir) == ("10ms", 0.4, out / "students" / "10ms")
    summary = summary_rows(run.record, len(run.trials))
    assert summary["trials"] == "6" and summary["teacher"] == "tiny (22.7M params)"
    assert len(run.figures()) == 4
    assert (run.record.objective, run.record.evaluation) == (LOSS, None)


def test_load_run_reads_the_hand_crafted_reference(tmp_path: Path) -> None:
    run = load_run(_stored_run(tmp_path, reference=True))
    hand = ComparisonPoint("hand", latency_ms=12.0, value=0.45, params=4_000_000)
    assert comparison_points(run.record) == [TEACHER, hand]
    refs = comparison_points(run.record)
    (mark,) = pareto_info(run.trials, run.record.picks, refs).comparisons[1:]
    assert (mark.x, mark.y) == (12.0, 0.45)  # a diamond among the trials


def test_load_run_without_a_run_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(ParetokdError, match="recommendations.json"):
        load_run(tmp_path)
    out = _stored_run(tmp_path)
    (out / "study.db").unlink()
    with pytest.raises(ParetokdError, match="no study database"):
        load_run(out)


def test_write_report_inlines_plotly_once_and_draws_every_figure(tmp_path: Path) -> None:
    text = _write(tmp_path).read_text(encoding="utf-8")
    assert text.count(get_plotlyjs()[:2000]) == 1
    for fig_id in ("pareto-front", "hypervolume", "latency-vs-params", "architectures"):
        assert f'id="{fig_id}"' in text
    assert text.count("Plotly.newPlot(") == 4


# --- log axes -------------------------------------------------------------------------------


def test_latency_axes_turn_logarithmic_when_budgets_dwarf_the_trials() -> None:
    far = pick(TRIALS, (500.0, 1000.0), LOSS)
    info = pareto_info(TRIALS, far, [TEACHER])
    assert info.x_log
    lo, hi = info.x_range
    assert 0 < lo < 3.0 and hi > 1000.0
    fig = pareto_figure(info)
    assert fig.layout.xaxis.type == "log"
    assert list(fig.layout.xaxis.range) == pytest.approx([np.log10(lo), np.log10(hi)])
    # Shapes take the value on a log axis, annotations its log10.
    assert sorted(s.x0 for s in fig.layout.shapes) == [39.1, 500.0, 1000.0]
    labels = {a.text: a.x for a in fig.layout.annotations}
    assert labels["1000ms budget"] == pytest.approx(3.0)
    assert labels["pick for 500ms, 1000ms"] == pytest.approx(np.log10(15.0))

    lp = latency_params_info(TRIALS, far, [TEACHER])
    assert lp.y_log
    lp_fig = latency_params_figure(lp)
    assert lp_fig.layout.yaxis.type == "log"
    assert {a.text: a.y for a in lp_fig.layout.annotations}["500ms budget"] == pytest.approx(
        np.log10(500.0)
    )

    # Budgets of the trials' own scale keep linear axes.
    near = pareto_info(TRIALS, _picks(), [TEACHER])
    assert not near.x_log and pareto_figure(near).layout.xaxis.type is None
    assert not latency_params_info(TRIALS, _picks(), [TEACHER]).y_log


# --- a study that maximises a task metric ---------------------------------------------------


# TRIALS with accuracy as objective 1: higher is better, untrained trials score 0.
METRIC_TRIALS = [
    replace(t, value=v)
    for t, v in zip(TRIALS, [0.6, 0.9, 0.8, 0.7, WORST["accuracy"], WORST["accuracy"]], strict=True)
]


def _metric_picks() -> list[Pick]:
    return pick(METRIC_TRIALS, BUDGETS, ACCURACY)


def test_labels_default_to_the_proxy_loss(tmp_path: Path) -> None:
    drawn = figures(TRIALS, _run())
    assert drawn[0].figure.layout.yaxis.title.text == Y_TITLE
    (par,) = drawn[3].figure.data
    assert par.dimensions[-1].label == "proxy loss"
    assert par.line.colorbar.title.text.startswith("proxy loss")
    assert "proxy loss (darker is better)" in drawn[3].caption
    assert "loss < 1, p50 < 20.0 ms" in drawn[1].title
    text = _write(tmp_path).read_text(encoding="utf-8")
    assert "<th>proxy loss</th>" in text and "proxy accuracy" not in text
    assert "<h2>Evaluation</h2>" not in text


def test_labels_colours_and_rows_follow_a_maximised_metric(tmp_path: Path) -> None:
    drawn = figures(METRIC_TRIALS, _run(_metric_picks(), objective=ACCURACY))

    assert drawn[0].title == "Accuracy against latency"
    assert "bottom row" in drawn[0].caption
    y_title = drawn[0].figure.layout.yaxis.title.text
    assert y_title.startswith("Proxy accuracy") and "higher is better" in y_title
    assert "accuracy > 0, p50 < 20.0 ms" in drawn[1].title
    assert "accuracy·ms" in drawn[1].figure.data[0].hovertext[-1]
    assert "proxy accuracy (darker is better)" in drawn[3].caption
    (par,) = drawn[3].figure.data
    assert par.dimensions[-1].label == "proxy accuracy"
    assert par.line.colorbar.title.text.startswith("proxy accuracy")
    # Reversed scale: the best (highest) accuracy is dark, and the grey slot is at the bottom.
    assert par.line.colorscale[0][1] == par.line.colorscale[1][1] == "rgb(150, 150, 150)"
    assert par.line.colorscale[-1][1] == "#440154"  # Viridis' darkest colour
    colors = list(par.line.color)
    assert colors[:4] == [0.6, 0.8, 0.7, 0.9]
    assert colors[4] == colors[5] == par.line.cmin < 0.6 and par.line.cmax == 0.9

    text = _write(tmp_path, METRIC_TRIALS, objective=ACCURACY).read_text(encoding="utf-8")
    assert "<th>proxy accuracy</th>" in text and "proxy loss" not in text


def test_pareto_info_puts_untrained_trials_below_a_maximised_metric() -> None:
    info = pareto_info(METRIC_TRIALS, _metric_picks(), [TEACHER], objective=ACCURACY)
    assert [p.trial for p in info.front] == [0, 1, 3]
    (row,) = {p.y for p in info.infeasible}
    feasible = [p.y for p in (*info.front, *info.dominated)]
    assert info.y_range[0] < row < min(feasible) and info.y_range[1] >= max(feasible)
    assert "accuracy: not trained" in info.infeasible[0].hover
    assert "accuracy 0.8" in next(p.hover for p in info.front if p.trial == 1)
    assert [(m.trial, m.y) for m in info.picks] == [(1, 0.8), (3, 0.9)]


def test_hypervolume_of_a_maximised_metric_by_hand() -> None:
    assert LOSS.worst == UNTRAINED_LOSS and Objective("matthews").worst == -1.0
    with pytest.raises(ParetokdError, match="unknown objective 'bleu'"):
        Objective("bleu")
    ref = default_corner(METRIC_TRIALS, BUDGETS, ACCURACY)
    assert ref == (0.0, 20.0)
    assert hypervolume_2d([(0.6, 3.0)], ref, maximise=True) == pytest.approx(17 * 0.6)
    two = [(0.6, 3.0), (0.8, 8.0)]
    assert hypervolume_2d(two, ref, maximise=True) == pytest.approx(17 * 0.6 + 12 * 0.2)

    info = hypervolume_info(METRIC_TRIALS, ref, objective=ACCURACY)
    assert info.ideal == METRIC_IDEAL and info.box == 20.0
    assert info.values[1] == pytest.approx(17 * 0.6 + 12 * 0.2)  # trials 0 and 1
    assert info.values[5] == info.values[3]  # untrained trials add nothing
    assert 0 < info.shares[-1] < 1


# --- the evaluation section -----------------------------------------------------------------


def _scored(run: RunRecord) -> RunRecord:
    """``run`` with accuracy on an evaluation set: teacher 0.91, reference 0.85 at 20 ms,
    the 10ms pick 0.80 at 7.5 ms and the 20ms pick 0.88 at 14 ms."""
    evaluation = Evaluation("dev.tsv <sentence → label>", "accuracy", 872, teacher=0.91)
    finals = (
        _final("10ms", 7.5, score=0.80),
        _final("20ms", 14.0, score=0.88),
        _final("reference", 20.0, score=0.85),
    )
    return replace(run, evaluation=evaluation, finals=finals)


def test_evaluation_table_rows() -> None:
    run = _scored(_run())
    table = evaluation_table(run)
    assert table is not None and evaluation_table(_run()) is None

    assert table.caption == "accuracy on dev.tsv <sentence → label> (872 examples)"
    assert table.head == ("model", "accuracy", "% of teacher", "p50 (ms)", "speed-up vs teacher")
    rows = [[c.text for c in r.cells] for r in table.rows]
    assert [r[0] for r in rows] == ["teacher", REFERENCE_MODEL, "pick for 10ms", "pick for 20ms"]
    teacher, ref, p10, p20 = rows
    assert teacher == ["teacher", "0.9100", "100.0%", "39.10", "1.0×"]  # its speed-up: itself
    assert ref[1:3] == ["0.8500", "93.4%"]
    assert p10[3:] == ["7.50", "5.2×"] and p20[2] == "96.7%"

    # No reference scored (a pick was the reference), a pick without a score.
    finals = (_final("10ms", 7.5, score=0.80), _final("20ms", 14.0))
    partial = evaluation_table(replace(run, finals=finals))
    assert partial is not None
    assert [r.cells[0].text for r in partial.rows] == ["teacher", "pick for 10ms"]


def test_write_report_shows_the_evaluation_section(tmp_path: Path) -> None:
    text = _write(tmp_path, **_fields(_scored(_run()))).read_text(encoding="utf-8")

    section = text[text.index("<h2>Evaluation</h2>") : text.index("<h2>Figures</h2>")]
    assert "accuracy on dev.tsv &lt;sentence → label&gt; (872 examples)" in section
    assert "<th>accuracy</th><th>% of teacher</th>" in section
    rows = re.findall(r"<tr><td>.*</tr>", section)
    assert len(rows) == 4
    assert rows[0] == (
        '<tr><td>teacher</td><td class="num">0.9100</td><td class="num">100.0%</td>'
        '<td class="num">39.10</td><td class="num">1.0×</td></tr>'
    )
    assert f"<td>{REFERENCE_MODEL}</td>" in rows[1] and "93.4%" in rows[1] and "2.0×" in rows[1]
    assert "<td>pick for 10ms</td>" in rows[2] and "87.9%" in rows[2] and "5.2×" in rows[2]
    assert "96.7%" in rows[3] and "14.00" in rows[3] and "2.8×" in rows[3]
    assert text.index("<h2>Recommendations</h2>") < text.index("<h2>Evaluation</h2>")


def _fields(run: RunRecord) -> dict[str, Any]:
    return {"evaluation": run.evaluation, "finals": run.finals}


def test_markdown_note_adds_the_evaluation_table() -> None:
    note = markdown_note(_scored(_run(_metric_picks(), objective=ACCURACY)))
    lines = note.splitlines()
    assert "| budget | trial | architecture | params | proxy accuracy |" in note
    assert "### Evaluation: accuracy on dev.tsv <sentence → label> (872 examples)" in lines
    start = lines.index("| model | accuracy | % of teacher | p50 (ms) | speed-up vs teacher |")
    assert lines[start + 2] == "| teacher | 0.9100 | 100.0% | 39.10 | 1.0× |"
    assert lines[start + 4] == "| pick for 10ms | 0.8000 | 87.9% | 7.50 | 5.2× |"
    assert "Evaluation" not in markdown_note(_run())


def test_load_run_reads_the_objective_and_the_evaluation(tmp_path: Path) -> None:
    run = load_run(_stored_run(tmp_path, reference=True, metric=True, evaluation=True))

    assert run.record.objective == ACCURACY == objective_of(run.study)
    assert run.record.evaluation == _scored(_run()).evaluation
    assert [f.score for f in run.record.finals] == [0.80, 0.88, 0.85]
    assert list(run.record.picks) == pick(run.trials, BUDGETS, ACCURACY)
    # The reference's proxy loss does not belong on the accuracy axis: a vertical line.
    assert comparison_points(run.record)[1].value is None
    drawn = run.figures()
    assert drawn[3].figure.data[0].dimensions[-1].label == "proxy accuracy"
