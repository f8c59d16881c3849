"""The recommendations as markdown: the study's note in optuna-dashboard."""

from __future__ import annotations

from paretokd.records import RunRecord
from paretokd.report.page import summary_rows
from paretokd.report.tables import evaluation_table, md_escape, picks_table, render_markdown


def markdown_note(run: RunRecord, links: dict[str, str] | None = None) -> str:
    """The run's summary, picks and evaluation scores as markdown.

    Args:
        run: The finished run.
        links: What the files column shows per budget (``10ms``), e.g. the names
            of the uploaded artifacts; by default each final student's folder.

    Returns:
        A heading, the summary as a list, the picks table and, when the run
        scored its students, the evaluation table.
    """
    trials = run.search.trials if run.search is not None else None
    lines = [f"## Recommendations of {md_escape(run.study)}", ""]
    lines += [f"- **{md_escape(k)}**: {md_escape(v)}" for k, v in summary_rows(run, trials).items()]
    lines += [f"- **teacher p50**: {run.teacher.latency_ms:.2f} ms", ""]
    lines.append(render_markdown(picks_table(run.picks, run.objective, run, files=links)))
    evaluation = evaluation_table(run)
    if evaluation is not None:
        lines += ["", f"### Evaluation: {md_escape(evaluation.caption or '')}", ""]
        lines.append(render_markdown(evaluation))
    return "\n".join(lines) + "\n"
