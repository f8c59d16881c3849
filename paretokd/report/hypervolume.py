"""How much of the objective-latency box the search had covered after each trial."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from paretokd.records import LOSS, Objective, TrialRecord
from paretokd.report.common import COLORS, layout

if TYPE_CHECKING:
    import plotly.graph_objects as go


@dataclass(frozen=True)
class HypervolumeInfo:
    """The hypervolume of the feasible trials found so far, after each complete trial."""

    corner: tuple[float, float]
    """(objective 1, latency in ms): the box's far corner, an untrained student at the budget."""
    trials: tuple[int, ...]
    """Trial numbers, ascending."""
    values: tuple[float, ...]
    """Hypervolume (objective × ms) of the trials up to and including each trial."""
    objective: Objective = LOSS

    @property
    def ideal(self) -> float:
        """The best value objective 1 can take: 0 for a loss, 1 for a task metric."""
        return self.objective.ideal

    @property
    def box(self) -> float:
        """The area of the box from the ideal to the corner: the largest possible value."""
        return abs(self.corner[0] - self.ideal) * self.corner[1]

    @property
    def shares(self) -> tuple[float, ...]:
        """``values`` as a share of :attr:`box` (0 to 1)."""
        return tuple(v / self.box if self.box > 0 else 0.0 for v in self.values)


def hypervolume_2d(
    values: Iterable[tuple[float, float]], corner: tuple[float, float], maximise: bool = False
) -> float:
    """The area dominated by ``values`` (objective 1, latency) inside the box up to ``corner``.

    Latency is minimised; objective 1 is minimised (the box lies below
    ``corner``) or, with ``maximise``, maximised (the box lies above it).
    A sweep over latency: each point that improves on the best value so far adds
    the strip between its value and that best value, from its latency to the corner.
    """
    if maximise:  # the same area, with objective 1 mirrored into a minimised one
        values = [(-v, ms) for v, ms in values]
        corner = (-corner[0], corner[1])
    ref_loss, ref_ms = corner
    inside = sorted((ms, loss) for loss, ms in values if loss < ref_loss and ms < ref_ms)
    area, best = 0.0, ref_loss
    for ms, loss in inside:
        if loss < best:
            area += (ref_ms - ms) * (best - loss)
            best = loss
    return area


def default_corner(
    trials: Sequence[TrialRecord], budgets: Sequence[float], objective: Objective = LOSS
) -> tuple[float, float]:
    """The box's natural far corner: an untrained student at the largest budget.

    An untrained student scores :attr:`Objective.worst` (a loss of 1, a metric's
    lowest value). Without budgets, the slowest trial's latency stands in for the
    largest budget.
    """
    if budgets:
        return (objective.worst, max(budgets))
    latencies = [t.latency_ms for t in trials]
    return (objective.worst, max(latencies) if latencies else 1.0)


def hypervolume_info(
    trials: Sequence[TrialRecord],
    corner: tuple[float, float] | None = None,
    *,
    objective: Objective = LOSS,
) -> HypervolumeInfo:
    """The hypervolume of the trials found so far, after each complete trial.

    The hypervolume is the area of the (objective 1, latency) plane that the
    trials dominate inside the box; it grows whenever a trial extends
    the front. Trials outside the box (slower than the largest budget, or no
    better than an untrained student) add nothing, so untrained trials never count.

    Args:
        trials: Every complete trial.
        corner: (objective 1, latency in ms) bounding the box; by default
            :func:`default_corner` with no budgets (the slowest trial).
        objective: Objective 1, which says which side of the corner the box lies.

    Returns:
        The history, in trial order.
    """
    ref = corner or default_corner(trials, (), objective)
    ordered = sorted(trials, key=lambda t: t.number)
    values = []
    seen: list[tuple[float, float]] = []
    for t in ordered:
        seen.append((t.value, t.latency_ms))
        values.append(hypervolume_2d(seen, ref, maximise=objective.maximise))
    return HypervolumeInfo(
        corner=ref,
        trials=tuple(t.number for t in ordered),
        values=tuple(values),
        objective=objective,
    )


def hypervolume_figure(info: HypervolumeInfo) -> go.Figure:
    """Draw the hypervolume history from :func:`hypervolume_info`, as a share of the box."""
    import plotly.graph_objects as go

    unit = f"{info.objective.name}·ms"
    hover = [
        f"after trial {n}<br>{100 * s:.1f}% of the box<br>hypervolume {v:.4g} {unit}"
        for n, s, v in zip(info.trials, info.shares, info.values, strict=True)
    ]
    fig = go.Figure(
        go.Scatter(
            x=list(info.trials),
            y=[100 * s for s in info.shares],
            mode="lines+markers",
            line={"shape": "hv", "color": COLORS["front"]},
            name="hypervolume",
            meta="hypervolume",
            hovertext=hover,
            hoverinfo="text",
        )
    )
    layout(fig, "Trial number", "Hypervolume (% of the box)")
    # Trial numbers are whole: no ticks at 0.5 on a short study.
    xaxis = {"dtick": 1} if len(info.trials) <= 20 else {}
    fig.update_layout(xaxis=xaxis, yaxis={"rangemode": "tozero"}, showlegend=False)
    return fig
