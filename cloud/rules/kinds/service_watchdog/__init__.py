"""The `service_watchdog` rule kind (README.md beside this file); importing it registers it."""

from cloud.rules.kinds.service_watchdog.rule import ServiceWatchdog, ServiceWatchdogConfig

__all__ = ["ServiceWatchdog", "ServiceWatchdogConfig"]
