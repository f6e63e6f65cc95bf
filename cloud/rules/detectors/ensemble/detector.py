"""The `ensemble` detector: seasonal and flatline together, Bonferroni-combined."""

from __future__ import annotations

from cloud.rules.detectors.flatline.detector import FlatlineDetector
from cloud.rules.detectors.registry import Detector, register
from cloud.rules.detectors.seasonal.detector import SeasonalDetector


@register("ensemble")
class EnsembleDetector(Detector):
    """Seasonal and flatline together; the rarer wins, Bonferroni-corrected (p times the number
    of detectors) so that combining them does not inflate false alarms.

    The robust z-score is left out: after a stuck stretch its spread is ~0 and the recovery looks
    like an anomaly of its own, and the seasonal detector's level model already covers spikes."""

    def __init__(self) -> None:
        self.members: list[Detector] = [SeasonalDetector(), FlatlineDetector()]

    @property
    def baseline(self) -> float | None:
        return self.members[0].baseline

    def pvalue(self, ts: float, value: float) -> float:
        smallest = min(m.pvalue(ts, value) for m in self.members)
        return min(1.0, smallest * len(self.members))
