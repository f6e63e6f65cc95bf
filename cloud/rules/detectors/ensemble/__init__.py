"""The `ensemble` detector (README.md beside this file); importing it registers it."""

from cloud.rules.detectors.ensemble.detector import EnsembleDetector

__all__ = ["EnsembleDetector"]
