"""Latency against parameter count: depth and width cost differently."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from paretokd.records import LOSS, Objective, Pick, TrialRecord
from paretokd.report.common import (
    COLORS,
    PARAMS_TITLE,
    X_TITLE,
    BudgetLine,
    ComparisonMark,
    ComparisonPoint,
    PickMarker,
    PlotPoint,
    _ann_x,
    _is_wide,
    add_comparison_markers,
    add_picks,
    add_trial_traces,
    budget_lines,
    comparison_hover,
    groups,
    layout,
    pick_markers,
)

if TYPE_CHECKING:
    import plotly.graph_objects as go


@dataclass(frozen=True)
class LatencyParamsInfo:
    """Latency against parameter count: ``x`` in millions of parameters, ``y`` in ms."""

    front: tuple[PlotPoint, ...]
    dominated: tuple[PlotPoint, ...]
    infeasible: tuple[PlotPoint, ...]
    budgets: tuple[BudgetLine, ...]
    """Horizontal lines, ascending."""
    picks: tuple[PickMarker, ...]
    comparisons: tuple[ComparisonMark, ...]
    """Compared models with a parameter count, drawn as diamonds."""
    y_log: bool = False
    """Latency on a log axis, as :attr:`~paretokd.report.ParetoInfo.x_log`."""

    @property
    def n_trials(self) -> int:
        """How many trial markers the figure draws."""
        return len(self.front) + len(self.dominated) + len(self.infeasible)


def latency_params_info(
    trials: Sequence[TrialRecord],
    picks: Sequence[Pick],
    comparisons: Sequence[ComparisonPoint],
    *,
    objective: Objective = LOSS,
) -> LatencyParamsInfo:
    """Compute latency against parameter count, without plotly.

    Args:
        trials: Every complete trial.
        picks: The recommendation per budget (budget lines and pick stars).
        comparisons: Models to compare with; those with a parameter count are drawn.
        objective: Objective 1, as the hovers show it.

    Returns:
        The figure's data, ``x`` in millions of parameters and ``y`` in ms.
    """
    counted = [r for r in comparisons if r.params > 0]
    ys = [t.latency_ms for t in trials] + [pk.budget_ms for pk in picks]
    ys += [r.latency_ms for r in counted]
    refs = tuple(
        ComparisonMark(
            name=r.name,
            x=r.params / 1e6,
            y=r.latency_ms,
            label=html.escape(r.name),
            hover=comparison_hover(r, objective),
        )
        for r in counted
    )
    return LatencyParamsInfo(
        *groups(trials, x=_mparams, y=_latency, objective=objective),
        budgets=budget_lines(picks),
        picks=pick_markers(trials, picks, x=_mparams, y=_latency, objective=objective),
        comparisons=refs,
        y_log=_is_wide(ys),
    )


def latency_params_figure(info: LatencyParamsInfo) -> go.Figure:
    """Draw latency against parameter count from :func:`latency_params_info`."""
    import plotly.graph_objects as go

    fig = go.Figure()
    add_trial_traces(fig, (info.front, info.dominated, info.infeasible), step_front=False)
    for b in info.budgets:
        line = {"dash": "dash", "color": COLORS["budget"], "width": 1.5}
        fig.add_hline(y=b.budget_ms, line=line)
        fig.add_annotation(
            x=0,
            xref="x domain",
            y=_ann_x(b.budget_ms, info.y_log),
            text=b.label,
            showarrow=False,
            xanchor="left",
            yanchor="bottom",
        )
    add_picks(fig, info.picks, annotate=False)
    add_comparison_markers(fig, list(info.comparisons))
    layout(fig, PARAMS_TITLE, X_TITLE)
    fig.update_layout(
        xaxis={"rangemode": "tozero"},
        yaxis={"type": "log"} if info.y_log else {"rangemode": "tozero"},
    )
    return fig


def _mparams(t: TrialRecord) -> float:
    return t.params / 1e6


def _latency(t: TrialRecord) -> float:
    return t.latency_ms
