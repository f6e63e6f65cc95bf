"""The `level` detector: distance from the median of the last few readings."""

from __future__ import annotations

import math
from collections import deque

from cloud.rules.detectors.calibration import TailCalibrator
from cloud.rules.detectors.registry import Detector, register
from cloud.rules.detectors.robust import LEVEL_WINDOW, median


@register("level")
class LevelDetector(Detector):
    """Distance from the median of the last few readings: spikes, drops and level shifts."""

    def __init__(self) -> None:
        self.recent: deque[float] = deque(maxlen=LEVEL_WINDOW)
        self.calibrator = TailCalibrator()

    def pvalue(self, ts: float, value: float) -> float:
        residual = math.nan if len(self.recent) < 2 else abs(value - median(self.recent))
        p = self.calibrator.pvalue(residual)
        self.calibrator.add(residual)
        self.recent.append(value)
        return p
