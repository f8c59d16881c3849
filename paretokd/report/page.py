"""The study report: the summary, the tables and the figures as one self-contained HTML file."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

from paretokd import files
from paretokd.records import RunRecord, TrialRecord
from paretokd.report.common import ReportFigure
from paretokd.report.figures import figures as draw_figures
from paretokd.report.tables import Table, evaluation_table, picks_table, render_html

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
p.unkept {{ color: #fff; background: #b00020; padding: 0.5em 0.8em; font-weight: 600; }}
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
{unkept}{picks}
<p>Latencies are p50 with a 95% interval: each model's time relative to an anchor,
timed side by side in alternating blocks, times the anchor's latency on the study's
scale. The anchors are the teacher, whose latency was calibrated once for the study,
and smaller graphs cut from it, each put on that scale by its own ratio to the teacher;
a model is paired with the one nearest its latency. A pick fits its budget with the
upper bound of its interval; each shipped student was timed again the same way,
paired with the same anchor.</p>
{evaluation}<h2>Figures</h2>
{figures}
</body>
</html>
"""


def title(run: RunRecord) -> str:
    """The page's title: ``paretokd study <name>``."""
    return f"paretokd study {run.study}"


def summary_rows(run: RunRecord, trials: int | None) -> dict[str, str]:
    """The summary at the top of the report and the note (key → value).

    Args:
        run: The finished run.
        trials: Complete trials in the study; None leaves the row out.

    Returns:
        The teacher, the latency setup, the trials, the storage and, when the run
        accounted for its search time, the time spent on never-pickable trials.
    """
    teacher = run.teacher
    rows = {
        "teacher": f"{teacher.name} ({teacher.params / 1e6:.1f}M params)",
        "latency setup": ", ".join(f"{k}={v}" for k, v in run.fingerprint.to_json().items()),
    }
    if trials is not None:
        rows["trials"] = str(trials)
    rows["storage"] = run.storage
    spent = run.search
    if spent is not None:
        rows["time on never-pickable trials"] = (
            f"{spent.never_pickable_seconds:.1f} s of {spent.seconds:.1f} s "
            f"({100 * spent.never_pickable_share:.1f}%, {spent.never_pickable} of "
            f"{spent.trials} trials over the largest budget)"
        )
    return rows


def write_report(
    path: Path,
    trials: Sequence[TrialRecord],
    run: RunRecord,
    figures: list[ReportFigure] | None = None,
) -> Path:
    """Write the report as one HTML file that opens offline (plotly's JS inlined once).

    The file is written to a temporary file in the same folder and moved into
    place, so a reader never sees half a report.

    Args:
        path: Where to write, e.g. ``runs/<study>/report.html``.
        trials: Every complete trial of the study.
        run: The run: summary, picks and finals, evaluation.
        figures: The figures, if already drawn (see :func:`~paretokd.report.figures`).

    Returns:
        ``path``.
    """
    from plotly.offline import get_plotlyjs

    drawn = figures if figures is not None else draw_figures(trials, run)
    evaluation = evaluation_table(run)
    page = _PAGE.format(
        title=html.escape(title(run)),
        plotlyjs=get_plotlyjs(),
        summary=_summary_table(summary_rows(run, len(trials))),
        unkept="".join(
            f'<p class="unkept">Budget {html.escape(p.budget)} is not kept: '
            f"{html.escape(p.reason or '')}</p>\n"
            for p in run.picks
            if p.trial is None
        ),
        picks=render_html(picks_table(run.picks, run.objective, run)),
        evaluation=_evaluation_section(evaluation) if evaluation is not None else "",
        figures="\n".join(_figure_section(f) for f in drawn),
    )
    return files.write_text(Path(path), page)


def _figure_section(f: ReportFigure) -> str:
    div = f.figure.to_html(
        include_plotlyjs=False,
        full_html=False,
        div_id=f.id,
        default_height="560px",
        config={"displaylogo": False},
    )
    return (
        f'<section class="figure">\n<h3>{html.escape(f.title)}</h3>\n'
        f"<p>{html.escape(f.caption)}</p>\n{div}\n</section>"
    )


def _summary_table(summary: dict[str, str]) -> str:
    rows = "\n".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in summary.items()
    )
    return f'<table class="summary">\n{rows}\n</table>'


def _evaluation_section(table: Table) -> str:
    return (
        "<h2>Evaluation</h2>\n"
        f"<p>{html.escape(table.caption or '')}. Each student after its final "
        "distillation; p50 latencies are measured as in the search, and the speed-up is "
        "the teacher's p50 over the model's.</p>\n" + render_html(table) + "\n"
    )
