"""Device drivers, registered by name. One import line per built-in driver."""

from edge.drivers import simulated  # noqa: F401  (registers sim_parking, sim_traffic, sim_fleet, ...)
from edge.drivers.registry import (
    Driver,
    DriverConfig,
    Source,
    SourceContext,
    UnknownDriverError,
    all_drivers,
    get,
    register,
)

__all__ = [
    "Driver",
    "DriverConfig",
    "Source",
    "SourceContext",
    "UnknownDriverError",
    "all_drivers",
    "get",
    "register",
]
