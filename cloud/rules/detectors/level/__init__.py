"""The `level` detector (README.md beside this file); importing it registers it."""

from cloud.rules.detectors.level.detector import LevelDetector

__all__ = ["LevelDetector"]
