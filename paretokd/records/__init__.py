"""The typed records that cross module boundaries: one shape, one way in and out, per fact.

Every record is a frozen dataclass. Those that are stored have exactly one pair
of functions that write and read them: ``to_json``/``from_json`` for the files
paretokd writes, and :meth:`TrialRecord.write`/:meth:`TrialRecord.read` for a
trial's Optuna attributes (names in :class:`Attr`). A derived number (an
architecture's id, a speed-up, feasibility, a share) is a property of the record
that owns it, computed in one place.

This package is the floor of the package: it imports nothing of paretokd but the
config's budget format, the metrics' worst values and the atomic file writer, and no library
beyond the standard one, so every layer can use it.
"""

from paretokd.records.measures import (
    FP32,
    LOSS,
    METRIC_IDEAL,
    UNTRAINED_LOSS,
    Arch,
    Fingerprint,
    LatencyStats,
    Objective,
)
from paretokd.records.run import (
    REFERENCE_FOLDER,
    SCHEMA_VERSION,
    Evaluation,
    FinalStudent,
    ReferenceStudent,
    RunRecord,
    SearchSpend,
    TeacherRecord,
)
from paretokd.records.trial import CONSTRAINT, Attr, Pick, TrialRecord

__all__ = [
    "CONSTRAINT",
    "FP32",
    "LOSS",
    "METRIC_IDEAL",
    "REFERENCE_FOLDER",
    "SCHEMA_VERSION",
    "UNTRAINED_LOSS",
    "Arch",
    "Attr",
    "Evaluation",
    "FinalStudent",
    "Fingerprint",
    "LatencyStats",
    "Objective",
    "Pick",
    "ReferenceStudent",
    "RunRecord",
    "SearchSpend",
    "TeacherRecord",
    "TrialRecord",
]
