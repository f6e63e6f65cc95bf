"""Device drivers, registered by name. One import line per built-in driver."""

from edge.drivers import (
    bosch_parking,  # noqa: F401  (registers bosch_parking)
    nmea,  # noqa: F401  (registers nmea)
    simulated,  # noqa: F401  (registers sim_parking, sim_traffic, sim_fleet, ...)
    traffic_counter,  # noqa: F401  (registers traffic_counter)
)
from edge.drivers.registry import (
    DecodingDriver,
    Driver,
    DriverConfig,
    NotADecoderError,
    Source,
    SourceContext,
    StreamDecoder,
    UnknownDriverError,
    all_drivers,
    declaration,
    decoding_drivers,
    folder,
    get,
    get_decoding,
    register,
    stats_of,
)

__all__ = [
    "DecodingDriver",
    "Driver",
    "DriverConfig",
    "NotADecoderError",
    "Source",
    "SourceContext",
    "StreamDecoder",
    "UnknownDriverError",
    "all_drivers",
    "declaration",
    "decoding_drivers",
    "folder",
    "get",
    "get_decoding",
    "register",
    "stats_of",
]
