"""The `threshold` rule kind (README.md beside this file); importing it registers it."""

from cloud.rules.kinds.threshold.rule import Threshold, ThresholdConfig, ThresholdGroup

__all__ = ["Threshold", "ThresholdConfig", "ThresholdGroup"]
