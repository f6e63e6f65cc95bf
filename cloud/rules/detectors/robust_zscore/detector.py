"""The `robust-zscore` detector: |value - median| / MAD over the last 30 readings."""

from __future__ import annotations

import math
from collections import deque

from cloud.rules.detectors.calibration import TailCalibrator
from cloud.rules.detectors.registry import Detector, register
from cloud.rules.detectors.robust import median


@register("robust-zscore")
class RobustZScoreDetector(Detector):
    """|value - median| / MAD over the last 30 readings: adapts to each stretch's own spread."""

    WINDOW = 30

    def __init__(self) -> None:
        self.recent: deque[float] = deque(maxlen=self.WINDOW)
        self.calibrator = TailCalibrator()
        self.long_scale = 0.0

    def pvalue(self, ts: float, value: float) -> float:
        z = math.nan
        if len(self.recent) >= 5:
            med = median(self.recent)
            mad = 1.4826 * median([abs(v - med) for v in self.recent])
            self.long_scale += 0.01 * (mad - self.long_scale)
            # A MAD of 0 (a stuck or constant stretch) would make the first change after it
            # infinitely surprising: floor it by the series' long-run spread (or its level).
            scale = max(mad, 0.25 * self.long_scale, 1e-6 * (abs(med) + 1.0))
            z = abs(value - med) / scale
        p = self.calibrator.pvalue(z)
        self.calibrator.add(z)
        self.recent.append(value)
        return p
