"""A finished run folder read back (for notebooks): its record, its study and its trials."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from paretokd.errors import ParetokdError
from paretokd.records import RunRecord, TrialRecord
from paretokd.report.common import ReportFigure
from paretokd.report.figures import figures

if TYPE_CHECKING:
    import optuna

RECOMMENDATIONS = "recommendations.json"
"""The run record's file name inside a run folder."""


@dataclass
class Run:
    """A finished run folder read back: everything the figures and a re-pick need."""

    out_dir: Path
    study: optuna.Study
    trials: list[TrialRecord]
    """Every complete trial, in trial order."""
    record: RunRecord
    """``recommendations.json``: picks, finals, teacher, evaluation."""

    def figures(self) -> list[ReportFigure]:
        """The report's figures of this run (see :func:`~paretokd.report.figures`)."""
        return figures(self.trials, self.record)


def load_run(out_dir: str | Path, storage: str | None = None) -> Run:
    """Read a finished run folder: ``recommendations.json`` and its study.

    Args:
        out_dir: The run's output folder (``runs/<study>`` by default).
        storage: The storage URL, when the study is not in ``out_dir/study.db``.

    Raises:
        ParetokdError: If the folder holds no finished run, or its study is missing.
    """
    from paretokd.search.recommend import trials
    from paretokd.search.storage import default_storage, load_study

    out = Path(out_dir)
    record = RunRecord.read(out / RECOMMENDATIONS)
    if storage is None and not (out / "study.db").is_file():
        raise ParetokdError(f"no study database in {str(out)!r}; pass storage=URL")
    study = load_study(storage or default_storage(out), record.study)
    return Run(out_dir=out, study=study, trials=trials(study), record=record)
