"""The `rate_of_change` rule kind (README.md beside this file); importing it registers it."""

from cloud.rules.kinds.rate_of_change.rule import RateOfChange, RateOfChangeConfig, RateOfChangeGroup

__all__ = ["RateOfChange", "RateOfChangeConfig", "RateOfChangeGroup"]
