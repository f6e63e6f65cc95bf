"""The `robust-zscore` detector (README.md beside this file); importing it registers it."""

from cloud.rules.detectors.robust_zscore.detector import RobustZScoreDetector

__all__ = ["RobustZScoreDetector"]
