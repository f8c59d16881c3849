"""Re-timing a fixed model to catch a machine whose speed has drifted."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paretokd.config import LatencySpec
from paretokd.latency.paired import calibrate

DRIFT_THRESHOLD = 0.10
"""Relative change of the anchor model's p50 that counts as the machine drifting."""


@dataclass(frozen=True)
class DriftCheck:
    """One re-measurement of the anchor model (the teacher) against its stored p50."""

    baseline_ms: float
    p50_ms: float
    ci_ms: tuple[float, float] | None
    threshold: float
    at: float = field(default_factory=time.time)

    @property
    def ratio(self) -> float:
        """Current p50 over the stored one (above 1: the machine got slower)."""
        return self.p50_ms / self.baseline_ms

    @property
    def drifted(self) -> bool:
        """Whether the change exceeds the threshold."""
        return abs(self.ratio - 1.0) > self.threshold

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values."""
        return {
            "baseline_ms": self.baseline_ms,
            "p50_ms": self.p50_ms,
            "ci_ms": list(self.ci_ms) if self.ci_ms else None,
            "ratio": self.ratio,
            "threshold": self.threshold,
            "drifted": self.drifted,
            "at": self.at,
        }


def check_drift(
    anchor: Path,
    spec: LatencySpec,
    baseline_ms: float,
    vocab_size: int | None = None,
    threshold: float = DRIFT_THRESHOLD,
) -> DriftCheck:
    """Re-time the anchor model at ``anchor`` and compare with ``baseline_ms``.

    It is timed as the study's calibration timed it (:func:`calibrate`): the same
    protocol on both sides, so a change is the machine's, not the protocol's (the
    single-model protocol read the teacher 37.7 to 57.4 ms in fresh processes where
    the calibration read 40.5 to 45.7 ms). With a trial's ``spec.rounds`` blocks
    rather than the calibration's: a check every few trials should cost about a
    trial's timing (on MiniLM 3 s, against 12 s).
    """
    stats = calibrate(anchor, spec, vocab_size, spec.rounds)
    return DriftCheck(baseline_ms, stats.p50_ms, stats.ci_ms, threshold)
