"""Streaming anomaly detectors with calibrated scores (`sitroom rules replay --detector NAME`).

Built-in detectors, registered on import: level, robust-zscore, seasonal, flatline, ensemble
(builtin.py), and one plugin folder each, with its README: onset. DEFAULT names the best of them
on real labelled series (bench/detection.py, docs/detection.md).
"""

from cloud.detectors import (
    builtin,  # noqa: F401  (registers the built-in detectors)
    onset,  # noqa: F401  (one import line per plugin folder)
)
from cloud.detectors.calibration import DECADES, TailCalibrator, p_from_score, score_from_p
from cloud.detectors.registry import Detector, UnknownDetectorError, get, names
from cloud.detectors.state import StateError

DEFAULT = "onset"

__all__ = [
    "DECADES",
    "DEFAULT",
    "Detector",
    "StateError",
    "TailCalibrator",
    "UnknownDetectorError",
    "get",
    "names",
    "p_from_score",
    "score_from_p",
]
