"""The study report: a Pareto figure and the picks, as one self-contained HTML file.

As in Optuna's ``visualization/_pareto_front.py``, the figure is computed first
(:func:`pareto_info`, plain data that the tests check directly) and drawn second
(:func:`pareto_figure`, plotly only). plotly is imported inside the drawing
functions so that importing this module (e.g. from the CLI) stays cheap.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paretokd import files
from paretokd.config import format_budget
from paretokd.recommend import Pick, TrialPoint
from paretokd.space import Arch

if TYPE_CHECKING:
    import plotly.graph_objects as go

X_TITLE = "Latency p50 (ms)"
Y_TITLE = "Distillation loss (proxy eval)"
FRONT_NAME = "Pareto front (feasible)"
DOMINATED_NAME = "dominated (feasible)"
INFEASIBLE_NAME = "over the largest budget: not trained (loss of the untrained student)"
PICKS_NAME = "picks"
TRIAL_META = "trials"
"""``meta`` of the traces holding one marker per trial (front, dominated, infeasible)."""

_PAD = 0.05  # fraction of the data span left blank around the plotted points


@dataclass(frozen=True)
class ReferencePoint:
    """A model to compare the students with, such as the teacher."""

    name: str
    latency_ms: float
    loss: float | None
    """None when the reference has no loss on the proxy (drawn as a vertical line)."""
    params: int


@dataclass(frozen=True)
class PlotPoint:
    """One trial as the figure draws it."""

    trial: int
    x: float
    y: float
    hover: str


@dataclass(frozen=True)
class BudgetLine:
    """A vertical dashed line at a latency budget."""

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
    """A reference: a diamond when it has a loss, a vertical dotted line when it has none."""

    name: str
    x: float
    y: float | None
    label: str
    hover: str


@dataclass(frozen=True)
class ParetoInfo:
    """Everything the Pareto figure draws, as plain data."""

    front: tuple[PlotPoint, ...]
    """Feasible trials on the Pareto front, sorted by latency (then loss)."""
    dominated: tuple[PlotPoint, ...]
    """Feasible trials off the front, in trial order."""
    infeasible: tuple[PlotPoint, ...]
    """Trials over the largest budget, in trial order; their loss is the untrained student's."""
    budgets: tuple[BudgetLine, ...]
    """One line per budget, ascending."""
    picks: tuple[PickMarker, ...]
    """One marker per picked trial, in budget order; budgets without a pick have none."""
    references: tuple[ReferenceMark, ...]
    x_range: tuple[float, float]
    y_range: tuple[float, float]

    @property
    def n_trials(self) -> int:
        """How many trial markers the figure draws (equals the number of points given)."""
        return len(self.front) + len(self.dominated) + len(self.infeasible)


def pareto_info(
    points: list[TrialPoint], picks: list[Pick], references: list[ReferencePoint]
) -> ParetoInfo:
    """Compute what the Pareto figure draws, without plotly.

    Args:
        points: Every complete trial (see :func:`paretokd.recommend.points`).
        picks: The recommendation per budget (see :func:`paretokd.recommend.pick`).
        references: Models to compare with, such as the teacher.

    Returns:
        The figure's data: trials split into front, dominated and infeasible,
        budget lines, pick markers, reference marks and axis ranges.
    """
    front: list[PlotPoint] = []
    dominated: list[PlotPoint] = []
    infeasible: list[PlotPoint] = []
    for p in points:
        if not p.feasible:
            infeasible.append(_plot_point(p, note="over the largest budget: not trained"))
        elif p.on_front:
            front.append(_plot_point(p, note="on the Pareto front"))
        else:
            dominated.append(_plot_point(p, note="dominated"))
    front.sort(key=lambda q: (q.x, q.y))
    infeasible.sort(key=lambda q: q.trial)
    dominated.sort(key=lambda q: q.trial)

    budgets = tuple(
        BudgetLine(budget_ms=b, label=f"{format_budget(b)} budget")
        for b in sorted({pk.budget_ms for pk in picks})
    )

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
        point = by_number.get(pk.trial)
        x = pk.latency_ms if pk.latency_ms is not None else (point.latency_ms if point else None)
        y = pk.proxy_loss if pk.proxy_loss is not None else (point.loss if point else None)
        if x is None or y is None:
            continue  # a pick with nothing to place it by: the table still lists it
        label = "pick for " + ", ".join(format_budget(b) for b in won)
        hover = _hover(point) if point else f"trial {pk.trial}"
        markers.append(
            PickMarker(
                trial=pk.trial, budgets_ms=won, x=x, y=y, label=label, hover=f"{label}<br>{hover}"
            )
        )

    refs = []
    for r in references:
        name = html.escape(r.name)  # labels and hovers are plotly markup: escape user text
        label = f"{name} {_ms(r.latency_ms)} ms"
        hover = f"{name}<br>params {_mparams(r.params)}<br>p50 {_ms(r.latency_ms)} ms"
        if r.loss is not None:
            hover += f"<br>loss {r.loss:.4g}"
        refs.append(ReferenceMark(name=r.name, x=r.latency_ms, y=r.loss, label=label, hover=hover))

    xs = [p.latency_ms for p in points] + [b.budget_ms for b in budgets] + [r.x for r in refs]
    ys = [p.loss for p in points] + [r.y for r in refs if r.y is not None]
    return ParetoInfo(
        front=tuple(front),
        dominated=tuple(dominated),
        infeasible=tuple(infeasible),
        budgets=budgets,
        picks=tuple(markers),
        references=tuple(refs),
        x_range=_axis_range(xs),
        y_range=_axis_range(ys),
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
    # Empty groups get no trace, so the legend only names what is on the plot.
    if info.dominated:
        fig.add_trace(
            _trial_trace(
                info.dominated, DOMINATED_NAME, {"color": "rgba(31, 119, 180, 0.35)", "size": 8}
            )
        )
    if info.infeasible:
        fig.add_trace(
            _trial_trace(
                info.infeasible,
                INFEASIBLE_NAME,
                {"color": "rgb(150, 150, 150)", "size": 9, "symbol": "x"},
            )
        )
    if info.front:
        front = _trial_trace(info.front, FRONT_NAME, {"color": "rgb(31, 119, 180)", "size": 10})
        # A horizontal-then-vertical step draws the front as dominance works: a front
        # point's loss is the best on offer until the next, slower, front point lowers it.
        front.update(mode="lines+markers", line={"shape": "hv", "color": "rgb(31, 119, 180)"})
        fig.add_trace(front)

    for b in info.budgets:
        fig.add_vline(
            x=b.budget_ms,
            line={"dash": "dash", "color": "rgb(214, 39, 40)", "width": 1.5},
            annotation={"text": b.label, "textangle": -90},
            annotation_position="top left",
        )
    if info.picks:
        fig.add_trace(
            go.Scatter(
                x=[m.x for m in info.picks],
                y=[m.y for m in info.picks],
                mode="markers",
                name=PICKS_NAME,
                meta="picks",
                hovertext=[m.hover for m in info.picks],
                hoverinfo="text",
                marker={
                    "symbol": "star",
                    "size": 20,
                    "color": "rgb(255, 191, 0)",
                    "line": {"color": "black", "width": 1},
                },
            )
        )
        for m in info.picks:
            fig.add_annotation(
                x=m.x, y=m.y, text=m.label, showarrow=True, arrowhead=2, ax=30, ay=-35
            )

    marked = [r for r in info.references if r.y is not None]
    if marked:
        fig.add_trace(
            go.Scatter(
                x=[r.x for r in marked],
                y=[r.y for r in marked],
                mode="markers+text",
                name="references",
                meta="references",
                text=[html.escape(r.name) for r in marked],
                textposition="top center",
                hovertext=[r.hover for r in marked],
                hoverinfo="text",
                marker={"symbol": "diamond", "size": 12, "color": "rgb(44, 160, 44)"},
            )
        )
    for r in info.references:
        if r.y is None:
            fig.add_vline(
                x=r.x,
                line={"dash": "dot", "color": "rgb(44, 160, 44)", "width": 2},
                annotation={"text": r.label, "textangle": -90},
                annotation_position="top left",
            )

    fig.update_layout(
        template="plotly_white",
        xaxis={"title": {"text": X_TITLE}, "range": list(info.x_range)},
        yaxis={"title": {"text": Y_TITLE}, "range": list(info.y_range)},
        legend={"orientation": "h", "yanchor": "top", "y": -0.15, "xanchor": "left", "x": 0},
        margin={"t": 40},
        hovermode="closest",
    )
    return fig


def write_report(
    path: Path,
    *,
    title: str,
    points: list[TrialPoint],
    picks: list[Pick],
    references: list[ReferencePoint],
    summary: dict[str, str],
    finals: dict[float, dict[str, Any]] | None = None,
) -> Path:
    """Write the report as one HTML file that opens offline (plotly's JS is inlined).

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

    Returns:
        ``path``.
    """
    fig = pareto_figure(pareto_info(points, picks, references))
    figure_html = fig.to_html(include_plotlyjs=True, full_html=False)
    teacher = next((r for r in references if r.name == "teacher"), None)
    page = _PAGE.format(
        title=html.escape(title),
        summary=_summary_table(summary),
        picks=_picks_table(picks, finals or {}, teacher),
        figure=figure_html,
    )

    return files.write_text(Path(path), page)


# --- computing -------------------------------------------------------------------------


def _plot_point(p: TrialPoint, note: str) -> PlotPoint:
    return PlotPoint(trial=p.number, x=p.latency_ms, y=p.loss, hover=f"{_hover(p)}<br>{note}")


def _hover(p: TrialPoint) -> str:
    return (
        f"trial {p.number}<br>{Arch.from_dict(p.arch).id}<br>params {_mparams(p.params)}"
        f"<br>loss {p.loss:.4g}<br>p50 {_ms(p.latency_ms)} ms, p90 {_ms(p.latency_p90_ms)} ms"
    )


def _mparams(n: int) -> str:
    return f"{n / 1e6:.2f} M"


def _ms(v: float) -> str:
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def _axis_range(values: Iterable[float]) -> tuple[float, float]:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return (0.0, 1.0)
    lo, hi = min(finite), max(finite)
    pad = (hi - lo) * _PAD if hi > lo else max(abs(hi) * 0.1, 1.0)
    # Latencies and losses are never negative: do not show a negative axis for padding.
    return (max(lo - pad, 0.0) if lo >= 0 else lo - pad, hi + pad)


# --- drawing ---------------------------------------------------------------------------


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
</style>
</head>
<body>
<h1>{title}</h1>
<h2>Summary</h2>
{summary}
<h2>Recommendations</h2>
{picks}
<h2>Loss against latency</h2>
{figure}
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
    picks: list[Pick], finals: dict[float, dict[str, Any]], teacher: ReferencePoint | None
) -> str:
    head = ["budget", "trial", "architecture", "params", "proxy loss", "search p50 (ms)"]
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
                cells += _final_cells(_lookup(finals, pk.budget_ms), teacher)
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return '<table class="picks">\n' + "\n".join(rows) + "\n</table>"


def _final_cells(final: dict[str, Any] | None, teacher: ReferencePoint | None) -> list[str]:
    if final is None:
        return [_num(None)] * 3 + ["<td>not trained yet</td>"]
    loss, latency = final.get("loss"), final.get("latency_ms")
    speedup = None
    if teacher is not None and latency:
        speedup = f"{teacher.latency_ms / float(latency):.1f}×"
    return [
        _num(f"{float(loss):.4g}" if loss is not None else None),
        _num(_ms(float(latency)) if latency is not None else None),
        _num(speedup),
        f"<td><code>{html.escape(str(final.get('dir', '')))}</code></td>",
    ]


def _lookup(finals: dict[float, dict[str, Any]], budget: float) -> dict[str, Any] | None:
    # Budgets are floats parsed from text; match by value, not by identity of the float.
    for key, value in finals.items():
        if math.isclose(float(key), budget):
            return value
    return None


def _num(text: str | None) -> str:
    return f'<td class="num">{html.escape(text) if text is not None else "—"}</td>'
