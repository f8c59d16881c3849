"""The final distillations' held-out curves: where each shipped student's weights come from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from paretokd.records import RunRecord
from paretokd.report.common import COLORS, layout

if TYPE_CHECKING:
    import plotly.graph_objects as go


@dataclass(frozen=True)
class Curve:
    """One final student's held-out proxy loss against its training steps."""

    label: str
    """Its folder and architecture (``10ms: L3-H384-A12-F1536-int8``)."""
    steps: tuple[int, ...]
    losses: tuple[float, ...]
    best_step: int | None
    """The step whose weights it ships."""


def curves_info(run: RunRecord) -> list[Curve]:
    """The curve of every final student that recorded one, in the run's order."""
    return [
        Curve(
            f"{f.folder}: {f.arch.id}",
            tuple(s for s, _ in f.curve),
            tuple(v for _, v in f.curve),
            f.best_step,
        )
        for f in run.finals
        if f.curve
    ]


def curves_figure(curves: list[Curve]) -> go.Figure:
    """Draw :func:`curves_info`: a line per student, a star on the step it ships."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for c in curves:
        fig.add_trace(
            go.Scatter(x=list(c.steps), y=list(c.losses), mode="lines+markers", name=c.label)
        )
        if c.best_step is not None and c.best_step in c.steps:
            best = c.losses[c.steps.index(c.best_step)]
            fig.add_trace(
                go.Scatter(
                    x=[c.best_step],
                    y=[best],
                    mode="markers",
                    marker={"symbol": "star", "size": 14, "color": COLORS["pick"]},
                    name=f"{c.label}, kept",
                    showlegend=False,
                    hovertext=f"{c.label}<br>kept: step {c.best_step}, loss {best:.4f}",
                    hoverinfo="text",
                )
            )
    layout(fig, "Final distillation step", "Held-out proxy loss")
    return fig
