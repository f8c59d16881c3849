"""Every figure of a run, drawn and titled, in page order (the page and the dashboard show them)."""

from __future__ import annotations

from collections.abc import Sequence

from paretokd.records import RunRecord, TrialRecord
from paretokd.report.architectures import architectures_figure, architectures_info
from paretokd.report.common import ReportFigure, _ms, comparison_points
from paretokd.report.curves import curves_figure, curves_info
from paretokd.report.hypervolume import default_corner, hypervolume_figure, hypervolume_info
from paretokd.report.latency_params import latency_params_figure, latency_params_info
from paretokd.report.pareto import pareto_figure, pareto_info


def figures(trials: Sequence[TrialRecord], run: RunRecord) -> list[ReportFigure]:
    """Every figure of the report, drawn, in page order.

    The same figures go into ``report.html``, the dashboard's study page and the
    notebook.

    Args:
        trials: Every complete trial of the run's study.
        run: The run: its picks (budget lines and stars), its objective 1 and the
            models to compare with (:func:`~paretokd.report.comparison_points`).
    """
    objective, picks, comparisons = run.objective, run.picks, comparison_points(run)
    budgets = [p.budget_ms for p in picks]
    hv = hypervolume_info(trials, default_corner(trials, budgets, objective), objective=objective)
    name = objective.name
    worse = ">" if objective.maximise else "<"
    box = f"{name} {worse} {hv.corner[0]:g}, p50 < {_ms(hv.corner[1])} ms"
    edge = "bottom" if objective.maximise else "top"
    drawn = [
        ReportFigure(
            "pareto-front",
            f"{name.capitalize()} against latency",
            "Every complete trial. The line joins the feasible Pareto front: no trial is "
            "both faster and better. Dashed lines are the budgets, stars the picks. "
            f"Trials slower than the largest budget were not trained and sit on the {edge} row.",
            pareto_figure(pareto_info(trials, picks, comparisons, objective=objective)),
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
                latency_params_info(trials, picks, comparisons, objective=objective)
            ),
        ),
        ReportFigure(
            "architectures",
            "Architectures",
            "One line per trial across its choices and results; drag along an axis to "
            f"filter. Colour is the {objective.label} (darker is better), grey lines were "
            "not trained.",
            architectures_figure(architectures_info(trials, objective=objective)),
        ),
    ]
    curves = curves_info(run)
    if curves:
        drawn.append(
            ReportFigure(
                "final-curves",
                "Final distillations",
                "The held-out proxy loss of each final student while it trained; a star "
                "marks the step whose weights it ships (the lowest).",
                curves_figure(curves),
            )
        )
    return drawn
