"""The `worksite_bus_delay` rule kind (README.md beside this file); importing it registers it."""

from cloud.rules.kinds.worksite_bus_delay.rule import WorksiteBusDelay, WorksiteBusDelayConfig

__all__ = ["WorksiteBusDelay", "WorksiteBusDelayConfig"]
