"""The study report: figures of the search and the picks, the tables, the page, the dashboard.

As in Optuna's ``visualization/``, every figure is computed first (an ``*_info``
function returning plain data that the tests check directly) and drawn second
(an ``*_figure`` function, plotly only). plotly and Optuna are imported inside
the functions that need them, so importing this package (e.g. from the CLI)
stays cheap.

Modules, from the floor up:

- ``common``: colours, point types, axis and drawing helpers, number formats;
- ``pareto``, ``hypervolume``, ``latency_params``, ``architectures``: one figure each;
- ``figures``: all four, titled, in page order;
- ``tables``: one table model (picks, evaluation) and its HTML, markdown and console renderers;
- ``page``: ``report.html`` and its summary; ``note``: the dashboard's markdown note;
- ``run``: a finished run folder read back; ``dashboard``: publishing and serving.

Objective 1 of a study is the proxy loss (minimised, the default) or a task
metric such as accuracy (maximised); functions that label or colour it take one
:class:`~paretokd.records.Objective`.
"""

from paretokd.report.architectures import (
    ArchitecturesInfo,
    Axis,
    architectures_figure,
    architectures_info,
)
from paretokd.report.common import (
    INFEASIBLE_NAME,
    PARAMS_TITLE,
    TRIAL_META,
    X_TITLE,
    Y_TITLE,
    BudgetLine,
    ComparisonMark,
    ComparisonPoint,
    PickMarker,
    PlotPoint,
    ReportFigure,
    comparison_points,
)
from paretokd.report.dashboard import Published, publish, serve
from paretokd.report.figures import figures
from paretokd.report.hypervolume import (
    HypervolumeInfo,
    default_corner,
    hypervolume_2d,
    hypervolume_figure,
    hypervolume_info,
)
from paretokd.report.latency_params import (
    LatencyParamsInfo,
    latency_params_figure,
    latency_params_info,
)
from paretokd.report.note import markdown_note
from paretokd.report.page import summary_rows, write_report
from paretokd.report.pareto import ParetoInfo, pareto_figure, pareto_info
from paretokd.report.run import Run, load_run
from paretokd.report.tables import (
    REFERENCE_MODEL,
    Cell,
    Row,
    Table,
    evaluation_table,
    picks_table,
    render_console,
    render_html,
    render_markdown,
)

__all__ = [
    "INFEASIBLE_NAME",
    "PARAMS_TITLE",
    "REFERENCE_MODEL",
    "TRIAL_META",
    "X_TITLE",
    "Y_TITLE",
    "ArchitecturesInfo",
    "Axis",
    "BudgetLine",
    "Cell",
    "HypervolumeInfo",
    "LatencyParamsInfo",
    "ParetoInfo",
    "PickMarker",
    "PlotPoint",
    "Published",
    "ComparisonMark",
    "ComparisonPoint",
    "ReportFigure",
    "Row",
    "Run",
    "Table",
    "architectures_figure",
    "architectures_info",
    "default_corner",
    "evaluation_table",
    "figures",
    "hypervolume_2d",
    "hypervolume_figure",
    "hypervolume_info",
    "latency_params_figure",
    "latency_params_info",
    "load_run",
    "markdown_note",
    "pareto_figure",
    "pareto_info",
    "picks_table",
    "publish",
    "comparison_points",
    "render_console",
    "render_html",
    "render_markdown",
    "serve",
    "summary_rows",
    "write_report",
]
