"""Objective 1 against latency: every trial, the budgets, the picks and the comparisons."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from paretokd.records import LOSS, Objective, Pick, TrialRecord
from paretokd.report.common import (
    COLORS,
    PAD,
    X_TITLE,
    BudgetLine,
    ComparisonMark,
    ComparisonPoint,
    PickMarker,
    PlotPoint,
    _axis_range,
    _is_wide,
    _ms,
    add_comparison_markers,
    add_picks,
    add_trial_traces,
    budget_lines,
    comparison_hover,
    groups,
    layout,
    pick_markers,
    vline,
    y_title,
)

if TYPE_CHECKING:
    import plotly.graph_objects as go


@dataclass(frozen=True)
class ParetoInfo:
    """Everything the Pareto figure draws, as plain data."""

    front: tuple[PlotPoint, ...]
    """Feasible trials on the Pareto front, sorted by latency (then objective 1)."""
    dominated: tuple[PlotPoint, ...]
    """Feasible trials off the front, in trial order."""
    infeasible: tuple[PlotPoint, ...]
    """Trials over the largest budget, in trial order. They were never trained, so
    their objective says nothing: when feasible trials exist they are drawn on a row
    at the worse edge (``y`` is that row: the top for a loss, the bottom for a
    maximised metric), so they do not squash the front."""
    budgets: tuple[BudgetLine, ...]
    """One line per budget, ascending."""
    picks: tuple[PickMarker, ...]
    """One marker per picked trial, in budget order; budgets without a pick have none."""
    comparisons: tuple[ComparisonMark, ...]
    x_range: tuple[float, float]
    """In ms, also when :attr:`x_log`."""
    y_range: tuple[float, float]
    x_log: bool = False
    """Latency on a log axis: the trials, budgets and comparisons span more than 30×
    (e.g. budgets far above every trial), which a linear axis squeezes into a corner."""
    objective: Objective = LOSS
    """Objective 1 (the ``y`` axis)."""
    precision_fronts: tuple[tuple[str, tuple[tuple[float, float], ...]], ...] = ()
    """With students of several precisions: each precision's own front, (ms, value) by
    latency, so the fp32 and int8 fronts can be compared; empty otherwise."""

    @property
    def n_trials(self) -> int:
        """How many trial markers the figure draws (equals the number of trials given)."""
        return len(self.front) + len(self.dominated) + len(self.infeasible)


def pareto_info(
    trials: Sequence[TrialRecord],
    picks: Sequence[Pick],
    comparisons: Sequence[ComparisonPoint],
    *,
    objective: Objective = LOSS,
) -> ParetoInfo:
    """Compute what the Pareto figure draws, without plotly.

    Args:
        trials: Every complete trial (see :func:`paretokd.search.recommend.trials`).
        picks: The recommendation per budget (see :func:`paretokd.search.recommend.pick`).
        comparisons: Models to compare with (see :func:`paretokd.report.comparison_points`).
        objective: Objective 1: untrained trials sit at its worse edge.

    Returns:
        The figure's data: trials split into front, dominated and infeasible,
        budget lines, pick markers, comparison marks and axis ranges.
    """
    refs = tuple(_comparison_mark(r, objective) for r in comparisons)
    feasible = [t for t in trials if t.feasible]
    budgets = budget_lines(picks)
    xs = [t.latency_ms for t in trials] + [b.budget_ms for b in budgets] + [r.x for r in refs]
    ys = [t.value for t in feasible] + [r.y for r in refs if r.y is not None]
    if feasible:
        # Untrained trials sit on a row at the worse edge instead of stretching the axis
        # to the untrained value, which would flatten the front that matters.
        lo, hi = _axis_range(ys)
        if objective.maximise:
            row, y_range = lo, (lo - (hi - lo) * PAD, hi)
        else:
            row, y_range = hi, (lo, hi + (hi - lo) * PAD)
    else:
        y_range = _axis_range(ys + [t.value for t in trials])
        row = math.nan  # unused: infeasible trials are drawn at their own value

    def y_of(t: TrialRecord) -> float:
        return t.value if t.feasible or not feasible else row

    x_log = _is_wide(xs)
    return ParetoInfo(
        *groups(trials, x=_latency, y=y_of, objective=objective),
        budgets=budgets,
        picks=pick_markers(trials, picks, x=_latency, y=_value, objective=objective),
        comparisons=refs,
        x_range=_axis_range(xs, log=x_log),
        y_range=y_range,
        x_log=x_log,
        objective=objective,
        precision_fronts=precision_fronts(feasible, objective),
    )


def precision_fronts(
    feasible: Sequence[TrialRecord], objective: Objective
) -> tuple[tuple[str, tuple[tuple[float, float], ...]], ...]:
    """Per precision (when there are several), the trials no faster one beats, by latency."""
    precisions = sorted({t.arch.precision for t in feasible})
    if len(precisions) < 2:
        return ()
    out = []
    for precision in precisions:
        front: list[tuple[float, float]] = []
        for t in sorted(
            (t for t in feasible if t.arch.precision == precision),
            key=lambda t: (t.latency_ms, objective.sort_key(t.value)),
        ):
            if not front or objective.better(t.value, front[-1][1]):
                front.append((t.latency_ms, t.value))
        out.append((precision, tuple(front)))
    return tuple(out)


def pareto_figure(info: ParetoInfo) -> go.Figure:
    """Draw the Pareto figure from :func:`pareto_info`.

    Trial traces carry ``meta="trials"`` (see :data:`~paretokd.report.TRIAL_META`)
    so that a reader can count one marker per trial.
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    add_trial_traces(fig, (info.front, info.dominated, info.infeasible), step_front=True)
    dashes = ("dot", "dash", "dashdot")  # fp16 / fp32 / int8, in sorted order
    for (precision, points), dash in zip(info.precision_fronts, dashes, strict=False):
        fig.add_trace(
            go.Scatter(
                x=[x for x, _ in points],
                y=[y for _, y in points],
                mode="lines",
                name=f"front, {precision} students",
                line={"shape": "hv", "dash": dash, "color": COLORS["front"], "width": 1},
                hoverinfo="skip",
            )
        )
    for b in info.budgets:
        vline(fig, b.budget_ms, b.label, info.x_log, dash="dash", color=COLORS["budget"])
    add_picks(fig, info.picks, annotate=True, x_log=info.x_log)
    add_comparison_markers(fig, [r for r in info.comparisons if r.y is not None])
    for r in info.comparisons:
        if r.y is None:
            vline(fig, r.x, r.label, info.x_log, dash="dot", color=COLORS["comparison"])
    layout(fig, X_TITLE, y_title(info.objective))
    lo, hi = info.x_range
    fig.update_layout(
        xaxis={"range": [math.log10(lo), math.log10(hi)] if info.x_log else [lo, hi]}
        | ({"type": "log"} if info.x_log else {}),
        yaxis={"range": list(info.y_range)},
    )
    return fig


def _comparison_mark(r: ComparisonPoint, objective: Objective) -> ComparisonMark:
    label = f"{html.escape(r.name)} {_ms(r.latency_ms)} ms"  # plotly markup: escape user text
    hover = comparison_hover(r, objective)
    return ComparisonMark(r.name, x=r.latency_ms, y=r.value, label=label, hover=hover)


def _latency(t: TrialRecord) -> float:
    return t.latency_ms


def _value(t: TrialRecord) -> float:
    return t.value
