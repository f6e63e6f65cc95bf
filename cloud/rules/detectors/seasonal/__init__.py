"""The `seasonal` detector (README.md beside this file); importing it registers it."""

from cloud.rules.detectors.seasonal.detector import SeasonalDetector
from cloud.rules.detectors.seasonal.models import detect_period

__all__ = ["SeasonalDetector", "detect_period"]
