"""One table model for the picks and the evaluation, and its three renderers.

A :class:`Table` holds formatted cells, built once from the records by
:func:`picks_table` or :func:`evaluation_table`; :func:`render_html` (the page),
:func:`render_markdown` (the dashboard note, the notebook) and
:func:`render_console` (the terminal) only lay those cells out, so the three
always show the same numbers. Speed-ups come from :meth:`RunRecord.speedup` and
percentages from :meth:`RunRecord.percent_of_teacher`, nowhere else.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from paretokd.records import FinalStudent, LatencyStats, Objective, Pick, RunRecord
from paretokd.report.common import _mparams, _ms

EMPTY = "—"
"""The text of a cell without a value."""

REFERENCE_MODEL = "hand-crafted reference"
"""How the evaluation table names the hand-crafted every-other-layer student."""

NOT_TRAINED = "not trained yet"
"""The files cell of a pick whose final student is missing."""


@dataclass(frozen=True)
class Cell:
    """One formatted value."""

    text: str
    numeric: bool = False
    """Right-aligned, in tabular figures."""


@dataclass(frozen=True)
class Row:
    """One row: its cells, then, for a row without figures, a reason spanning the rest."""

    cells: tuple[Cell, ...]
    reason: str | None = None
    """Why the row has no figures (a budget nothing fits); fills the columns after ``cells``."""


@dataclass(frozen=True)
class Table:
    """A table as formatted strings: a header, rows, and what it shows."""

    name: str
    """What it lists: ``picks`` or ``evaluation`` (the HTML table's class)."""
    head: tuple[str, ...]
    rows: tuple[Row, ...]
    caption: str | None = None
    """A line about the whole table (the evaluation set), for the caller to place."""


# --- building ---------------------------------------------------------------------------


def picks_table(
    picks: Sequence[Pick],
    objective: Objective,
    run: RunRecord | None = None,
    *,
    files: Mapping[str, str] | None = None,
) -> Table:
    """The recommendation per budget, with each pick's final student when ``run`` has one.

    Args:
        picks: The picks, in budget order.
        objective: Objective 1 (the search column's name).
        run: The finished run: adds the final students' loss, p50, speed-up and
            files when any pick has one. None for a re-pick (``paretokd recommend``).
        files: What the files column shows per budget (``10ms``); by default the
            final student's folder.
    """
    head = ["budget", "trial", "architecture", "params", objective.label, "search p50 (ms)"]
    # Latencies show their 95% interval; a pick shows its confirmation (``search.confirm``).
    finals = run is not None and any(run.final_of(pk) is not None for pk in picks)
    if finals:
        head += ["final loss", "final p50 (ms)", "speed-up vs teacher", "files"]
    rows = []
    for pk in picks:
        if pk.trial is None:
            rows.append(Row((Cell(pk.budget), _num(EMPTY)), pk.reason or "no pick"))
            continue
        t = pk.trial
        cells = [Cell(pk.budget), _num(str(t.number)), Cell(t.arch.id)]
        cells += [_num(_mparams(t.params)), _num(f"{t.value:.4g}"), _num(_interval(t.timing))]
        if finals:
            assert run is not None
            cells += _final_cells(run, pk, files)
        rows.append(Row(tuple(cells)))
        if pk.fallback:
            rows.append(Row((Cell(""),), f"fallback: {pk.fallback}"))
        if run is not None and run.beaten_by_quantized_teacher(pk):
            qt = run.quantized_teacher
            assert qt is not None
            note = f"{qt.name} is as fast and at least as good: ship it instead of distilling"
            rows.append(Row((Cell(""),), note))
    return Table("picks", tuple(head), tuple(rows))


def evaluation_table(run: RunRecord) -> Table | None:
    """Every scored model on the run's evaluation set; None when the run has none.

    Rows: the teacher (100%, its calibrated p50, speed-up 1), the
    hand-crafted reference when scored, then each pick's final student with a score.
    """
    ev = run.evaluation
    if ev is None:
        return None
    teacher = (f"{ev.teacher:.4f}", "100.0%", f"{run.teacher.latency_ms:.2f}", "1.0×")
    rows = [Row((Cell("teacher"), *map(_num, teacher)))]
    qt = run.quantized_teacher
    if qt is not None and ev.quantized_teacher is not None:
        percent = ev.percent_of_teacher(ev.quantized_teacher)
        cells = [f"{ev.quantized_teacher:.4f}", f"{percent:.1f}%" if percent else EMPTY]
        ms = qt.latency.p50_ms
        cells += [_interval(qt.latency, digits=2), f"{run.teacher.speedup(ms):.1f}×"]
        rows.append(Row((Cell(qt.name), *map(_num, cells))))
    scored = [(REFERENCE_MODEL, run.reference_final)]
    scored += [(f"pick for {pk.budget}", run.final_of(pk)) for pk in run.picks]
    for model, final in scored:
        if final is None or final.score is None:
            continue
        percent = run.percent_of_teacher(final)
        cells = [f"{final.score:.4f}", f"{percent:.1f}%" if percent is not None else EMPTY]
        cells += [_final_latency(final), _speedup(run, final)]
        rows.append(Row((Cell(model), *map(_num, cells))))
    head = ("model", ev.metric, "% of teacher", "p50 (ms)", "speed-up vs teacher")
    caption = f"{ev.metric} on {ev.set} ({ev.examples} examples)"
    return Table("evaluation", head, tuple(rows), caption)


def _final_cells(run: RunRecord, pk: Pick, files: Mapping[str, str] | None) -> list[Cell]:
    final = run.final_of(pk)
    if final is None:
        return [_num(EMPTY)] * 3 + [Cell(NOT_TRAINED)]
    where = str(final.dir) if files is None else files.get(pk.budget, EMPTY)
    loss, latency, speedup = f"{final.loss:.4g}", _final_latency(final), _speedup(run, final)
    return [_num(loss), _num(latency), _num(speedup), Cell(where)]


def _final_latency(final: FinalStudent) -> str:
    return _interval(final.latency, digits=2)


def _interval(stats: LatencyStats, digits: int | None = None) -> str:
    """A p50 and its 95% interval, e.g. ``9.20 (9.10–9.31)``."""

    def fmt(ms: float) -> str:
        return f"{ms:.{digits}f}" if digits is not None else _ms(ms)

    if stats.ci_ms is None:
        return fmt(stats.p50_ms)
    return f"{fmt(stats.p50_ms)} ({fmt(stats.ci_ms[0])}–{fmt(stats.ci_ms[1])})"


def _speedup(run: RunRecord, final: FinalStudent) -> str:
    """The speed-up and its interval, e.g. ``3.1× (2.9–3.3)``."""
    ci = run.speedup_ci(final)
    text = f"{run.speedup(final):.1f}×"
    return text if ci is None else f"{text} ({ci[0]:.1f}–{ci[1]:.1f})"


def _num(text: str) -> Cell:
    return Cell(text, numeric=True)


# --- rendering --------------------------------------------------------------------------


def render_html(table: Table) -> str:
    """The table as an HTML ``<table>`` (class :attr:`Table.name`), every cell escaped."""
    n = len(table.head)
    lines = ["<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in table.head) + "</tr>"]
    for row in table.rows:
        cells = [
            f'<td class="num">{html.escape(c.text)}</td>'
            if c.numeric
            else f"<td>{html.escape(c.text)}</td>"
            for c in row.cells
        ]
        if row.reason is not None:
            span = n - len(row.cells)
            cells.append(f'<td class="reason" colspan="{span}">{html.escape(row.reason)}</td>')
        lines.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="{table.name}">\n' + "\n".join(lines) + "\n</table>"


def render_markdown(table: Table) -> str:
    """The table as a GitHub-flavoured markdown table (pipes in cells escaped)."""
    n = len(table.head)
    lines = ["| " + " | ".join(md_escape(h) for h in table.head) + " |", "|" + "---|" * n]
    for row in table.rows:
        cells = [md_escape(c.text) for c in row.cells]
        if row.reason is not None:
            cells += [md_escape(row.reason)] + [""] * (n - len(cells) - 1)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_console(table: Table) -> str:
    """The table as fixed-width text for a terminal: numbers right-aligned, two-space gaps."""
    n = len(table.head)
    numeric = [False] * n
    widths = [len(h) for h in table.head]
    for row in table.rows:
        for i, c in enumerate(row.cells):
            widths[i] = max(widths[i], len(c.text))
            numeric[i] = numeric[i] or c.numeric

    def pad(text: str, i: int, right: bool) -> str:
        return text.rjust(widths[i]) if right else text.ljust(widths[i])

    lines = ["  ".join(pad(h, i, numeric[i]) for i, h in enumerate(table.head))]
    for row in table.rows:
        cells = [pad(c.text, i, c.numeric) for i, c in enumerate(row.cells)]
        if row.reason is not None:
            cells.append(row.reason)
        lines.append("  ".join(cells))
    return "\n".join(line.rstrip() for line in lines)


def md_escape(text: str) -> str:
    """``text`` safe inside a markdown table cell."""
    # A pipe would end the cell, a newline the row.
    return text.replace("|", "\\|").replace("\n", " ")
