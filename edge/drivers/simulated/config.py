"""The pydantic configs of the simulated drivers, as a gateway config's `sensors` entries hold them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, Field, model_validator

from edge.contract import Id
from edge.drivers.registry import DriverConfig
from edge.simulators.anomalies import FleetAnomaly, ParkingAnomaly, SpotAnomaly, TrafficAnomaly
from edge.simulators.places import (
    CITY_BOX,
    FACILITIES,
    ROUTES,
    SITES,
    ZONES,
    in_city_box,
)


def _known(table: Mapping[str, object], what: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value not in table:
            raise ValueError(f"unknown {what} {value!r}; known: {', '.join(sorted(table))}")
        return value

    return check


PlaceSlug = Annotated[
    str, Field(json_schema_extra={"enum": sorted(FACILITIES)}), AfterValidator(_known(FACILITIES, "place"))
]
ZoneSlug = Annotated[
    str, Field(json_schema_extra={"enum": sorted(ZONES)}), AfterValidator(_known(ZONES, "zone"))
]
SiteSlug = Annotated[
    str, Field(json_schema_extra={"enum": sorted(SITES)}), AfterValidator(_known(SITES, "site"))
]
RouteSlug = Annotated[
    str, Field(json_schema_extra={"enum": sorted(ROUTES)}), AfterValidator(_known(ROUTES, "route"))
]

IntervalS = Annotated[int, Field(ge=1, le=3600)]


class SimParkingConfig(DriverConfig):
    """A parking facility of Prato whose gate counter reports occupancy."""

    driver: Literal["sim_parking"] = "sim_parking"
    place: PlaceSlug
    capacity: int | None = Field(default=None, ge=1, le=20_000)  # None: the place's own
    interval_s: IntervalS = 60
    anomalies: list[ParkingAnomaly] = []

    @property
    def spaces(self) -> int:
        return FACILITIES[self.place].capacity if self.capacity is None else self.capacity


class SimParkingSpotConfig(DriverConfig):
    """One on-street bay with an in-ground occupancy sensor."""

    driver: Literal["sim_parking_spot"] = "sim_parking_spot"
    street: Id
    zone: ZoneSlug
    lat: float | None = Field(default=None, ge=-90, le=90)  # where the bay is, for maps
    lon: float | None = Field(default=None, ge=-180, le=180)
    interval_s: IntervalS = 60
    anomalies: list[SpotAnomaly] = []

    @model_validator(mode="after")
    def _position(self) -> Self:
        if (self.lat is None) != (self.lon is None):
            raise ValueError("give both lat and lon, or neither")
        if self.lat is not None and self.lon is not None and not in_city_box((self.lat, self.lon)):
            south, west, north, east = CITY_BOX
            raise ValueError(
                f"lat/lon ({self.lat}, {self.lon}) is outside Prato "
                f"(lat {south}..{north}, lon {west}..{east})"
            )
        return self


class SimTrafficConfig(DriverConfig):
    """One lane and direction of a traffic counter site."""

    driver: Literal["sim_traffic"] = "sim_traffic"
    site: SiteSlug
    lane: int = Field(default=1, ge=1, le=9)
    direction: Id  # `inbound`/`outbound` skew the peaks; compass points (`north`) do not
    interval_s: IntervalS = 300
    peak_vph: int = Field(default=900, ge=1, le=5_000)  # the lane's flow at the peak hour
    anomalies: list[TrafficAnomaly] = []


class SimFleetConfig(DriverConfig):
    """A vehicle driving one of Prato's routes, reporting GNSS fixes."""

    driver: Literal["sim_fleet"] = "sim_fleet"
    route: RouteSlug
    vehicle_type: Id | None = None  # None: the route's own (bus, waste, water, gas)
    interval_s: IntervalS = 10
    speed_kmh: float = Field(default=25.0, gt=0, le=130, allow_inf_nan=False)  # outside the centre
    anomalies: list[FleetAnomaly] = []
