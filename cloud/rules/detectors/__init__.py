"""Streaming anomaly detectors with calibrated scores (`sitroom rules replay --detector NAME`).

Every detector is streaming: `pvalue(ts, value)` judges `value` only on the rows before it,
then learns it. Every score is a calibrated tail probability turned into [0, 1] by
`calibration.score_from_p`, so one threshold means one rarity on every series.

A detector is a folder (code, `README.md`, `sample.yaml`, `cases.yaml`; run by
tests/cloud/test_detector_registry.py), registered by one import line each here.
"""

from cloud.rules.detectors import (
    ensemble,  # noqa: F401  (registers ensemble)
    flatline,  # noqa: F401  (registers flatline)
    level,  # noqa: F401  (registers level)
    onset,  # noqa: F401  (registers onset)
    robust_zscore,  # noqa: F401  (registers robust-zscore)
    seasonal,  # noqa: F401  (registers seasonal)
)
from cloud.rules.detectors.calibration import DECADES, TailCalibrator, p_from_score, score_from_p
from cloud.rules.detectors.registry import (
    ALIAS,
    DEFAULT,
    Detector,
    UnknownDetectorError,
    all_detectors,
    folder,
    get,
    names,
    resolve,
)
from cloud.rules.detectors.state import StateError

__all__ = [
    "ALIAS",
    "DECADES",
    "DEFAULT",
    "Detector",
    "StateError",
    "TailCalibrator",
    "UnknownDetectorError",
    "all_detectors",
    "folder",
    "get",
    "names",
    "p_from_score",
    "resolve",
    "score_from_p",
]
