"""The `onset` detector (README.md beside this file); importing it registers it."""

from cloud.rules.detectors.onset.detector import OnsetDetector

__all__ = ["OnsetDetector"]
