"""The floor every figure stands on: colours, point types, axis and drawing helpers, formats.

Figures import this module and nothing of each other; the page imports the
figures. Nothing here imports plotly at module level (drawing helpers import it
when called), so importing the report stays cheap.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from paretokd.config import format_budget
from paretokd.records import Objective, Pick, RunRecord, TrialRecord

if TYPE_CHECKING:
    import plotly.graph_objects as go

X_TITLE = "Latency p50 (ms)"
Y_TITLE = "Distillation loss (proxy eval)"
PARAMS_TITLE = "Parameters (millions)"
FRONT_NAME = "Pareto front (feasible)"
DOMINATED_NAME = "dominated (feasible)"
INFEASIBLE_NAME = "over budget: not trained"
PICKS_NAME = "picks"
TRIAL_META = "trials"
"""``meta`` of the traces holding one marker per trial (front, dominated, infeasible)."""

PAD = 0.05  # fraction of the data span left blank around the plotted points
_LOG_RATIO = 30.0  # a latency axis spanning more than this factor is drawn logarithmic
_INFEASIBLE_NOTE = "over the largest budget: not trained"

COLORS = {
    "front": "rgb(31, 119, 180)",
    "dominated": "rgba(31, 119, 180, 0.35)",
    "infeasible": "rgb(150, 150, 150)",
    "budget": "rgb(214, 39, 40)",
    "pick": "rgb(255, 191, 0)",
    "comparison": "rgb(44, 160, 44)",
}


# --- point types ------------------------------------------------------------------------


@dataclass(frozen=True)
class ComparisonPoint:
    """A model to compare the students with: the teacher, the hand-crafted student."""

    name: str
    latency_ms: float
    value: float | None
    """Objective 1 on the proxy; None when the model has none (drawn as a vertical line)."""
    params: int


@dataclass(frozen=True)
class PlotPoint:
    """One trial as a figure draws it."""

    trial: int
    x: float
    y: float
    hover: str


@dataclass(frozen=True)
class BudgetLine:
    """A dashed line at a latency budget (vertical on the Pareto figure, else horizontal)."""

    budget_ms: float
    label: str


@dataclass(frozen=True)
class PickMarker:
    """A star on a picked trial; one per trial even when it wins several budgets."""

    trial: int
    budgets_ms: tuple[float, ...]
    x: float
    y: float
    label: str
    hover: str


@dataclass(frozen=True)
class ComparisonMark:
    """A compared model: a diamond when it has a ``y``, a dotted line at ``x`` when it has none."""

    name: str
    x: float
    y: float | None
    label: str
    hover: str


@dataclass(frozen=True)
class ReportFigure:
    """A drawn figure with what the report and the dashboard show around it."""

    id: str
    """Stable id (letters, digits, hyphens): the HTML id and the dashboard's graph id."""
    title: str
    caption: str
    figure: go.Figure

    def titled(self) -> go.Figure:
        """A copy of the figure with :attr:`title` on it, for places without a heading."""
        fig = self.figure.__class__(self.figure)
        top = fig.layout.margin.t if fig.layout.margin.t is not None else 40
        fig.update_layout(title={"text": self.title}, margin={"t": top + 30})
        return fig


def comparison_points(run: RunRecord) -> list[ComparisonPoint]:
    """The models the figures compare the trials with: the teacher, the hand-crafted
    student and the quantised teacher.

    All on the study's latency scale, as the trials are. The teacher has no
    objective 1 (a vertical line); the others have their
    :meth:`~paretokd.records.ReferenceStudent.value`, or a line when that is None
    (a proxy loss does not belong on a metric's axis).
    """
    teacher = run.teacher
    points = [ComparisonPoint("teacher", teacher.latency.p50_ms, None, teacher.params)]
    for ref in (run.reference, run.quantized_teacher):
        if ref is not None:
            value = ref.value(run.objective)
            points.append(ComparisonPoint(ref.name, ref.latency.p50_ms, value, ref.params))
    return points


# --- trials, budgets and picks as points ------------------------------------------------

Coordinate = Callable[[TrialRecord], float]
Groups = tuple[tuple[PlotPoint, ...], tuple[PlotPoint, ...], tuple[PlotPoint, ...]]


def groups(
    trials: Sequence[TrialRecord], *, x: Coordinate, y: Coordinate, objective: Objective
) -> Groups:
    """Front (sorted by x, then y), dominated and infeasible (in trial order)."""
    front: list[PlotPoint] = []
    dominated: list[PlotPoint] = []
    infeasible: list[PlotPoint] = []
    for t in trials:
        if not t.feasible:
            group, note = infeasible, _INFEASIBLE_NOTE
        elif t.on_front:
            group, note = front, "on the Pareto front"
        else:
            group, note = dominated, "dominated"
        hover = f"{trial_hover(t, objective)}<br>{note}"
        group.append(PlotPoint(t.number, float(x(t)), float(y(t)), hover))
    front.sort(key=lambda q: (q.x, q.y))
    dominated.sort(key=lambda q: q.trial)
    infeasible.sort(key=lambda q: q.trial)
    return tuple(front), tuple(dominated), tuple(infeasible)


def budget_lines(picks: Sequence[Pick]) -> tuple[BudgetLine, ...]:
    """One line per budget, ascending."""
    return tuple(
        BudgetLine(budget_ms=b, label=f"{format_budget(b)} budget")
        for b in sorted({pk.budget_ms for pk in picks})
    )


def pick_markers(
    trials: Sequence[TrialRecord],
    picks: Sequence[Pick],
    *,
    x: Coordinate,
    y: Coordinate,
    objective: Objective,
) -> tuple[PickMarker, ...]:
    """One star per picked trial, in budget order, naming every budget it won."""
    by_number = {t.number: t for t in trials}
    budgets_of: dict[int, list[float]] = {}
    for pk in picks:
        if pk.trial is not None:
            budgets_of.setdefault(pk.trial.number, []).append(pk.budget_ms)
    markers = []
    for pk in picks:
        if pk.trial is None or pk.trial.number not in budgets_of:
            continue
        won = tuple(budgets_of.pop(pk.trial.number))
        # A pick whose trial is not among ``trials`` (re-picked elsewhere) is placed by
        # the figures it carries itself.
        t = by_number.get(pk.trial.number, pk.trial)
        label = "pick for " + ", ".join(format_budget(b) for b in won)
        hover = f"{label}<br>{trial_hover(t, objective)}"
        markers.append(PickMarker(t.number, won, float(x(t)), float(y(t)), label, hover))
    return tuple(markers)


# --- hover texts and numbers ------------------------------------------------------------


def trial_hover(t: TrialRecord, objective: Objective) -> str:
    """A trial's hover: number, architecture, parameters, objective 1 and latencies."""
    name = objective.name
    value = f"{name} {t.value:.4g}" if t.feasible else f"{name}: not trained"
    p90 = t.latency.p90_ms
    tail = f", p90 {_ms(p90)} ms" if math.isfinite(p90) else ""
    return (
        f"trial {t.number}<br>{t.arch.id}<br>params {_mparams(t.params)}"
        f"<br>{value}<br>p50 {_ms(t.latency_ms)} ms{tail}"
    )


def comparison_hover(r: ComparisonPoint, objective: Objective) -> str:
    """A compared model's hover (its name escaped: hovers are plotly markup)."""
    hover = f"{html.escape(r.name)}<br>params {_mparams(r.params)}<br>p50 {_ms(r.latency_ms)} ms"
    if r.value is not None:
        hover += f"<br>{objective.name} {r.value:.4g}"
    return hover


def _mparams(n: int) -> str:
    return f"{n / 1e6:.2f} M"


def _ms(v: float) -> str:
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


# --- axes -------------------------------------------------------------------------------


def y_title(objective: Objective) -> str:
    """The title of objective 1's axis."""
    if objective.name == "loss" and not objective.maximise:
        return Y_TITLE
    better = "higher" if objective.maximise else "lower"
    return f"{objective.label.capitalize()} ({better} is better)"


def _is_wide(values: Iterable[float]) -> bool:
    positive = [v for v in values if math.isfinite(v) and v > 0]
    return len(positive) >= 2 and max(positive) > _LOG_RATIO * min(positive)


def _axis_range(values: Iterable[float], log: bool = False) -> tuple[float, float]:
    if log:
        positive = [v for v in values if math.isfinite(v) and v > 0]
        factor = (max(positive) / min(positive)) ** PAD  # the same share, in log space
        return (min(positive) / factor, max(positive) * factor)
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return (0.0, 1.0)
    lo, hi = min(finite), max(finite)
    # At least a few percent of the values themselves: near-equal values (two losses
    # of 0.4300 and 0.4301) must not blow a rounding difference up to the full height.
    pad = max((hi - lo) * PAD, abs(hi) * PAD) or 1.0
    # Latencies and losses are never negative: do not show a negative axis for padding.
    return (max(lo - pad, 0.0) if lo >= 0 else lo - pad, hi + pad)


def _ann_x(x: float, log: bool) -> float:
    """An annotation's coordinate for the value ``x`` on a linear or log axis."""
    # Plotly places annotations on a log axis by log10 of the value (shapes by the value).
    return math.log10(x) if log else x


# --- drawing ----------------------------------------------------------------------------


def vline(fig: go.Figure, x: float, label: str, log: bool, *, dash: str, color: str) -> None:
    """A vertical line at ``x`` labelled along its top, on a linear or log axis."""
    fig.add_vline(x=x, line={"dash": dash, "color": color, "width": 1.5 if dash == "dash" else 2})
    fig.add_annotation(
        x=_ann_x(x, log),
        y=1,
        yref="y domain",
        text=label,
        textangle=-90,
        showarrow=False,
        xanchor="right",
        yanchor="top",
    )


def layout(fig: go.Figure, x_title: str, y_title: str) -> None:
    """The look every scatter figure shares: white template, legend below, axis titles."""
    fig.update_layout(
        template="plotly_white",
        xaxis={"title": {"text": x_title}},
        yaxis={"title": {"text": y_title}},
        legend={"orientation": "h", "yanchor": "top", "y": -0.15, "xanchor": "left", "x": 0},
        margin={"t": 40},
        hovermode="closest",
    )


def add_trial_traces(fig: go.Figure, trials: Groups, *, step_front: bool) -> None:
    """One trace per non-empty group (so the legend only names what is on the plot)."""
    front, dominated, infeasible = trials
    if dominated:
        marker = {"color": COLORS["dominated"], "size": 8}
        fig.add_trace(_trial_trace(dominated, DOMINATED_NAME, marker))
    if infeasible:
        marker = {"color": COLORS["infeasible"], "size": 9, "symbol": "x"}
        fig.add_trace(_trial_trace(infeasible, INFEASIBLE_NAME, marker))
    if front:
        trace = _trial_trace(front, FRONT_NAME, {"color": COLORS["front"], "size": 10})
        if step_front:
            # A horizontal-then-vertical step draws the front as dominance works: a front
            # point's loss is the best on offer until the next, slower, front point lowers it.
            trace.update(mode="lines+markers", line={"shape": "hv", "color": COLORS["front"]})
        fig.add_trace(trace)


def add_picks(
    fig: go.Figure, picks: tuple[PickMarker, ...], *, annotate: bool, x_log: bool = False
) -> None:
    """Gold stars on the picked trials, labelled with their budgets when ``annotate``."""
    import plotly.graph_objects as go

    if not picks:
        return
    marker = {"symbol": "star", "size": 20, "color": COLORS["pick"]}
    marker["line"] = {"color": "black", "width": 1}
    fig.add_trace(
        go.Scatter(
            x=[m.x for m in picks],
            y=[m.y for m in picks],
            mode="markers",
            name=PICKS_NAME,
            meta="picks",
            hovertext=[m.hover for m in picks],
            hoverinfo="text",
            marker=marker,
        )
    )
    if annotate:
        for m in picks:
            x = _ann_x(m.x, x_log)
            fig.add_annotation(x=x, y=m.y, text=m.label, showarrow=True, arrowhead=2, ax=30, ay=-35)


def add_comparison_markers(fig: go.Figure, marks: Sequence[ComparisonMark]) -> None:
    """Green diamonds, labelled, for the comparisons that have a ``y``."""
    import plotly.graph_objects as go

    if not marks:
        return
    fig.add_trace(
        go.Scatter(
            x=[r.x for r in marks],
            y=[r.y for r in marks],
            mode="markers+text",
            # The legend's word for the teacher and the hand-crafted student, as before.
            name="references",
            meta="references",
            text=[r.label for r in marks],
            textposition="top center",
            hovertext=[r.hover for r in marks],
            hoverinfo="text",
            marker={"symbol": "diamond", "size": 12, "color": COLORS["comparison"]},
        )
    )


def _trial_trace(pts: tuple[PlotPoint, ...], name: str, marker: dict[str, Any]) -> go.Scatter:
    import plotly.graph_objects as go

    return go.Scatter(
        x=[p.x for p in pts],
        y=[p.y for p in pts],
        mode="markers",
        name=name,
        meta=TRIAL_META,
        customdata=[p.trial for p in pts],
        hovertext=[p.hover for p in pts],
        hoverinfo="text",
        marker=marker,
    )
