"""Our things as Smart Data Models entities (NGSI-LD out). The mapping, type by type, is in docs/exchange.md.

A sensor becomes the entity of its kind: a car park (`parking`) an `OffStreetParking`, a bay
(`parking_spot`) a `ParkingSpot`, a counter (`traffic`) a `TrafficFlowObserved`, a vehicle
(`fleet`) a `Vehicle` and a `FleetVehicleStatus`; a worksite a `CityWork`. The latest reading
gives the measured attributes (with `observedAt` in the normalized form) and its tags the
attributes the models have a slot for. Where a model has no slot for something our readings
carry, an attribute of ours keeps it (`heavyIntensity`, `direction`, `route`,
`fleetVehicleType`, `workType`), so that importing an export gives back the same readings
(`readings.py` is the inverse). Coordinates are GeoJSON [longitude, latitude] throughout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from cloud.core.worksites import Approval, WorksiteDetails, WorkType
from cloud.core.worksites import WorksiteStatus as Status
from cloud.exchange.context import context_of, urn
from cloud.exchange.forms import Entity
from cloud.exchange.units import fraction, heading_below_360
from edge.contract import Reading, SensorKind, format_ts

NO_STREET = "no-street"
# UN/CEFACT common codes for the normalized form's `unitCode`.
KMH = "KMH"  # kilometre per hour
DEGREE = "DD"  # degree (angle)
SECOND = "SEC"


@dataclass(frozen=True, slots=True)
class Place:
    lat: float
    lon: float
    name: str = ""
    capacity: int | None = None
    is_park_and_ride: bool = False

    def point(self) -> dict[str, Any]:
        return {"type": "Point", "coordinates": [self.lon, self.lat]}


@dataclass(frozen=True, slots=True)
class Thing:
    """A sensor the Situation Room knows: where it is, and its latest reading if any."""

    org: str
    gateway: str
    sensor: str
    kind: SensorKind
    place: Place | None = None
    latest: Reading | None = None
    tags: dict[str, str] = field(default_factory=dict)  # from the installation records

    @property
    def all_tags(self) -> dict[str, str]:
        return {**self.tags, **(self.latest.tags if self.latest else {})}


class NotExportableError(ValueError):
    """A thing lacks what its model requires (a place, an observation)."""

    def __init__(self, thing: str, reason: str) -> None:
        self.thing = thing
        self.reason = reason
        super().__init__(f"{thing}: {reason}")


# Our fleet's `vehicle_type` tag -> Vehicle `vehicleType`, `category`, `serviceProvided`.
VEHICLE_TYPES: dict[str, tuple[str, list[str], list[str]]] = {
    "bus": ("bus", ["public"], ["urbanTransit"]),
    "waste": ("lorry", ["municipalServices"], ["garbageCollection"]),
    "water": ("van", ["municipalServices"], ["maintenance"]),
    "gas": ("van", ["municipalServices"], ["maintenance"]),
}
_ANY_VEHICLE: tuple[str, list[str], list[str]] = ("anyVehicle", ["municipalServices"], [])


def _common(entity_type: str, thing: Thing) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "id": urn(entity_type, thing.org, thing.sensor),
        "type": entity_type,
        "dataProvider": thing.org,
    }
    if thing.place is not None:
        if thing.place.name:
            attrs["name"] = thing.place.name
        attrs["location"] = thing.place.point()
    return attrs


def _observed(reading: Reading | None, names: list[str]) -> dict[str, str]:
    return {} if reading is None else dict.fromkeys(names, format_ts(reading.ts))


def _needs_place(thing: Thing) -> Place:
    if thing.place is None:
        raise NotExportableError(thing.sensor, "its place is unknown (no site, no gateway location)")
    return thing.place


def off_street_parking(thing: Thing) -> Entity:
    place = _needs_place(thing)
    attrs = _common("OffStreetParking", thing)
    if thing.all_tags.get("zone"):
        attrs["areaServed"] = thing.all_tags["zone"]
    if place.is_park_and_ride:
        attrs["usageScenario"] = ["parkAndRide"]
    measured: list[str] = []
    r = thing.latest
    if r is not None:
        occupied, capacity = int(r.fields["occupied"]), int(r.fields["capacity"])
        attrs |= {
            "totalSpotNumber": capacity,
            "occupiedSpotNumber": occupied,
            "availableSpotNumber": max(capacity - occupied, 0),
            "occupancy": fraction(float(r.fields["occupancy_pct"])),
            "status": ["full"] if occupied >= capacity else ["spacesAvailable"],
            "observationDateTime": format_ts(r.ts),
        }
        measured = ["totalSpotNumber", "occupiedSpotNumber", "availableSpotNumber", "occupancy", "status"]
    elif place.capacity is not None:
        attrs["totalSpotNumber"] = place.capacity
    return Entity(attrs, context_of("OffStreetParking"), _observed(r, measured))


def parking_spot(thing: Thing) -> Entity:
    _needs_place(thing)
    attrs = _common("ParkingSpot", thing)
    tags = thing.all_tags
    # refParkingSite is required: the street's on-street parking site (a model we do not export),
    # or, for a bay whose street is not recorded, a site that says so.
    attrs["refParkingSite"] = urn("OnStreetParking", thing.org, tags.get("street", NO_STREET))
    attrs["category"] = ["onStreet"]
    if tags.get("zone"):
        attrs["areaServed"] = tags["zone"]
    r = thing.latest
    if r is None:
        attrs["status"] = "unknown"
    else:
        attrs["status"] = "occupied" if r.fields["occupied"] else "free"
        attrs["timeInstant"] = format_ts(r.ts)
    return Entity(attrs, context_of("ParkingSpot"), _observed(r, ["status"]))


def traffic_flow_observed(thing: Thing) -> Entity:
    r = thing.latest
    if r is None:
        raise NotExportableError(thing.sensor, "no observation yet (dateObserved is required)")
    attrs = _common("TrafficFlowObserved", thing)
    tags = thing.all_tags
    start = r.ts - timedelta(seconds=int(r.fields["interval_s"]))
    attrs |= {
        # Our record's ts is the end of its counting interval.
        "dateObserved": f"{format_ts(start)}/{format_ts(r.ts)}",
        "dateObservedFrom": format_ts(start),
        "dateObservedTo": format_ts(r.ts),
        "intensity": int(r.fields["vehicles"]),
        "heavyIntensity": int(r.fields["heavy"]),
        "averageVehicleSpeed": float(r.fields["speed_kmh"]),
        "occupancy": fraction(float(r.fields["occupancy_pct"])),
    }
    if tags.get("site"):
        attrs["refRoadSegment"] = urn("RoadSegment", thing.org, tags["site"])
    lane = tags.get("lane", "")
    if lane.isdigit() and int(lane) >= 1 and str(int(lane)) == lane:
        attrs["laneId"] = int(lane)
    if tags.get("direction"):
        attrs["direction"] = tags["direction"]
    measured = ["intensity", "heavyIntensity", "averageVehicleSpeed", "occupancy"]
    return Entity(
        attrs, context_of("TrafficFlowObserved"), _observed(r, measured), {"averageVehicleSpeed": KMH}
    )


def _fix(thing: Thing) -> Reading:
    if thing.latest is None:
        raise NotExportableError(thing.sensor, "no position yet (location is required)")
    return thing.latest


def _position(r: Reading) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [float(r.fields["lon"]), float(r.fields["lat"])]}


def _fleet_tags(attrs: dict[str, Any], tags: dict[str, str]) -> None:
    if tags.get("route"):
        attrs["route"] = tags["route"]
    if tags.get("vehicle_type"):
        attrs["fleetVehicleType"] = tags["vehicle_type"]


def vehicle(thing: Thing) -> Entity:
    r = _fix(thing)
    tags = thing.all_tags
    vehicle_type, category, services = VEHICLE_TYPES.get(tags.get("vehicle_type", ""), _ANY_VEHICLE)
    attrs = _common("Vehicle", thing) | {
        "location": _position(r),
        "vehicleType": vehicle_type,
        "category": category,
        "fleetVehicleId": thing.sensor,
        "speed": float(r.fields["speed_kmh"]),
        "heading": heading_below_360(float(r.fields["heading_deg"])),
        "observationDateTime": format_ts(r.ts),
    }
    if services:
        attrs["serviceProvided"] = services
    _fleet_tags(attrs, tags)
    return Entity(
        attrs,
        context_of("Vehicle"),
        _observed(r, ["location", "speed", "heading"]),
        {"speed": KMH, "heading": DEGREE},
    )


def fleet_vehicle_status(thing: Thing) -> Entity:
    r = _fix(thing)
    attrs = _common("FleetVehicleStatus", thing) | {
        "location": _position(r),
        "lastKnownPosition": _position(r),
        "lastKnownPositionUpdatedAt": format_ts(r.ts),
        "speed": float(r.fields["speed_kmh"]),
        "bearing": float(r.fields["heading_deg"]),
    }
    _fleet_tags(attrs, thing.all_tags)
    return Entity(
        attrs,
        context_of("FleetVehicleStatus"),
        _observed(r, ["location", "lastKnownPosition", "speed", "bearing"]),
        {"speed": KMH, "bearing": DEGREE},
    )


# Our work types -> CityWork `workTarget` (what the works are on).
WORK_TARGETS: dict[WorkType, str] = {
    WorkType.WATER: "drinkingWater",
    WorkType.SEWER: "sanitation",
    WorkType.GAS: "gasNetworks",
    WorkType.ELECTRICITY: "electricityNetworks",
    WorkType.TELECOM: "telecomNetworks",
    WorkType.DISTRICT_HEATING: "urbanHeating",
    WorkType.ROAD: "roads",
    WorkType.LIGHTING: "publicDecorativeLighting",
    WorkType.GREEN: "landscapedArea",
}
# (status, approval) -> CityWork `workState`; the inverse is in readings.py.
_PLANNED_STATES = {
    Approval.PENDING: "pendingAuthorization",
    Approval.APPROVED: "approved",
    Approval.REJECTED: "reject",
}
_STATES = {
    Status.ACTIVE: "open",
    Status.SUSPENDED: "other",
    Status.COMPLETED: "completed",
    Status.CANCELLED: "canceled",
}


def work_state(ws: WorksiteDetails) -> str:
    if ws.status is Status.PLANNED:
        return _PLANNED_STATES[ws.approval]
    return _STATES[ws.status]


def city_work(ws: WorksiteDetails) -> Entity:
    attrs: dict[str, Any] = {
        "id": urn("CityWork", ws.owner, ws.id),
        "type": "CityWork",
        "name": ws.title,
        "location": ws.geometry,  # GeoJSON [lon, lat], checked against the area when stored
        "address": {"streetAddress": ws.street},
        "roadImpacted": [{"roadName": ws.street}],
        "startDate": format_ts(ws.planned_start),
        "endDate": format_ts(ws.planned_end),
        "workState": work_state(ws),
        "workType": ws.work_type.value,
        "workTarget": [WORK_TARGETS.get(ws.work_type, "other")],
        "dataProvider": ws.owner,
        "owner": [ws.owner],
        "dateLastReported": format_ts(ws.updated_at),
    }
    if ws.description:
        attrs["description"] = ws.description
    if ws.permit_ref:
        attrs["workNumber"] = ws.permit_ref
    if ws.impact.bus_lines:
        attrs["busImpacted"] = [{"lineName": line} for line in ws.impact.bus_lines]
        attrs["countOfBusLineImpacted"] = len(ws.impact.bus_lines)
    return Entity(attrs, context_of("CityWork"))


BUILDERS = {
    SensorKind.PARKING: (off_street_parking,),
    SensorKind.PARKING_SPOT: (parking_spot,),
    SensorKind.TRAFFIC: (traffic_flow_observed,),
    SensorKind.FLEET: (vehicle, fleet_vehicle_status),
}


def entities_of(thing: Thing) -> list[Entity]:
    """The entities of one sensor (a vehicle has two); raises NotExportableError."""
    builders = BUILDERS.get(thing.kind)
    if builders is None:
        raise NotExportableError(thing.sensor, f"{thing.kind.value} readings are not exported")
    return [build(thing) for build in builders]


__all__ = [
    "BUILDERS",
    "NO_STREET",
    "NotExportableError",
    "Place",
    "Thing",
    "city_work",
    "entities_of",
    "fleet_vehicle_status",
    "off_street_parking",
    "parking_spot",
    "traffic_flow_observed",
    "vehicle",
    "work_state",
]
