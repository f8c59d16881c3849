"""A parallel-coordinates view of the sampled architectures and what they measured."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from paretokd.records import LOSS, Objective, TrialRecord
from paretokd.report.common import COLORS

if TYPE_CHECKING:
    import plotly.graph_objects as go


@dataclass(frozen=True)
class Axis:
    """One axis of the parallel-coordinates view."""

    label: str
    values: tuple[float, ...]
    ticks: tuple[float, ...] | None = None
    """Tick positions: the choices of a categorical dimension; None lets plotly choose."""


@dataclass(frozen=True)
class ArchitecturesInfo:
    """The parallel-coordinates view: one line per complete trial, in trial order."""

    trials: tuple[int, ...]
    axes: tuple[Axis, ...]
    values: tuple[float | None, ...]
    """The line colour: objective 1, or None for a trial that was not trained (grey)."""
    value_range: tuple[float, float] | None
    """Smallest and largest objective 1 of the trained trials; None when none was trained."""
    objective: Objective = LOSS
    """When maximised, the colour scale is reversed, so that dark (salient) is always
    the better value."""


def architectures_info(
    trials: Sequence[TrialRecord], *, objective: Objective = LOSS
) -> ArchitecturesInfo:
    """Compute the parallel-coordinates view of the sampled architectures.

    Axes: the four architecture choices (ticks at the values the study sampled),
    parameters (millions), latency p50 (ms) and objective 1 (``proxy loss``,
    ``proxy accuracy``, ...). Untrained trials keep their untrained value
    (:attr:`Objective.worst`) on that axis but get no colour.

    Args:
        trials: Every complete trial.
        objective: Objective 1 (the last axis; the colours follow its direction).
    """
    ordered = sorted(trials, key=lambda t: t.number)
    archs = [t.arch for t in ordered]

    def categorical(label: str, values: list[int]) -> Axis:
        return Axis(
            label, tuple(float(v) for v in values), tuple(float(v) for v in sorted(set(values)))
        )

    trained = [t.value for t in ordered if t.feasible]
    return ArchitecturesInfo(
        trials=tuple(t.number for t in ordered),
        axes=(
            # Short labels: seven axes share the width of a half-page dashboard card.
            categorical("layers", [a.num_layers for a in archs]),
            categorical("hidden", [a.hidden_size for a in archs]),
            categorical("heads", [a.num_heads for a in archs]),
            categorical("FFN", [a.intermediate_size for a in archs]),
            Axis("params (M)", tuple(t.params / 1e6 for t in ordered)),
            Axis("p50 (ms)", tuple(t.latency_ms for t in ordered)),
            Axis(objective.label, tuple(t.value for t in ordered)),
        ),
        values=tuple(t.value if t.feasible else None for t in ordered),
        value_range=(min(trained), max(trained)) if trained else None,
        objective=objective,
    )


def architectures_figure(info: ArchitecturesInfo) -> go.Figure:
    """Draw the parallel-coordinates view from :func:`architectures_info` (``go.Parcoords``)."""
    import plotly.graph_objects as go

    dims = [
        {"label": a.label, "values": list(a.values)}
        | ({"tickvals": list(a.ticks), "ticktext": [f"{t:g}" for t in a.ticks]} if a.ticks else {})
        for a in info.axes
    ]
    fig = go.Figure(go.Parcoords(dimensions=dims, line=_line(info), meta="architectures"))
    # Parcoords writes its axis labels above the plot area: leave them room.
    fig.update_layout(template="plotly_white", margin={"t": 80, "l": 60, "r": 40})
    return fig


def _line(info: ArchitecturesInfo) -> dict[str, Any]:
    """The lines' colours: objective 1 on Viridis, grey for the untrained."""
    label = info.objective.label
    if info.value_range is None:
        return {"color": COLORS["infeasible"]}
    if all(v is not None for v in info.values):
        return {
            "color": list(info.values),
            "colorscale": "Viridis_r" if info.objective.maximise else "Viridis",
            "cmin": info.value_range[0],
            "cmax": info.value_range[1],
            "showscale": True,
            "colorbar": {"title": {"text": label}},
        }
    scale, cmin, cmax, untrained = _scale_with_grey(info.value_range, info.objective.maximise)
    return {
        "color": [v if v is not None else untrained for v in info.values],
        "colorscale": scale,
        "cmin": cmin,
        "cmax": cmax,
        "showscale": True,
        "colorbar": {"title": {"text": f"{label}<br>(grey: not trained)"}},
    }


def _scale_with_grey(
    value_range: tuple[float, float], maximise: bool
) -> tuple[list[list[Any]], float, float, float]:
    """Viridis for the trained trials plus a grey slot just past their worst value.

    Parcoords colours lines by one number, so the untrained ones get a value above
    the largest loss, or below the smallest metric, that the scale paints grey.
    Dark (salient) is the better value: a low loss, or a high metric (reversed scale).

    Returns:
        The colour scale, its ``cmin`` and ``cmax``, and the untrained lines' value.
    """
    import plotly.colors

    grey = COLORS["infeasible"]
    viridis = list(plotly.colors.sequential.Viridis)
    if maximise:
        viridis.reverse()
    lo, hi = value_range
    span = hi - lo if hi > lo else 1.0
    n = len(viridis) - 1
    if maximise:
        untrained = lo - span / 19  # the bottom 5% of the colour bar
        share = (hi - lo) / (hi - untrained) if hi > lo else 0.95
        start = 1 - share
        scale: list[list[Any]] = [[0.0, grey], [max(start - 1e-6, 0.0), grey]]
        scale += [[start + share * i / n, c] for i, c in enumerate(viridis)]
        return scale, untrained, hi, untrained
    untrained = hi + span / 19  # the top 5% of the colour bar
    share = (hi - lo) / (untrained - lo) if hi > lo else 0.95
    scale = [[share * i / n, c] for i, c in enumerate(viridis)]
    scale += [[min(share + 1e-6, 1.0), grey], [1.0, grey]]
    return scale, lo, untrained, untrained
