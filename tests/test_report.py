"""The report: figure data (computed, then drawn) and the self-contained HTML page."""

from __future__ import annotations

import json
import os
import random
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from plotly.offline import get_plotlyjs

from paretokd.distill import UNTRAINED_LOSS
from paretokd.errors import ParetokdError
from paretokd.metrics import WORST
from paretokd.search.recommend import Pick, TrialPoint, pick
from paretokd.report import (
    INFEASIBLE_NAME,
    METRIC_IDEAL,
    PARAMS_TITLE,
    REFERENCE_LOSS,
    REFERENCE_MODEL,
    TRIAL_META,
    X_TITLE,
    Y_TITLE,
    EvaluationRow,
    ReferencePoint,
    architectures_figure,
    architectures_info,
    default_reference,
    evaluation_info,
    figures,
    hypervolume_2d,
    hypervolume_figure,
    hypervolume_info,
    latency_params_figure,
    latency_params_info,
    load_run,
    markdown_note,
    objective_of,
    pareto_figure,
    pareto_info,
    reference_point,
    worst_value,
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


# Budgets 2ms, 10ms, 20ms. Trials 4 and 5 are over 20ms: never trained, untrained loss 1.
POINTS = [
    _point(0, _arch(1, 128, 2, 256), 3.0, 0.9, on_front=True),
    _point(3, _arch(4, 384, 8, 1536), 15.0, 0.3, on_front=True),  # out of latency order
    _point(1, _arch(2, 256, 4, 512), 8.0, 0.5, on_front=True),
    _point(2, _arch(2, 192, 4, 512), 9.0, 0.7),
    _point(4, _arch(6, 384, 8, 1536), 30.0, UNTRAINED_LOSS, feasible=False),
    _point(5, _arch(5, 384, 8, 1536), 25.0, UNTRAINED_LOSS, feasible=False),
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
    assert info.infeasible[0].x == 30.0


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
    assert info.y_range[0] <= 0.3 and info.y_range[1] >= 0.9
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


# --- the Pareto figure's untrained row ------------------------------------------------------


def test_untrained_trials_sit_on_a_row_above_the_feasible_losses() -> None:
    info = pareto_info(POINTS, _picks(), [TEACHER])

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
    trained = [p for p in POINTS if p.feasible]
    (plain,) = architectures_figure(architectures_info(trained)).data
    assert (plain.line.cmin, plain.line.cmax) == (0.3, 0.9)  # no grey slot when not needed

    untrained = [p for p in POINTS if not p.feasible]
    info = pareto_info(untrained, pick(untrained, (2.0,)), [])
    assert [p.y for p in info.infeasible] == [UNTRAINED_LOSS, UNTRAINED_LOSS]
    assert info.y_range[0] < UNTRAINED_LOSS < info.y_range[1]


# --- hypervolume ----------------------------------------------------------------------------


def test_reference_loss_is_the_untrained_students() -> None:
    assert REFERENCE_LOSS == UNTRAINED_LOSS
    assert default_reference(POINTS, BUDGETS) == (UNTRAINED_LOSS, 20.0)
    assert default_reference(POINTS, ()) == (UNTRAINED_LOSS, 30.0)
    assert default_reference([], ()) == (UNTRAINED_LOSS, 1.0)


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
    info = hypervolume_info(POINTS, default_reference(POINTS, BUDGETS))

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
    hand = ReferencePoint("hand-crafted L3", latency_ms=12.0, loss=0.6, params=9_000_000)
    info = latency_params_info(POINTS, _picks(), [TEACHER, hand])

    assert info.n_trials == len(POINTS)
    p1 = next(p for p in info.front if p.trial == 1)
    assert (p1.x, p1.y) == (2.0, 8.0)  # 2 M params, 8 ms
    assert "L2-H256-A4-F512" in p1.hover
    assert [p.trial for p in info.infeasible] == [4, 5]
    assert [b.budget_ms for b in info.budgets] == [2.0, 10.0, 20.0]
    assert [(m.trial, m.x, m.y) for m in info.picks] == [(1, 2.0, 8.0), (3, 4.0, 15.0)]
    assert [(r.name, r.x, r.y) for r in info.references] == [
        ("teacher", 22.7, 39.1),
        ("hand-crafted L3", 9.0, 12.0),
    ]

    fig = latency_params_figure(info)
    assert sum(len(t.x) for t in fig.data if t.meta == TRIAL_META) == len(POINTS)
    assert sorted(s.y0 for s in fig.layout.shapes) == [2.0, 10.0, 20.0]
    assert fig.layout.xaxis.title.text == PARAMS_TITLE
    assert fig.layout.yaxis.title.text == X_TITLE


# --- parallel coordinates -------------------------------------------------------------------


def test_architectures_info_has_one_line_per_trial() -> None:
    info = architectures_info(POINTS)

    assert info.trials == (0, 1, 2, 3, 4, 5)
    labels = [a.label for a in info.axes]
    assert labels == ["layers", "hidden", "heads", "FFN", "params (M)", "p50 (ms)", "proxy loss"]
    layers, hidden = info.axes[0], info.axes[1]
    assert layers.values == (1, 2, 2, 4, 6, 5)
    assert hidden.ticks == (128, 192, 256, 384)
    assert info.axes[5].values == (3.0, 8.0, 9.0, 15.0, 30.0, 25.0)
    assert info.loss == (0.9, 0.5, 0.7, 0.3, None, None)
    assert info.loss_range == (0.3, 0.9)


def test_architectures_figure_colours_untrained_lines_grey() -> None:
    fig = architectures_figure(architectures_info(POINTS))
    (par,) = fig.data
    assert par.type == "parcoords"
    assert len(par.dimensions) == 7
    assert list(par.dimensions[1].tickvals) == [128, 192, 256, 384]
    colors = list(par.line.color)
    assert colors[:4] == [0.9, 0.5, 0.7, 0.3]
    assert colors[4] == colors[5] == par.line.cmax > 0.9
    # The top of the colour scale, where the untrained lines land, is grey.
    assert par.line.colorscale[-1][1] == par.line.colorscale[-2][1] == "rgb(150, 150, 150)"

    trained = [p for p in POINTS if p.feasible]
    (plain,) = architectures_figure(architectures_info(trained)).data
    assert (plain.line.cmin, plain.line.cmax) == (0.3, 0.9)  # no grey slot when not needed

    untrained = [p for p in POINTS if not p.feasible]
    (grey,) = architectures_figure(architectures_info(untrained)).data
    assert grey.line.color == "rgb(150, 150, 150)"
    (empty,) = architectures_figure(architectures_info([])).data
    assert all(len(d.values) == 0 for d in empty.dimensions)


# --- all figures, the note, a run read back ------------------------------------------------


def test_figures_have_stable_ids_titles_and_captions() -> None:
    drawn = figures(POINTS, _picks(), [TEACHER])
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


def test_markdown_note_lists_picks_finals_and_reasons() -> None:
    picks = [Pick(budget_ms=2.0, trial=None, reason="nothing | fits"), *pick(POINTS, (10.0, 20.0))]
    finals = {10.0: {"loss": 0.42, "latency_ms": 7.5, "dir": "students/10ms"}}
    note = markdown_note(
        "Recommendations",
        picks,
        finals,
        TEACHER,
        links={"10ms": "`10ms-model.onnx`"},
        summary={"teacher": "tiny", "trials": "6"},
    )
    lines = note.splitlines()
    assert lines[0] == "## Recommendations"
    assert "- **trials**: 6" in lines and "- **teacher p50**: 39.1 ms" in lines
    rows = [line for line in lines if line.startswith("| ")]
    assert len(rows) == 1 + 3  # the header and one row per budget
    assert all(row.count(" | ") == rows[0].count(" | ") for row in rows)
    assert "nothing \\| fits" in rows[1]
    assert "| 10ms | 1 | L2-H256-A4-F512 |" in rows[2]
    assert f"{39.1 / 7.5:.1f}×" in rows[2] and "`10ms-model.onnx`" in rows[2]
    assert "not trained yet" in rows[3]


def _stored_run(
    tmp_path: Path,
    reference: bool = False,
    *,
    metric: bool = False,
    evaluation: dict[str, Any] | None = None,
) -> Path:
    """A run folder as ``paretokd run`` leaves it, built from POINTS without training.

    With ``metric``, the study maximises accuracy (METRIC_POINTS), as a task-metric
    study does.
    """
    out = tmp_path / "run"
    out.mkdir()
    study = optuna.create_study(
        study_name="demo",
        storage=f"sqlite:///{out / 'study.db'}",
        directions=["maximize" if metric else "minimize", "minimize"],
    )
    if metric:  # a loss study keeps no metric names: "loss" is the default
        with warnings.catch_warnings():  # set_metric_names is marked experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(["accuracy", "latency_ms"])
    trials = METRIC_POINTS if metric else POINTS
    for p in sorted(trials, key=lambda q: q.number):
        study.add_trial(
            optuna.trial.create_trial(
                values=[p.loss, p.latency_ms],
                user_attrs={
                    "arch": p.arch,
                    "params": p.params,
                    "latency": {"p50_ms": p.latency_ms, "p90_ms": p.latency_p90_ms},
                },
                constraints={"latency_over_budget_ms": p.latency_ms - 20.0},
            )
        )
    picks = pick(trials, BUDGETS, maximise=metric)
    rec: dict[str, Any] = {
        "study": "demo",
        "storage": "sqlite:///run/study.db",
        "latency_setup": {"device": "cpu", "threads": 1},
        "teacher": {"name": "tiny", "params": 22_700_000, "latency_ms": 39.1},
        "picks": [
            {
                **{k: getattr(pk, k) for k in ("budget_ms", "trial", "reason", "arch")},
                **{k: getattr(pk, k) for k in ("params", "proxy_loss", "latency_ms")},
                "final": {"loss": 0.4, "latency_ms": 7.0, "dir": "d"} if pk.trial == 1 else None,
            }
            for pk in picks
        ],
    }
    if reference:
        rec["reference"] = {
            "name": "hand-crafted",
            "arch_id": "L3-H256-A4-F1024",
            "params": 4_000_000,
            "latency_ms": 12.0,
            "proxy_loss": 0.45,
        }
    if evaluation is not None:
        rec["evaluation"] = evaluation
    (out / "recommendations.json").write_text(json.dumps(rec))
    return out


def test_load_run_reads_a_run_folder_back(tmp_path: Path) -> None:
    run = load_run(_stored_run(tmp_path))

    assert run.study.study_name == "demo"
    assert sorted(p.number for p in run.points) == [0, 1, 2, 3, 4, 5]
    assert {p.number for p in run.points if not p.feasible} == {4, 5}
    assert run.picks == pick(run.points, BUDGETS)
    assert run.references == [TEACHER] and run.teacher == TEACHER
    assert run.finals == {10.0: {"loss": 0.4, "latency_ms": 7.0, "dir": "d"}}
    assert run.summary["trials"] == "6" and run.summary["teacher"] == "tiny (22.7M params)"
    assert run.title == "paretokd study demo"
    assert len(figures(run.points, run.picks, run.references)) == 4
    assert (run.objective, run.maximise, run.evaluation) == ("loss", False, None)


def test_load_run_reads_the_hand_crafted_reference(tmp_path: Path) -> None:
    run = load_run(_stored_run(tmp_path, reference=True))
    hand = ReferencePoint("hand-crafted", latency_ms=12.0, loss=0.45, params=4_000_000)
    assert run.references == [TEACHER, hand]
    (mark,) = pareto_info(run.points, run.picks, run.references).references[1:]
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
    far = pick(POINTS, (500.0, 1000.0))
    info = pareto_info(POINTS, far, [TEACHER])
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

    lp = latency_params_info(POINTS, far, [TEACHER])
    assert lp.y_log
    lp_fig = latency_params_figure(lp)
    assert lp_fig.layout.yaxis.type == "log"
    assert {a.text: a.y for a in lp_fig.layout.annotations}["500ms budget"] == pytest.approx(
        np.log10(500.0)
    )

    # Budgets of the trials' own scale keep linear axes.
    near = pareto_info(POINTS, _picks(), [TEACHER])
    assert not near.x_log and pareto_figure(near).layout.xaxis.type is None
    assert not latency_params_info(POINTS, _picks(), [TEACHER]).y_log


# --- a study that maximises a task metric ---------------------------------------------------


# POINTS' trials with accuracy as objective 1: higher is better, untrained trials score 0.
METRIC_POINTS = [
    _point(0, _arch(1, 128, 2, 256), 3.0, 0.6, on_front=True),
    _point(3, _arch(4, 384, 8, 1536), 15.0, 0.9, on_front=True),
    _point(1, _arch(2, 256, 4, 512), 8.0, 0.8, on_front=True),
    _point(2, _arch(2, 192, 4, 512), 9.0, 0.7),
    _point(4, _arch(6, 384, 8, 1536), 30.0, WORST["accuracy"], feasible=False),
    _point(5, _arch(5, 384, 8, 1536), 25.0, WORST["accuracy"], feasible=False),
]


def _metric_picks() -> list[Pick]:
    return pick(METRIC_POINTS, BUDGETS, maximise=True)


def test_labels_default_to_the_proxy_loss(tmp_path: Path) -> None:
    drawn = figures(POINTS, _picks(), [TEACHER])
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
    drawn = figures(METRIC_POINTS, _metric_picks(), [TEACHER], objective="accuracy", maximise=True)

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

    text = _write(
        tmp_path,
        points=METRIC_POINTS,
        picks=_metric_picks(),
        objective="accuracy",
        maximise=True,
    ).read_text(encoding="utf-8")
    assert "<th>proxy accuracy</th>" in text and "proxy loss" not in text


def test_pareto_info_puts_untrained_trials_below_a_maximised_metric() -> None:
    info = pareto_info(
        METRIC_POINTS, _metric_picks(), [TEACHER], objective="accuracy", maximise=True
    )
    assert [p.trial for p in info.front] == [0, 1, 3]
    (row,) = {p.y for p in info.infeasible}
    feasible = [p.y for p in (*info.front, *info.dominated)]
    assert info.y_range[0] < row < min(feasible) and info.y_range[1] >= max(feasible)
    assert "accuracy: not trained" in info.infeasible[0].hover
    assert "accuracy 0.8" in next(p.hover for p in info.front if p.trial == 1)
    assert [(m.trial, m.y) for m in info.picks] == [(1, 0.8), (3, 0.9)]


def test_hypervolume_of_a_maximised_metric_by_hand() -> None:
    assert worst_value() == REFERENCE_LOSS and worst_value("matthews") == -1.0
    with pytest.raises(ParetokdError, match="unknown objective 'bleu'"):
        worst_value("bleu")
    ref = default_reference(METRIC_POINTS, BUDGETS, "accuracy")
    assert ref == (0.0, 20.0)
    assert hypervolume_2d([(0.6, 3.0)], ref, maximise=True) == pytest.approx(17 * 0.6)
    two = [(0.6, 3.0), (0.8, 8.0)]
    assert hypervolume_2d(two, ref, maximise=True) == pytest.approx(17 * 0.6 + 12 * 0.2)

    info = hypervolume_info(METRIC_POINTS, ref, objective="accuracy", maximise=True)
    assert info.ideal == METRIC_IDEAL and info.box == 20.0
    assert info.values[1] == pytest.approx(17 * 0.6 + 12 * 0.2)  # trials 0 and 1
    assert info.values[5] == info.values[3]  # untrained trials add nothing
    assert 0 < info.shares[-1] < 1


# --- the evaluation section -----------------------------------------------------------------


def _score(value: float, latency_ms: float, speedup: float | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "metric": "accuracy",
        "value": value,
        "examples": 872,
        "percent_of_teacher": 100.0 * value / 0.91,
        "latency_ms": latency_ms,
    }
    if speedup is not None:
        entry["speedup"] = speedup
    return entry


EVALUATION: dict[str, Any] = {
    "set": "dev.tsv <sentence → label>",
    "metric": "accuracy",
    "examples": 872,
    "teacher": _score(0.91, 39.1),
    "reference": _score(0.85, 20.0, 39.1 / 20.0),
    "picks": {"10ms": _score(0.80, 7.5, 39.1 / 7.5), "20ms": _score(0.88, 14.0, 39.1 / 14.0)},
}


def test_evaluation_info_rows() -> None:
    info = evaluation_info(EVALUATION)

    assert (info.description, info.metric, info.examples) == (
        "dev.tsv <sentence → label>",
        "accuracy",
        872,
    )
    assert [r.model for r in info.rows] == [
        "teacher",
        REFERENCE_MODEL,
        "pick for 10ms",
        "pick for 20ms",
    ]
    teacher, ref, p10, p20 = info.rows
    assert teacher == EvaluationRow("teacher", 0.91, 100.0, 39.1, 1.0)  # its speed-up: itself
    assert ref.value == 0.85 and ref.percent_of_teacher == pytest.approx(93.407, abs=1e-3)
    assert (p10.latency_ms, p10.speedup) == (7.5, pytest.approx(5.2133, abs=1e-4))
    assert p20.percent_of_teacher == pytest.approx(96.703, abs=1e-3)

    # No reference scored (a pick was the reference), a pick without a score.
    partial = {**EVALUATION, "reference": None, "picks": {"10ms": EVALUATION["picks"]["10ms"]}}
    assert [r.model for r in evaluation_info(partial).rows] == ["teacher", "pick for 10ms"]


def test_write_report_shows_the_evaluation_section(tmp_path: Path) -> None:
    text = _write(tmp_path, evaluation=EVALUATION).read_text(encoding="utf-8")

    section = text[text.index("<h2>Evaluation</h2>") : text.index("<h2>Figures</h2>")]
    assert "accuracy on dev.tsv &lt;sentence → label&gt; (872 examples)" in section
    assert "<th>accuracy</th><th>% of teacher</th>" in section
    rows = re.findall(r"<tr><td>.*</tr>", section)
    assert len(rows) == 4
    assert rows[0] == (
        '<tr><td>teacher</td><td class="num">0.9100</td><td class="num">100.0%</td>'
        '<td class="num">39.1</td><td class="num">1.0×</td></tr>'
    )
    assert f"<td>{REFERENCE_MODEL}</td>" in rows[1] and "93.4%" in rows[1] and "2.0×" in rows[1]
    assert "<td>pick for 10ms</td>" in rows[2] and "87.9%" in rows[2] and "5.2×" in rows[2]
    assert "96.7%" in rows[3] and "14.0" in rows[3] and "2.8×" in rows[3]
    assert text.index("<h2>Recommendations</h2>") < text.index("<h2>Evaluation</h2>")


def test_markdown_note_adds_the_evaluation_table() -> None:
    note = markdown_note(
        "Recommendations", _picks(), {}, TEACHER, objective="accuracy", evaluation=EVALUATION
    )
    lines = note.splitlines()
    assert "| budget | trial | architecture | params | proxy accuracy |" in note
    assert "### Evaluation: accuracy on dev.tsv <sentence → label> (872 examples)" in lines
    start = lines.index("| model | accuracy | % of teacher | p50 (ms) | speed-up vs teacher |")
    assert lines[start + 2] == "| teacher | 0.9100 | 100.0% | 39.1 | 1.0× |"
    assert lines[start + 4] == "| pick for 10ms | 0.8000 | 87.9% | 7.50 | 5.2× |"
    assert "Evaluation" not in markdown_note("Recommendations", _picks(), {}, TEACHER)


def test_load_run_reads_the_objective_and_the_evaluation(tmp_path: Path) -> None:
    run = load_run(_stored_run(tmp_path, reference=True, metric=True, evaluation=EVALUATION))

    assert (run.objective, run.maximise) == ("accuracy", True)
    assert objective_of(run.study) == ("accuracy", True)
    assert run.evaluation == EVALUATION
    assert run.picks == pick(run.points, BUDGETS, maximise=True)
    # The reference's proxy loss does not belong on the accuracy axis: a vertical line.
    assert run.references[1].loss is None
    drawn = run.figures()
    assert drawn[3].figure.data[0].dimensions[-1].label == "proxy accuracy"


def test_reference_point_takes_the_studys_objective() -> None:
    ref = {"name": "hand", "latency_ms": 12.0, "params": 4, "proxy_loss": 0.45}
    assert reference_point(ref).loss == 0.45
    assert reference_point(ref, "accuracy").loss is None
    assert reference_point({**ref, "proxy_metric": 0.82}, "accuracy").loss == 0.82
