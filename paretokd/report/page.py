"""The study report: figures of the search and the picks, as one self-contained HTML file.

As in Optuna's ``visualization/_pareto_front.py``, every figure is computed
first (``*_info`` functions returning plain data that the tests check directly)
and drawn second (``*_figure`` functions, plotly only). plotly is imported
inside the drawing functions so that importing this module (e.g. from the CLI)
stays cheap.

The figures:

- :func:`pareto_info` / :func:`pareto_figure`: objective 1 against latency, every
  trial, the budgets, the picks and the references (teacher, hand-crafted students);
- :func:`hypervolume_info` / :func:`hypervolume_figure`: how much of the
  objective-latency box the search had covered after each trial;
- :func:`latency_params_info` / :func:`latency_params_figure`: latency against
  parameter count;
- :func:`architectures_info` / :func:`architectures_figure`: a parallel-coordinates
  view of the sampled architectures.

:func:`figures` builds them all; :func:`write_report` writes them with the table
of picks and, when the run scored its students on an evaluation set, the table of
:func:`evaluation_info`; :func:`load_run` reads a finished run folder back (for notebooks).

Objective 1 of a study is the proxy loss (minimised, the default) or a task
metric such as accuracy (maximised). Functions that label or colour it take
``objective`` (its name: ``"loss"``, ``"accuracy"``, ...) and ``maximise``;
:func:`objective_of` reads both from a study. The :class:`~paretokd.recommend.TrialPoint`
and :class:`~paretokd.recommend.Pick` fields named ``loss`` hold objective 1 either way.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paretokd import files
from paretokd.config import format_budget
from paretokd.errors import ParetokdError
from paretokd.metrics import UNTRAINED_LOSS, worst
from paretokd.search.recommend import Pick, TrialPoint
from paretokd.records import Arch

if TYPE_CHECKING:
    import optuna
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

REFERENCE_LOSS = UNTRAINED_LOSS
"""The hypervolume's reference loss: what an untrained student scores."""

METRIC_IDEAL = 1.0
"""The best value of every task metric (:mod:`paretokd.metrics`): the far corner of the
hypervolume's box when objective 1 is maximised (a loss's is 0)."""

_PAD = 0.05  # fraction of the data span left blank around the plotted points
_LOG_RATIO = 30.0  # a latency axis spanning more than this factor is drawn logarithmic
_INFEASIBLE_NOTE = "over the largest budget: not trained"

_COLORS = {
    "front": "rgb(31, 119, 180)",
    "dominated": "rgba(31, 119, 180, 0.35)",
    "infeasible": "rgb(150, 150, 150)",
    "budget": "rgb(214, 39, 40)",
    "pick": "rgb(255, 191, 0)",
    "reference": "rgb(44, 160, 44)",
}


def objective_label(objective: str = "loss") -> str:
    """How tables, axes and colour bars name objective 1: ``"proxy loss"``, ``"proxy accuracy"``."""
    return f"proxy {objective}"


def worst_value(objective: str = "loss") -> float:
    """Objective 1 of a student that was never trained: the hypervolume's reference
    (see :func:`paretokd.metrics.worst`)."""
    return worst(objective)


def objective_of(study: optuna.Study) -> tuple[str, bool]:
    """Objective 1 of ``study``: its name and whether it is maximised.

    The name is ``study.metric_names[0]`` (set when paretokd creates a study),
    ``"loss"`` for a study without metric names.
    """
    import optuna

    names = study.metric_names
    maximise = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    return (names[0] if names else "loss", maximise)


def _y_title(objective: str, maximise: bool) -> str:
    if objective == "loss" and not maximise:
        return Y_TITLE
    better = "higher" if maximise else "lower"
    return f"{objective_label(objective).capitalize()} ({better} is better)"


@dataclass(frozen=True)
class ReferencePoint:
    """A model to compare the students with: the teacher, a hand-crafted student, ..."""

    name: str
    latency_ms: float
    loss: float | None
    """Objective 1 on the proxy (a loss, or the study's task metric); None when the
    reference has none (drawn as a vertical line)."""
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
class ReferenceMark:
    """A reference: a diamond when it has a ``y``, a dotted line at ``x`` when it has none."""

    name: str
    x: float
    y: float | None
    label: str
    hover: str


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
    references: tuple[ReferenceMark, ...]
    x_range: tuple[float, float]
    """In ms, also when :attr:`x_log`."""
    y_range: tuple[float, float]
    x_log: bool = False
    """Latency on a log axis: the trials, budgets and references span more than 30×
    (e.g. budgets far above every trial), which a linear axis squeezes into a corner."""
    objective: str = "loss"
    """Objective 1's name (the ``y`` axis)."""
    maximise: bool = False
    """Objective 1 is better when higher."""

    @property
    def n_trials(self) -> int:
        """How many trial markers the figure draws (equals the number of points given)."""
        return len(self.front) + len(self.dominated) + len(self.infeasible)


@dataclass(frozen=True)
class HypervolumeInfo:
    """The hypervolume of the feasible trials found so far, after each complete trial."""

    reference: tuple[float, float]
    """(objective 1, latency in ms): an untrained student at the largest budget."""
    trials: tuple[int, ...]
    """Trial numbers, ascending."""
    values: tuple[float, ...]
    """Hypervolume (objective × ms) of the trials up to and including each trial."""
    objective: str = "loss"
    maximise: bool = False
    ideal: float = 0.0
    """The best value objective 1 can take: 0 for a loss, :data:`METRIC_IDEAL` for a metric."""

    @property
    def box(self) -> float:
        """The area of the box from the ideal to the reference: the largest possible value."""
        return abs(self.reference[0] - self.ideal) * self.reference[1]

    @property
    def shares(self) -> tuple[float, ...]:
        """``values`` as a share of :attr:`box` (0 to 1)."""
        return tuple(v / self.box if self.box > 0 else 0.0 for v in self.values)


@dataclass(frozen=True)
class LatencyParamsInfo:
    """Latency against parameter count: ``x`` in millions of parameters, ``y`` in ms."""

    front: tuple[PlotPoint, ...]
    dominated: tuple[PlotPoint, ...]
    infeasible: tuple[PlotPoint, ...]
    budgets: tuple[BudgetLine, ...]
    """Horizontal lines, ascending."""
    picks: tuple[PickMarker, ...]
    references: tuple[ReferenceMark, ...]
    """References with a parameter count, drawn as diamonds."""
    y_log: bool = False
    """Latency on a log axis, as :attr:`ParetoInfo.x_log`."""

    @property
    def n_trials(self) -> int:
        """How many trial markers the figure draws."""
        return len(self.front) + len(self.dominated) + len(self.infeasible)


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
    loss: tuple[float | None, ...]
    """The line colour: objective 1, or None for a trial that was not trained (grey)."""
    loss_range: tuple[float, float] | None
    """Smallest and largest objective 1 of the trained trials; None when none was trained."""
    objective: str = "loss"
    maximise: bool = False
    """Objective 1 is better when higher: the colour scale is reversed, so that dark
    (salient) is always the better value."""


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


def pareto_info(
    points: list[TrialPoint],
    picks: list[Pick],
    references: list[ReferencePoint],
    *,
    objective: str = "loss",
    maximise: bool = False,
) -> ParetoInfo:
    """Compute what the Pareto figure draws, without plotly.

    Args:
        points: Every complete trial (see :func:`paretokd.recommend.points`).
        picks: The recommendation per budget (see :func:`paretokd.recommend.pick`).
        references: Models to compare with, such as the teacher.
        objective: Objective 1's name: ``"loss"`` or a task metric.
        maximise: Objective 1 is better when higher (untrained trials sit at the bottom).

    Returns:
        The figure's data: trials split into front, dominated and infeasible,
        budget lines, pick markers, reference marks and axis ranges.
    """
    refs = []
    for r in references:
        name = html.escape(r.name)  # labels and hovers are plotly markup: escape user text
        label = f"{name} {_ms(r.latency_ms)} ms"
        hover = _reference_hover(r, objective)
        refs.append(ReferenceMark(r.name, x=r.latency_ms, y=r.loss, label=label, hover=hover))
    feasible = [p for p in points if p.feasible]
    xs = [p.latency_ms for p in points] + [b.budget_ms for b in _budget_lines(picks)]
    xs += [r.x for r in refs]
    ys = [p.loss for p in feasible] + [r.y for r in refs if r.y is not None]
    if feasible:
        # Untrained trials sit on a row at the worse edge instead of stretching the axis
        # to the untrained value, which would flatten the front that matters.
        lo, hi = _axis_range(ys)
        if maximise:
            row, y_range = lo, (lo - (hi - lo) * _PAD, hi)
        else:
            row, y_range = hi, (lo, hi + (hi - lo) * _PAD)
    else:
        y_range = _axis_range(ys + [p.loss for p in points])
        row = math.nan  # unused: infeasible trials are drawn at their own value

    def y_of(p: TrialPoint) -> float:
        return p.loss if p.feasible or not feasible else row

    groups = _groups(points, x=lambda p: p.latency_ms, y=y_of, objective=objective)
    return ParetoInfo(
        front=groups[0],
        dominated=groups[1],
        infeasible=groups[2],
        budgets=_budget_lines(picks),
        picks=_pick_markers(
            points, picks, x=lambda p: p.latency_ms, y=lambda p: p.loss, objective=objective
        ),
        references=tuple(refs),
        x_range=_axis_range(xs, log=_is_wide(xs)),
        y_range=y_range,
        x_log=_is_wide(xs),
        objective=objective,
        maximise=maximise,
    )


def pareto_figure(info: ParetoInfo) -> go.Figure:
    """Draw the Pareto figure from :func:`pareto_info`.

    Trial traces carry ``meta="trials"`` (see :data:`TRIAL_META`) so that a
    reader can count one marker per trial.

    Args:
        info: The computed figure data.

    Returns:
        A plotly figure.
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    _add_trial_traces(fig, info.front, info.dominated, info.infeasible, step_front=True)
    for b in info.budgets:
        _vline(fig, b.budget_ms, b.label, info.x_log, dash="dash", color=_COLORS["budget"])
    _add_picks(fig, info.picks, annotate=True, x_log=info.x_log)
    _add_reference_markers(fig, [r for r in info.references if r.y is not None])
    for r in info.references:
        if r.y is None:
            _vline(fig, r.x, r.label, info.x_log, dash="dot", color=_COLORS["reference"])
    _layout(fig, X_TITLE, _y_title(info.objective, info.maximise))
    lo, hi = info.x_range
    fig.update_layout(
        xaxis={"range": [math.log10(lo), math.log10(hi)] if info.x_log else [lo, hi]}
        | ({"type": "log"} if info.x_log else {}),
        yaxis={"range": list(info.y_range)},
    )
    return fig


def hypervolume_info(
    points: list[TrialPoint],
    reference: tuple[float, float] | None = None,
    *,
    objective: str = "loss",
    maximise: bool = False,
) -> HypervolumeInfo:
    """The hypervolume of the trials found so far, after each complete trial.

    The hypervolume is the area of the (objective 1, latency) plane that the
    trials dominate inside the reference box; it grows whenever a trial extends
    the front. Trials outside the box (slower than the largest budget, or no
    better than an untrained student) add nothing, so untrained trials never count.

    Args:
        points: Every complete trial.
        reference: (objective 1, latency in ms) bounding the box; by default
            :func:`default_reference` with no budgets (the slowest trial).
        objective: Objective 1's name: ``"loss"`` or a task metric.
        maximise: Objective 1 is better when higher.

    Returns:
        The history, in trial order.
    """
    ref = reference or default_reference(points, (), objective)
    ordered = sorted(points, key=lambda p: p.number)
    values = []
    seen: list[tuple[float, float]] = []
    for p in ordered:
        seen.append((p.loss, p.latency_ms))
        values.append(hypervolume_2d(seen, ref, maximise=maximise))
    return HypervolumeInfo(
        reference=ref,
        trials=tuple(p.number for p in ordered),
        values=tuple(values),
        objective=objective,
        maximise=maximise,
        ideal=METRIC_IDEAL if maximise else 0.0,
    )


def default_reference(
    points: list[TrialPoint], budgets: Sequence[float], objective: str = "loss"
) -> tuple[float, float]:
    """The natural reference point: an untrained student at the largest budget.

    An untrained student scores :func:`worst_value` (a loss of 1, a metric's
    lowest value). Without budgets, the slowest trial's latency stands in for the
    largest budget.
    """
    worst = worst_value(objective)
    if budgets:
        return (worst, max(budgets))
    latencies = [p.latency_ms for p in points]
    return (worst, max(latencies) if latencies else 1.0)


def hypervolume_2d(
    values: Iterable[tuple[float, float]], reference: tuple[float, float], maximise: bool = False
) -> float:
    """The area dominated by ``values`` (objective 1, latency) inside the reference box.

    Latency is minimised; objective 1 is minimised (the box lies below
    ``reference``) or, with ``maximise``, maximised (the box lies above it).
    A sweep over latency: each point that improves on the best value so far adds
    the strip between its value and that best value, from its latency to the reference.
    """
    if maximise:  # the same area, with objective 1 mirrored into a minimised one
        values = [(-v, ms) for v, ms in values]
        reference = (-reference[0], reference[1])
    ref_loss, ref_ms = reference
    inside = sorted((ms, loss) for loss, ms in values if loss < ref_loss and ms < ref_ms)
    area, best = 0.0, ref_loss
    for ms, loss in inside:
        if loss < best:
            area += (ref_ms - ms) * (best - loss)
            best = loss
    return area


def hypervolume_figure(info: HypervolumeInfo) -> go.Figure:
    """Draw the hypervolume history from :func:`hypervolume_info`, as a share of the box."""
    import plotly.graph_objects as go

    hover = [
        f"after trial {n}<br>{100 * s:.1f}% of the box<br>hypervolume {v:.4g} {info.objective}·ms"
        for n, s, v in zip(info.trials, info.shares, info.values, strict=True)
    ]
    fig = go.Figure(
        go.Scatter(
            x=list(info.trials),
            y=[100 * s for s in info.shares],
            mode="lines+markers",
            line={"shape": "hv", "color": _COLORS["front"]},
            name="hypervolume",
            meta="hypervolume",
            hovertext=hover,
            hoverinfo="text",
        )
    )
    _layout(fig, "Trial number", "Hypervolume (% of the box)")
    # Trial numbers are whole: no ticks at 0.5 on a short study.
    xaxis = {"dtick": 1} if len(info.trials) <= 20 else {}
    fig.update_layout(xaxis=xaxis, yaxis={"rangemode": "tozero"}, showlegend=False)
    return fig


def latency_params_info(
    points: list[TrialPoint],
    picks: list[Pick],
    references: list[ReferencePoint],
    *,
    objective: str = "loss",
) -> LatencyParamsInfo:
    """Compute latency against parameter count, without plotly.

    Args:
        points: Every complete trial.
        picks: The recommendation per budget (budget lines and pick stars).
        references: Models to compare with; those with a parameter count are drawn.
        objective: Objective 1's name, as the hovers show it.

    Returns:
        The figure's data, ``x`` in millions of parameters and ``y`` in ms.
    """
    groups = _groups(
        points, x=lambda p: p.params / 1e6, y=lambda p: p.latency_ms, objective=objective
    )
    ys = [p.latency_ms for p in points] + [pk.budget_ms for pk in picks]
    ys += [r.latency_ms for r in references if r.params > 0]
    refs = tuple(
        ReferenceMark(
            name=r.name,
            x=r.params / 1e6,
            y=r.latency_ms,
            label=html.escape(r.name),
            hover=_reference_hover(r, objective),
        )
        for r in references
        if r.params > 0
    )
    return LatencyParamsInfo(
        front=groups[0],
        dominated=groups[1],
        infeasible=groups[2],
        budgets=_budget_lines(picks),
        picks=_pick_markers(
            points,
            picks,
            x=lambda p: p.params / 1e6,
            y=lambda p: p.latency_ms,
            objective=objective,
        ),
        references=refs,
        y_log=_is_wide(ys),
    )


def latency_params_figure(info: LatencyParamsInfo) -> go.Figure:
    """Draw latency against parameter count from :func:`latency_params_info`."""
    import plotly.graph_objects as go

    fig = go.Figure()
    _add_trial_traces(fig, info.front, info.dominated, info.infeasible, step_front=False)
    for b in info.budgets:
        fig.add_hline(
            y=b.budget_ms, line={"dash": "dash", "color": _COLORS["budget"], "width": 1.5}
        )
        fig.add_annotation(
            x=0,
            xref="x domain",
            y=_ann_x(b.budget_ms, info.y_log),
            text=b.label,
            showarrow=False,
            xanchor="left",
            yanchor="bottom",
        )
    _add_picks(fig, info.picks, annotate=False)
    _add_reference_markers(fig, list(info.references))
    _layout(fig, PARAMS_TITLE, X_TITLE)
    fig.update_layout(
        xaxis={"rangemode": "tozero"},
        yaxis={"type": "log"} if info.y_log else {"rangemode": "tozero"},
    )
    return fig


def architectures_info(
    points: list[TrialPoint], *, objective: str = "loss", maximise: bool = False
) -> ArchitecturesInfo:
    """Compute the parallel-coordinates view of the sampled architectures.

    Axes: the four architecture choices (ticks at the values the study sampled),
    parameters (millions), latency p50 (ms) and objective 1 (``proxy loss``,
    ``proxy accuracy``, ...). Untrained trials keep their untrained value
    (:func:`worst_value`) on that axis but get no colour.

    Args:
        points: Every complete trial.
        objective: Objective 1's name: ``"loss"`` or a task metric.
        maximise: Objective 1 is better when higher (the colours follow).
    """
    ordered = sorted(points, key=lambda p: p.number)
    archs = [Arch.from_dict(p.arch) for p in ordered]

    def categorical(label: str, values: list[int]) -> Axis:
        return Axis(
            label, tuple(float(v) for v in values), tuple(float(v) for v in sorted(set(values)))
        )

    trained = [p.loss for p in ordered if p.feasible]
    return ArchitecturesInfo(
        trials=tuple(p.number for p in ordered),
        axes=(
            # Short labels: seven axes share the width of a half-page dashboard card.
            categorical("layers", [a.num_layers for a in archs]),
            categorical("hidden", [a.hidden_size for a in archs]),
            categorical("heads", [a.num_heads for a in archs]),
            categorical("FFN", [a.intermediate_size for a in archs]),
            Axis("params (M)", tuple(p.params / 1e6 for p in ordered)),
            Axis("p50 (ms)", tuple(p.latency_ms for p in ordered)),
            Axis(objective_label(objective), tuple(p.loss for p in ordered)),
        ),
        loss=tuple(p.loss if p.feasible else None for p in ordered),
        loss_range=(min(trained), max(trained)) if trained else None,
        objective=objective,
        maximise=maximise,
    )


def architectures_figure(info: ArchitecturesInfo) -> go.Figure:
    """Draw the parallel-coordinates view from :func:`architectures_info` (``go.Parcoords``)."""
    import plotly.colors
    import plotly.graph_objects as go

    grey = _COLORS["infeasible"]
    label = objective_label(info.objective)
    # Dark (salient) is the better value: a low loss, or a high metric (reversed scale).
    viridis = list(plotly.colors.sequential.Viridis)
    if info.maximise:
        viridis.reverse()
    dims = [
        {"label": a.label, "values": list(a.values)}
        | ({"tickvals": list(a.ticks), "ticktext": [f"{t:g}" for t in a.ticks]} if a.ticks else {})
        for a in info.axes
    ]
    if info.loss_range is None:
        line: dict[str, Any] = {"color": grey}
    elif all(v is not None for v in info.loss):
        line = {
            "color": list(info.loss),
            "colorscale": "Viridis_r" if info.maximise else "Viridis",
            "cmin": info.loss_range[0],
            "cmax": info.loss_range[1],
            "showscale": True,
            "colorbar": {"title": {"text": label}},
        }
    else:
        # One colour scale for the trained trials, plus a grey slot just past their
        # worst value for the untrained ones (parcoords colours lines by one number):
        # above the largest loss, or below the smallest metric.
        lo, hi = info.loss_range
        span = hi - lo if hi > lo else 1.0
        n = len(viridis) - 1
        if info.maximise:
            untrained = lo - span / 19  # the bottom 5% of the colour bar
            share = (hi - lo) / (hi - untrained) if hi > lo else 0.95
            start = 1 - share
            scale = [[0.0, grey], [max(start - 1e-6, 0.0), grey]]
            scale += [[start + share * i / n, c] for i, c in enumerate(viridis)]
            cmin, cmax = untrained, hi
        else:
            untrained = hi + span / 19  # the top 5% of the colour bar
            share = (hi - lo) / (untrained - lo) if hi > lo else 0.95
            scale = [[share * i / n, c] for i, c in enumerate(viridis)]
            scale += [[min(share + 1e-6, 1.0), grey], [1.0, grey]]
            cmin, cmax = lo, untrained
        line = {
            "color": [v if v is not None else untrained for v in info.loss],
            "colorscale": scale,
            "cmin": cmin,
            "cmax": cmax,
            "showscale": True,
            "colorbar": {"title": {"text": f"{label}<br>(grey: not trained)"}},
        }
    fig = go.Figure(go.Parcoords(dimensions=dims, line=line, meta="architectures"))
    # Parcoords writes its axis labels above the plot area: leave them room.
    fig.update_layout(template="plotly_white", margin={"t": 80, "l": 60, "r": 40})
    return fig


def figures(
    points: list[TrialPoint],
    picks: list[Pick],
    references: list[ReferencePoint],
    *,
    objective: str = "loss",
    maximise: bool = False,
) -> list[ReportFigure]:
    """Every figure of the report, drawn, in page order.

    The same figures go into ``report.html``, the dashboard's study page and the
    notebook.

    Args:
        points: Every complete trial.
        picks: The recommendation per budget.
        references: Models to compare with, such as the teacher.
        objective: Objective 1's name: ``"loss"`` (the default) or a task metric.
        maximise: Objective 1 is better when higher (a task metric).
    """
    budgets = [p.budget_ms for p in picks]
    hv = hypervolume_info(
        points,
        default_reference(points, budgets, objective),
        objective=objective,
        maximise=maximise,
    )
    worse = ">" if maximise else "<"
    box = f"{objective} {worse} {hv.reference[0]:g}, p50 < {_ms(hv.reference[1])} ms"
    edge = "bottom" if maximise else "top"
    label = objective_label(objective)
    return [
        ReportFigure(
            "pareto-front",
            f"{objective.capitalize()} against latency",
            "Every complete trial. The line joins the feasible Pareto front: no trial is "
            "both faster and better. Dashed lines are the budgets, stars the picks. "
            f"Trials slower than the largest budget were not trained and sit on the {edge} row.",
            pareto_figure(
                pareto_info(points, picks, references, objective=objective, maximise=maximise)
            ),
        ),
        ReportFigure(
            "hypervolume",
            f"Hypervolume over trials (box: {box})",
            "How much of the box the trials found so far dominate: an untrained student "
            "at the largest budget scores 0%. A flat tail means more trials stopped "
            "improving the front.",
            hypervolume_figure(hv),
        ),
        ReportFigure(
            "latency-vs-params",
            "Latency against parameters",
            "Parameter count is a poor proxy for latency: depth and width cost differently.",
            latency_params_figure(
                latency_params_info(points, picks, references, objective=objective)
            ),
        ),
        ReportFigure(
            "architectures",
            "Architectures",
            "One line per trial across its choices and results; drag along an axis to "
            f"filter. Colour is the {label} (darker is better), grey lines were not trained.",
            architectures_figure(
                architectures_info(points, objective=objective, maximise=maximise)
            ),
        ),
    ]


REFERENCE_MODEL = "hand-crafted reference"
"""How the evaluation tables name the hand-crafted every-other-layer student."""


@dataclass(frozen=True)
class EvaluationRow:
    """One model's score on the evaluation set."""

    model: str
    """``teacher``, :data:`REFERENCE_MODEL`, or ``pick for 10ms``."""
    value: float | None
    """The metric's value."""
    percent_of_teacher: float | None
    latency_ms: float | None
    """p50: the teacher's, or the student's after its final distillation."""
    speedup: float | None
    """The teacher's p50 over this model's (1.0 for the teacher)."""


@dataclass(frozen=True)
class EvaluationInfo:
    """The evaluation section as plain data: the set, the metric and one row per model."""

    description: str
    """What was scored: the evaluation file or split and its columns."""
    metric: str
    examples: int | None
    rows: tuple[EvaluationRow, ...]
    """The teacher, then the reference (when scored), then the picks in budget order."""


def evaluation_info(evaluation: dict[str, Any]) -> EvaluationInfo:
    """The rows of the evaluation tables, from ``recommendations.json``'s ``evaluation``.

    Args:
        evaluation: ``set``, ``metric``, ``examples``, and the scores of the
            ``teacher``, the ``reference`` (or None) and the ``picks`` (keyed by
            budget as :func:`paretokd.config.format_budget` writes it), each with
            ``value``, ``percent_of_teacher``, ``latency_ms`` and ``speedup``.

    Returns:
        The section's data. A missing speed-up is worked out from the latencies.
    """
    teacher = evaluation.get("teacher") or {}
    teacher_ms = _float(teacher.get("latency_ms"))

    def row(model: str, entry: dict[str, Any]) -> EvaluationRow:
        latency = _float(entry.get("latency_ms"))
        speedup = _float(entry.get("speedup"))
        if speedup is None and teacher_ms and latency:
            speedup = teacher_ms / latency
        return EvaluationRow(
            model=model,
            value=_float(entry.get("value")),
            percent_of_teacher=_float(entry.get("percent_of_teacher")),
            latency_ms=latency,
            speedup=speedup,
        )

    rows = [row("teacher", teacher)] if teacher else []
    if evaluation.get("reference"):
        rows.append(row(REFERENCE_MODEL, evaluation["reference"]))
    for budget, entry in (evaluation.get("picks") or {}).items():
        if entry:
            rows.append(row(f"pick for {budget}", entry))
    examples = evaluation.get("examples")
    return EvaluationInfo(
        description=str(evaluation.get("set") or "the evaluation set"),
        metric=str(evaluation.get("metric") or "score"),
        examples=int(examples) if examples is not None else None,
        rows=tuple(rows),
    )


def write_report(
    path: Path,
    *,
    title: str,
    points: list[TrialPoint],
    picks: list[Pick],
    references: list[ReferencePoint],
    summary: dict[str, str],
    finals: dict[float, dict[str, Any]] | None = None,
    report_figures: list[ReportFigure] | None = None,
    objective: str = "loss",
    maximise: bool = False,
    evaluation: dict[str, Any] | None = None,
) -> Path:
    """Write the report as one HTML file that opens offline (plotly's JS inlined once).

    The file is written to a temporary file in the same folder and moved into
    place, so a reader never sees half a report.

    Args:
        path: Where to write, e.g. ``runs/<study>/report.html``.
        title: The page title.
        points: Every complete trial.
        picks: The recommendation per budget.
        references: Models to compare with; the one named ``"teacher"`` gives the speed-ups.
        summary: Rows of the summary table (key → value), e.g. teacher, latency setup, trials.
        finals: Per budget, the final student's ``loss``, ``latency_ms`` and ``dir``, if trained.
        report_figures: The figures, if already drawn (see :func:`figures`).
        objective: Objective 1's name: ``"loss"`` (the default) or a task metric.
        maximise: Objective 1 is better when higher (a task metric).
        evaluation: The scores on the evaluation set (``recommendations.json``'s
            ``evaluation``), shown as their own section; None for no section.

    Returns:
        ``path``.
    """
    from plotly.offline import get_plotlyjs

    drawn = report_figures
    if drawn is None:
        drawn = figures(points, picks, references, objective=objective, maximise=maximise)
    sections = []
    for f in drawn:
        div = f.figure.to_html(
            include_plotlyjs=False,
            full_html=False,
            div_id=f.id,
            default_height="560px",
            config={"displaylogo": False},
        )
        sections.append(
            f'<section class="figure">\n<h3>{html.escape(f.title)}</h3>\n'
            f"<p>{html.escape(f.caption)}</p>\n{div}\n</section>"
        )
    teacher = next((r for r in references if r.name == "teacher"), None)
    page = _PAGE.format(
        title=html.escape(title),
        plotlyjs=get_plotlyjs(),
        summary=_summary_table(summary),
        picks=_picks_table(picks, finals or {}, teacher, objective),
        evaluation=_evaluation_section(evaluation_info(evaluation)) if evaluation else "",
        figures="\n".join(sections),
    )
    return files.write_text(Path(path), page)


def run_summary(
    teacher: dict[str, Any], latency_setup: dict[str, Any], trials: int, storage: str
) -> dict[str, str]:
    """The report's summary rows.

    Args:
        teacher: ``name`` and ``params`` of the teacher (as in ``recommendations.json``).
        latency_setup: The hardware fingerprint and measurement settings.
        trials: Complete trials in the study.
        storage: The storage URL, password already redacted.
    """
    return {
        "teacher": f"{teacher['name']} ({teacher['params'] / 1e6:.1f}M params)",
        "latency setup": ", ".join(f"{k}={v}" for k, v in latency_setup.items()),
        "trials": str(trials),
        "storage": storage,
    }


def teacher_reference(teacher: dict[str, Any]) -> ReferencePoint:
    """The teacher as a :class:`ReferencePoint` (no proxy loss: a vertical line)."""
    return ReferencePoint("teacher", float(teacher["latency_ms"]), None, int(teacher["params"]))


def markdown_note(
    title: str,
    picks: list[Pick],
    finals: dict[float, dict[str, Any]],
    teacher: ReferencePoint | None,
    links: dict[str, str] | None = None,
    summary: dict[str, str] | None = None,
    objective: str = "loss",
    evaluation: dict[str, Any] | None = None,
) -> str:
    """The recommendations as markdown (the study's note in optuna-dashboard).

    Args:
        title: The heading.
        picks: The recommendation per budget.
        finals: Per budget, the final student's ``loss``, ``latency_ms`` and ``dir``.
        teacher: Gives the speed-ups.
        links: What to show in the ``files`` column, keyed by budget as
            :func:`paretokd.config.format_budget` writes it.
        summary: Rows shown as a list above the table (see :func:`run_summary`).
        objective: Objective 1's name, for the search column (``proxy loss``, ...).
        evaluation: The scores on the evaluation set, added as a second table.
    """
    lines = [f"## {_md(title)}", ""]
    rows = [f"- **{_md(k)}**: {_md(v)}" for k, v in (summary or {}).items()]
    if teacher is not None:
        rows.append(f"- **{_md(teacher.name)} p50**: {_ms(teacher.latency_ms)} ms")
    if rows:
        lines += [*rows, ""]
    head = ["budget", "trial", "architecture", "params", objective_label(objective)]
    head += ["search p50 (ms)", "final loss", "final p50 (ms)", "speed-up vs teacher", "files"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for pk in picks:
        budget = format_budget(pk.budget_ms)
        if pk.trial is None:
            cells = [budget, "—", _md(pk.reason or "no pick")] + [""] * (len(head) - 3)
        else:
            final = lookup_final(finals, pk.budget_ms) or {}
            loss, latency = final.get("loss"), final.get("latency_ms")
            speedup = "—"
            if final.get("speedup"):  # against the teacher re-timed beside the finals
                speedup = f"{float(final['speedup']):.1f}×"
            elif teacher and latency:
                speedup = f"{teacher.latency_ms / float(latency):.1f}×"
            cells = [
                budget,
                str(pk.trial),
                Arch.from_dict(pk.arch).id if pk.arch else "—",
                _mparams(pk.params) if pk.params is not None else "—",
                f"{pk.proxy_loss:.4g}" if pk.proxy_loss is not None else "—",
                _ms(pk.latency_ms) if pk.latency_ms is not None else "—",
                f"{float(loss):.4g}" if loss is not None else "not trained yet",
                _ms(float(latency)) if latency is not None else "—",
                speedup,
                (links or {}).get(budget, "—"),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    if evaluation:
        info = evaluation_info(evaluation)
        head = ["model", info.metric, *_EVALUATION_HEAD]
        lines += ["", f"### Evaluation: {_md(_evaluation_caption(info))}", ""]
        lines += ["| " + " | ".join(_md(h) for h in head) + " |", "|" + "---|" * len(head)]
        for r in info.rows:
            cells = [_md(r.model), *(c or "—" for c in _evaluation_cells(r))]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


@dataclass
class Run:
    """A finished run folder read back: everything the figures and a re-pick need."""

    out_dir: Path
    study: optuna.Study
    points: list[TrialPoint]
    picks: list[Pick]
    """The picks of the run, as written to ``recommendations.json``."""
    references: list[ReferencePoint]
    summary: dict[str, str]
    title: str
    finals: dict[float, dict[str, Any]] = field(default_factory=dict)
    objective: str = "loss"
    """Objective 1's name: ``"loss"`` or the task metric the study maximised."""
    maximise: bool = False
    evaluation: dict[str, Any] | None = None
    """``recommendations.json``'s ``evaluation`` (see :func:`evaluation_info`), if any."""

    @property
    def teacher(self) -> ReferencePoint | None:
        """The teacher among the references (it gives the speed-ups)."""
        return next((r for r in self.references if r.name == "teacher"), None)

    def figures(self) -> list[ReportFigure]:
        """The report's figures of this run (:func:`figures` with its objective)."""
        return figures(
            self.points,
            self.picks,
            self.references,
            objective=self.objective,
            maximise=self.maximise,
        )


def load_run(out_dir: str | Path, storage: str | None = None) -> Run:
    """Read a finished run folder: ``recommendations.json`` and its study.

    Objective 1 and its direction come from the study (:func:`objective_of`), the
    evaluation scores, when the run has them, from ``recommendations.json``.

    Args:
        out_dir: The run's output folder (``runs/<study>`` by default).
        storage: The storage URL, when the study is not in ``out_dir/study.db``.

    Raises:
        ParetokdError: If the folder holds no finished run.
    """
    import optuna

    from paretokd.search import recommend

    out = Path(out_dir)
    rec_path = out / "recommendations.json"
    if not rec_path.is_file():
        raise ParetokdError(f"no finished run in {str(out)!r}: {rec_path.name} is missing")
    rec = json.loads(rec_path.read_text(encoding="utf-8"))
    url = storage or f"sqlite:///{(out / 'study.db').resolve()}"
    if storage is None and not (out / "study.db").is_file():
        raise ParetokdError(f"no study database in {str(out)!r}; pass storage=URL")
    study = optuna.load_study(study_name=rec["study"], storage=url)
    objective, maximise = objective_of(study)
    points = recommend.points(study)
    picks = [
        Pick(
            budget_ms=float(p["budget_ms"]),
            trial=p["trial"],
            reason=p["reason"],
            arch=p["arch"],
            params=p["params"],
            proxy_loss=p["proxy_loss"],
            latency_ms=p["latency_ms"],
        )
        for p in rec["picks"]
    ]
    finals = {float(p["budget_ms"]): p["final"] for p in rec["picks"] if p.get("final")}
    return Run(
        out_dir=out,
        study=study,
        points=points,
        picks=picks,
        references=[teacher_reference(rec["teacher"]), *_stored_references(rec, objective)],
        summary=run_summary(rec["teacher"], rec["latency_setup"], len(points), rec["storage"]),
        title=f"paretokd study {rec['study']}",
        finals=finals,
        objective=objective,
        maximise=maximise,
        evaluation=rec.get("evaluation"),
    )


def reference_point(ref: dict[str, Any], objective: str = "loss") -> ReferencePoint:
    """The hand-crafted reference student (``search.measure_reference``) as a point.

    Args:
        ref: The stored reference: ``name``, ``latency_ms``, ``params``, ``proxy_loss``
            and, when measured, ``proxy_metric``.
        objective: Objective 1 of the study. For a task metric the point takes the
            reference's ``proxy_metric``; without one it has no value and is drawn
            as a vertical line (its proxy loss does not belong on a metric's axis).
    """
    loss = ref.get("proxy_loss" if objective == "loss" else "proxy_metric")
    return ReferencePoint(
        str(ref.get("name", "reference")),
        float(ref["latency_ms"]),
        float(loss) if loss is not None else None,
        int(ref.get("params") or 0),
    )


def _stored_references(rec: dict[str, Any], objective: str) -> list[ReferencePoint]:
    """The hand-crafted reference student of ``recommendations.json``, when it has one."""
    ref = rec.get("reference")
    if not isinstance(ref, dict) or ref.get("latency_ms") is None:
        return []
    return [reference_point(ref, objective)]


# --- computing -------------------------------------------------------------------------


def _groups(
    points: list[TrialPoint], *, x: Any, y: Any, objective: str
) -> tuple[tuple[PlotPoint, ...], tuple[PlotPoint, ...], tuple[PlotPoint, ...]]:
    """Front (sorted by x, then y), dominated and infeasible (in trial order)."""
    front: list[PlotPoint] = []
    dominated: list[PlotPoint] = []
    infeasible: list[PlotPoint] = []
    for p in points:
        if not p.feasible:
            group, note = infeasible, _INFEASIBLE_NOTE
        elif p.on_front:
            group, note = front, "on the Pareto front"
        else:
            group, note = dominated, "dominated"
        hover = f"{_hover(p, objective)}<br>{note}"
        group.append(PlotPoint(p.number, float(x(p)), float(y(p)), hover))
    front.sort(key=lambda q: (q.x, q.y))
    dominated.sort(key=lambda q: q.trial)
    infeasible.sort(key=lambda q: q.trial)
    return tuple(front), tuple(dominated), tuple(infeasible)


def _budget_lines(picks: list[Pick]) -> tuple[BudgetLine, ...]:
    return tuple(
        BudgetLine(budget_ms=b, label=f"{format_budget(b)} budget")
        for b in sorted({pk.budget_ms for pk in picks})
    )


def _pick_markers(
    points: list[TrialPoint], picks: list[Pick], *, x: Any, y: Any, objective: str
) -> tuple[PickMarker, ...]:
    by_number = {p.number: p for p in points}
    budgets_of: dict[int, list[float]] = {}
    for pk in picks:
        if pk.trial is not None:
            budgets_of.setdefault(pk.trial, []).append(pk.budget_ms)
    markers = []
    for pk in picks:
        if pk.trial is None or pk.trial not in budgets_of:
            continue
        won = tuple(budgets_of.pop(pk.trial))
        point = by_number.get(pk.trial) or _point_of_pick(pk)
        if point is None:
            continue  # a pick with nothing to place it by: the table still lists it
        label = "pick for " + ", ".join(format_budget(b) for b in won)
        markers.append(
            PickMarker(
                trial=pk.trial,
                budgets_ms=won,
                x=float(x(point)),
                y=float(y(point)),
                label=label,
                hover=f"{label}<br>{_hover(point, objective)}",
            )
        )
    return tuple(markers)


def _point_of_pick(pk: Pick) -> TrialPoint | None:
    """A pick whose trial is not among the points (e.g. re-picked from another study)."""
    if None in (pk.trial, pk.arch, pk.params, pk.proxy_loss, pk.latency_ms):
        return None
    assert pk.trial is not None and pk.arch is not None and pk.params is not None
    assert pk.proxy_loss is not None and pk.latency_ms is not None
    return TrialPoint(
        number=pk.trial,
        arch=pk.arch,
        params=pk.params,
        loss=pk.proxy_loss,
        latency_ms=pk.latency_ms,
        latency_p90_ms=math.nan,
        feasible=True,
        on_front=True,
    )


def _hover(p: TrialPoint, objective: str) -> str:
    loss = f"{objective} {p.loss:.4g}" if p.feasible else f"{objective}: not trained"
    p90 = f", p90 {_ms(p.latency_p90_ms)} ms" if math.isfinite(p.latency_p90_ms) else ""
    return (
        f"trial {p.number}<br>{Arch.from_dict(p.arch).id}<br>params {_mparams(p.params)}"
        f"<br>{loss}<br>p50 {_ms(p.latency_ms)} ms{p90}"
    )


def _reference_hover(r: ReferencePoint, objective: str) -> str:
    hover = f"{html.escape(r.name)}<br>params {_mparams(r.params)}<br>p50 {_ms(r.latency_ms)} ms"
    if r.loss is not None:
        hover += f"<br>{objective} {r.loss:.4g}"
    return hover


def _mparams(n: int) -> str:
    return f"{n / 1e6:.2f} M"


def _ms(v: float) -> str:
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def _md(text: str) -> str:
    # Table cells: a pipe would end the cell, a newline the row.
    return text.replace("|", "\\|").replace("\n", " ")


def _is_wide(values: Iterable[float]) -> bool:
    positive = [v for v in values if math.isfinite(v) and v > 0]
    return len(positive) >= 2 and max(positive) > _LOG_RATIO * min(positive)


def _axis_range(values: Iterable[float], log: bool = False) -> tuple[float, float]:
    if log:
        positive = [v for v in values if math.isfinite(v) and v > 0]
        factor = (max(positive) / min(positive)) ** _PAD  # the same share, in log space
        return (min(positive) / factor, max(positive) * factor)
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return (0.0, 1.0)
    lo, hi = min(finite), max(finite)
    # At least a few percent of the values themselves: near-equal values (two losses
    # of 0.4300 and 0.4301) must not blow a rounding difference up to the full height.
    pad = max((hi - lo) * _PAD, abs(hi) * _PAD) or 1.0
    # Latencies and losses are never negative: do not show a negative axis for padding.
    return (max(lo - pad, 0.0) if lo >= 0 else lo - pad, hi + pad)


# --- drawing ---------------------------------------------------------------------------


def _ann_x(x: float, log: bool) -> float:
    """An annotation's coordinate for the value ``x`` on a linear or log axis."""
    # Plotly places annotations on a log axis by log10 of the value (shapes by the value).
    return math.log10(x) if log else x


def _vline(fig: go.Figure, x: float, label: str, log: bool, *, dash: str, color: str) -> None:
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


def _layout(fig: go.Figure, x_title: str, y_title: str) -> None:
    fig.update_layout(
        template="plotly_white",
        xaxis={"title": {"text": x_title}},
        yaxis={"title": {"text": y_title}},
        legend={"orientation": "h", "yanchor": "top", "y": -0.15, "xanchor": "left", "x": 0},
        margin={"t": 40},
        hovermode="closest",
    )


def _add_trial_traces(
    fig: go.Figure,
    front: tuple[PlotPoint, ...],
    dominated: tuple[PlotPoint, ...],
    infeasible: tuple[PlotPoint, ...],
    *,
    step_front: bool,
) -> None:
    # Empty groups get no trace, so the legend only names what is on the plot.
    if dominated:
        fig.add_trace(
            _trial_trace(dominated, DOMINATED_NAME, {"color": _COLORS["dominated"], "size": 8})
        )
    if infeasible:
        fig.add_trace(
            _trial_trace(
                infeasible,
                INFEASIBLE_NAME,
                {"color": _COLORS["infeasible"], "size": 9, "symbol": "x"},
            )
        )
    if front:
        trace = _trial_trace(front, FRONT_NAME, {"color": _COLORS["front"], "size": 10})
        if step_front:
            # A horizontal-then-vertical step draws the front as dominance works: a front
            # point's loss is the best on offer until the next, slower, front point lowers it.
            trace.update(mode="lines+markers", line={"shape": "hv", "color": _COLORS["front"]})
        fig.add_trace(trace)


def _add_picks(
    fig: go.Figure, picks: tuple[PickMarker, ...], *, annotate: bool, x_log: bool = False
) -> None:
    import plotly.graph_objects as go

    if not picks:
        return
    fig.add_trace(
        go.Scatter(
            x=[m.x for m in picks],
            y=[m.y for m in picks],
            mode="markers",
            name=PICKS_NAME,
            meta="picks",
            hovertext=[m.hover for m in picks],
            hoverinfo="text",
            marker={
                "symbol": "star",
                "size": 20,
                "color": _COLORS["pick"],
                "line": {"color": "black", "width": 1},
            },
        )
    )
    if annotate:
        for m in picks:
            fig.add_annotation(
                x=_ann_x(m.x, x_log),
                y=m.y,
                text=m.label,
                showarrow=True,
                arrowhead=2,
                ax=30,
                ay=-35,
            )


def _add_reference_markers(fig: go.Figure, marks: list[ReferenceMark]) -> None:
    import plotly.graph_objects as go

    if not marks:
        return
    fig.add_trace(
        go.Scatter(
            x=[r.x for r in marks],
            y=[r.y for r in marks],
            mode="markers+text",
            name="references",
            meta="references",
            text=[r.label for r in marks],
            textposition="top center",
            hovertext=[r.hover for r in marks],
            hoverinfo="text",
            marker={"symbol": "diamond", "size": 12, "color": _COLORS["reference"]},
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


# --- HTML --------------------------------------------------------------------------------


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0 2em; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: left; vertical-align: top; }}
th {{ background: #f3f3f3; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
td.reason {{ color: #8a3b00; }}
section.figure {{ margin: 2em 0 3em; }}
section.figure p {{ color: #555; max-width: 60em; }}
</style>
<script type="text/javascript">{plotlyjs}</script>
</head>
<body>
<h1>{title}</h1>
<h2>Summary</h2>
{summary}
<h2>Recommendations</h2>
{picks}
{evaluation}<h2>Figures</h2>
{figures}
</body>
</html>
"""


def _summary_table(summary: dict[str, str]) -> str:
    rows = "\n".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in summary.items()
    )
    return f'<table class="summary">\n{rows}\n</table>'


def _picks_table(
    picks: list[Pick],
    finals: dict[float, dict[str, Any]],
    teacher: ReferencePoint | None,
    objective: str = "loss",
) -> str:
    head = ["budget", "trial", "architecture", "params", objective_label(objective)]
    head += ["search p50 (ms)"]
    if finals:
        head += ["final loss", "final p50 (ms)", "speed-up vs teacher", "files"]
    rows = ["<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    for pk in picks:
        cells = [f"<td>{html.escape(format_budget(pk.budget_ms))}</td>"]
        if pk.trial is None:
            reason = pk.reason or "no pick"
            cells.append(f'<td class="reason" colspan="{len(head) - 1}">{html.escape(reason)}</td>')
        else:
            cells += [
                f'<td class="num">{pk.trial}</td>',
                f"<td>{html.escape(Arch.from_dict(pk.arch).id) if pk.arch else '—'}</td>",
                _num(_mparams(pk.params) if pk.params is not None else None),
                _num(f"{pk.proxy_loss:.4g}" if pk.proxy_loss is not None else None),
                _num(_ms(pk.latency_ms) if pk.latency_ms is not None else None),
            ]
            if finals:
                cells += _final_cells(lookup_final(finals, pk.budget_ms), teacher)
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return '<table class="picks">\n' + "\n".join(rows) + "\n</table>"


def _final_cells(final: dict[str, Any] | None, teacher: ReferencePoint | None) -> list[str]:
    if final is None:
        return [_num(None)] * 3 + ["<td>not trained yet</td>"]
    loss, latency = final.get("loss"), final.get("latency_ms")
    speedup = None
    if final.get("speedup"):  # against the teacher re-timed beside the finals
        speedup = f"{float(final['speedup']):.1f}×"
    elif teacher is not None and latency:
        speedup = f"{teacher.latency_ms / float(latency):.1f}×"
    return [
        _num(f"{float(loss):.4g}" if loss is not None else None),
        _num(_ms(float(latency)) if latency is not None else None),
        _num(speedup),
        f"<td><code>{html.escape(str(final.get('dir', '')))}</code></td>",
    ]


_EVALUATION_HEAD = ("% of teacher", "p50 (ms)", "speed-up vs teacher")
"""The evaluation tables' columns after the model and the metric."""


def _evaluation_caption(info: EvaluationInfo) -> str:
    examples = f" ({info.examples} examples)" if info.examples is not None else ""
    return f"{info.metric} on {info.description}{examples}"


def _evaluation_cells(r: EvaluationRow) -> list[str | None]:
    """The metric, % of teacher, p50 and speed-up of a row, formatted (None: no value)."""
    return [
        f"{r.value:.4f}" if r.value is not None else None,
        f"{r.percent_of_teacher:.1f}%" if r.percent_of_teacher is not None else None,
        _ms(r.latency_ms) if r.latency_ms is not None else None,
        f"{r.speedup:.1f}×" if r.speedup is not None else None,
    ]


def _evaluation_section(info: EvaluationInfo) -> str:
    head = ["model", info.metric, *_EVALUATION_HEAD]
    rows = ["<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    for r in info.rows:
        cells = [f"<td>{html.escape(r.model)}</td>", *map(_num, _evaluation_cells(r))]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (
        "<h2>Evaluation</h2>\n"
        f"<p>{html.escape(_evaluation_caption(info))}. Each student after its final "
        "distillation; p50 latencies are measured as in the search, and the speed-up is "
        "the teacher's p50 over the model's.</p>\n"
        '<table class="evaluation">\n' + "\n".join(rows) + "\n</table>\n"
    )


def lookup_final(finals: dict[float, dict[str, Any]], budget: float) -> dict[str, Any] | None:
    """The final student of ``budget`` in ``finals``, matched by value, if any."""
    # Budgets are floats parsed from text; match by value, not by identity of the float.
    for key, value in finals.items():
        if math.isclose(float(key), budget):
            return value
    return None


def _float(value: Any) -> float | None:
    return float(value) if value is not None else None


def _num(text: str | None) -> str:
    return f'<td class="num">{html.escape(text) if text is not None else "—"}</td>'
