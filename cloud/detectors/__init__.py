"""Streaming anomaly detectors with calibrated scores (`sitroom rules replay --detector NAME`).

Built-in detectors, registered on import: level, robust-zscore, seasonal, flatline, ensemble.
"""

from cloud.detectors import (
    builtin,  # noqa: F401  (registers the built-in detectors)
    onset,  # noqa: F401
)
from cloud.detectors.calibration import DECADES, TailCalibrator, p_from_score, score_from_p
from cloud.detectors.registry import Detector, UnknownDetectorError, get, names

DEFAULT = "ensemble"

__all__ = [
    "DECADES",
    "DEFAULT",
    "Detector",
    "TailCalibrator",
    "UnknownDetectorError",
    "get",
    "names",
    "p_from_score",
    "score_from_p",
]
