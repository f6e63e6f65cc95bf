"""The `seasonal` rule kind (README.md beside this file); importing it registers it."""

from cloud.rules.kinds.seasonal.rule import Seasonal, SeasonalConfig

__all__ = ["Seasonal", "SeasonalConfig"]
