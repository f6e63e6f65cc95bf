"""The `flatline` detector (README.md beside this file); importing it registers it."""

from cloud.rules.detectors.flatline.detector import FlatlineDetector

__all__ = ["FlatlineDetector"]
