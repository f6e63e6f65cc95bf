"""The `parking_saturation` rule kind (README.md beside this file); importing it registers it."""

from cloud.rules.kinds.parking_saturation.rule import ParkingSaturation, ParkingSaturationConfig

__all__ = ["ParkingSaturation", "ParkingSaturationConfig"]
