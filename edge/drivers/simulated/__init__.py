"""Simulated drivers of Prato's parking, traffic and fleets, registered like device drivers."""

from edge.drivers.simulated.config import (
    SimFleetConfig,
    SimParkingConfig,
    SimParkingSpotConfig,
    SimTrafficConfig,
)
from edge.drivers.simulated.fleet import SimFleet
from edge.drivers.simulated.parking import SimParking, SimParkingSpot
from edge.drivers.simulated.traffic import SimTraffic

__all__ = [
    "SimFleet",
    "SimFleetConfig",
    "SimParking",
    "SimParkingConfig",
    "SimParkingSpot",
    "SimParkingSpotConfig",
    "SimTraffic",
    "SimTrafficConfig",
]
