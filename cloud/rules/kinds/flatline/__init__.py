"""The `flatline` rule kind (README.md beside this file); importing it registers it."""

from cloud.rules.kinds.flatline.rule import Flatline, FlatlineConfig, FlatlineGroup

__all__ = ["Flatline", "FlatlineConfig", "FlatlineGroup"]
