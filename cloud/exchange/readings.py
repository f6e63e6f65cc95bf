"""Smart Data Models entities as readings (NGSI-LD in): the inverse of `entities.py`, plus EVChargingStation.

Each entity of a known type becomes one wire-contract reading of its kind, in either NGSI-LD form.
This module only re-shapes: values go to ingest's decoder as the partner sent them (a fraction
becomes a percentage, a count may be derived from two others), so the contract judges them, and
`Mapped.paths` names every refusal by the entity attribute it came from. The reading's time is
the model's observation attribute, else the `observedAt` of the main measured attribute, else
`dateModified`, else the notification's `notifiedAt`. Tag values are made to fit the contract's
tag pattern (other characters become `-`), so that a partner's "Centro Storico" does not cost
the reading.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cloud.exchange.context import local_id
from cloud.exchange.entities import NO_STREET, Place
from cloud.exchange.forms import Attribute, FormError, attributes
from cloud.exchange.units import percent
from edge.contract import TAG_VALUE_PATTERN, SensorKind

_NOT_TAG = re.compile(r"[^A-Za-z0-9_.:@-]+")
_TAG = re.compile(TAG_VALUE_PATTERN)


class UnmappedError(ValueError):
    """An entity that gives no reading: unknown type, not a reading's type, or unreadable shape."""

    def __init__(self, reason: str, attribute: str, message: str, value: Any = None) -> None:
        self.reason = reason  # unknown_type | not_a_reading | schema
        self.attribute = attribute
        self.message = message
        self.value = value
        super().__init__(f"{attribute}: {message}")


@dataclass(slots=True)
class Mapped:
    kind: SensorKind
    sensor: str
    reading: dict[str, Any]  # the wire form: sensor, ts, fields, tags
    paths: dict[str, str] = field(default_factory=dict)  # "fields.capacity" -> "totalSpotNumber"
    place: Place | None = None
    name: str = ""

    def attribute_of(self, wire_path: str) -> str:
        """The entity attribute a path inside this reading (`fields.capacity`) came from."""
        for inner, attribute in self.paths.items():
            if wire_path == inner or wire_path.startswith(inner + "."):
                return attribute + wire_path[len(inner) :]
        return wire_path


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _tag(value: Any) -> str | None:
    """A tag value as the contract takes it: unchanged when it already fits, else made to fit."""
    if not isinstance(value, str | int) or isinstance(value, bool):
        return None
    text = str(value)
    if _TAG.fullmatch(text):
        return text
    return _NOT_TAG.sub("-", text).strip("-")[:64] or None


def _local_part(value: Any) -> str | None:
    """The local id of a relationship's object: what follows `urn:ngsi-ld:{type}:{org}:` in our
    URNs (context.urn), else the last `:`-separated part."""
    if not isinstance(value, str):
        return None
    parts = value.split(":", 4)
    return _tag(parts[4] if len(parts) == 5 and parts[:2] == ["urn", "ngsi-ld"] else parts[-1])


class _Builder:
    """One entity's reading, field by field, remembering where each value came from."""

    def __init__(self, kind: SensorKind, entity: dict[str, Any], attrs: dict[str, Attribute]) -> None:
        self.kind = kind
        self.attrs = attrs
        sensor = local_id(str(entity.get("id", "")))
        self.out = Mapped(kind, sensor, {"sensor": sensor, "fields": {}}, {"sensor": "id"})
        name = attrs.get("name")
        if name is not None and isinstance(name.value, str):
            self.out.name = name.value

    def value(self, attribute: str) -> Any:
        a = self.attrs.get(attribute)
        return None if a is None else a.value

    def put(self, name: str, attribute: str, value: Any = None) -> None:
        """fields[name] = the attribute's value (or `value` derived from it), when there is one."""
        if value is None:
            value = self.value(attribute)
        if value is not None:
            self.out.reading["fields"][name] = value
        self.out.paths[f"fields.{name}"] = attribute

    def tag(self, name: str, attribute: str, value: str | None = None) -> None:
        value = value if value is not None else _tag(self.value(attribute))
        if value is not None:
            self.out.reading.setdefault("tags", {})[name] = value
            self.out.paths[f"tags.{name}"] = attribute

    def time(self, own: tuple[str, ...], measured: str, fallback: str | None) -> None:
        for attribute in own:
            if attribute in self.attrs:
                self.out.reading["ts"] = self.value(attribute)
                self.out.paths["ts"] = attribute
                return
        observed = self.attrs.get(measured)
        if observed is not None and observed.observed_at is not None:
            self.out.reading["ts"], self.out.paths["ts"] = observed.observed_at, f"{measured}.observedAt"
        elif "dateModified" in self.attrs:
            self.out.reading["ts"], self.out.paths["ts"] = self.value("dateModified"), "dateModified"
        elif fallback is not None:
            self.out.reading["ts"], self.out.paths["ts"] = fallback, "notifiedAt"
        else:
            raise UnmappedError("schema", measured, "no observation time (observedAt, dateModified)")

    def place(self, attribute: str = "location") -> tuple[float, float] | None:
        """(lon, lat) of a Point attribute; also kept as the reading's place."""
        geo = self.value(attribute)
        if not isinstance(geo, dict):
            return None
        coords = geo.get("coordinates")
        if geo.get("type") != "Point" or not isinstance(coords, list) or len(coords) < 2:
            raise UnmappedError("schema", f"{attribute}.type", "expected a GeoJSON Point", geo.get("type"))
        lon, lat = coords[0], coords[1]
        if _number(lon) and _number(lat) and -90 <= lat <= 90 and -180 <= lon <= 180:
            self.out.place = Place(lat=float(lat), lon=float(lon), name=self.out.name)
        return lon, lat


def _off_street_parking(b: _Builder, fallback: str | None) -> None:
    total, occupied, available = (
        b.value(a) for a in ("totalSpotNumber", "occupiedSpotNumber", "availableSpotNumber")
    )
    b.put("capacity", "totalSpotNumber")
    if occupied is None and _number(total) and _number(available):
        b.put("occupied", "availableSpotNumber", total - available)
    elif occupied is None and available is not None:
        b.put("occupied", "availableSpotNumber", available)  # not a number: the contract says so
    else:
        b.put("occupied", "occupiedSpotNumber")
    share = b.value("occupancy")
    if share is not None:
        b.put("occupancy_pct", "occupancy", percent(share) if _number(share) else share)
    else:
        count = b.out.reading["fields"].get("occupied")
        if _number(count) and _number(total) and total > 0:
            b.put("occupancy_pct", "occupiedSpotNumber/totalSpotNumber", count / total * 100)
    b.tag("zone", "areaServed")
    b.place()
    measured = "availableSpotNumber" if available is not None else "occupiedSpotNumber"
    b.time(("observationDateTime",), measured, fallback)


def _parking_spot(b: _Builder, fallback: str | None) -> None:
    status = b.value("status")
    # Only a bay seen occupied or free is a reading; closed and unknown say nothing about a car.
    if status in ("occupied", "free"):
        b.put("occupied", "status", status == "occupied")
    elif status in ("closed", "unknown"):
        raise UnmappedError("schema", "status", "no occupancy to record", status)
    else:
        b.put("occupied", "status")
    b.tag("zone", "areaServed")
    street = _local_part(b.value("refParkingSite"))
    if street != NO_STREET:
        b.tag("street", "refParkingSite", street)
    b.place()
    b.time(("timeInstant",), "status", fallback)


def _interval_s(b: _Builder) -> tuple[Any, str]:
    start, end = b.value("dateObservedFrom"), b.value("dateObservedTo")
    where = "dateObservedFrom"
    if start is None or end is None:
        observed = b.value("dateObserved")
        if isinstance(observed, str) and "/" in observed:
            start, end = observed.split("/", 1)
            where = "dateObserved"
    try:
        begin = datetime.fromisoformat(str(start).replace("Z", "+00:00"))
        finish = datetime.fromisoformat(str(end).replace("Z", "+00:00"))
        return (finish - begin).total_seconds(), where
    except (TypeError, ValueError):
        return None, where


def _traffic_flow_observed(b: _Builder, fallback: str | None) -> None:
    b.put("vehicles", "intensity")
    b.put("heavy", "heavyIntensity")
    seconds, where = _interval_s(b)
    b.put("interval_s", where, int(seconds) if seconds is not None and seconds == int(seconds) else seconds)
    b.put("speed_kmh", "averageVehicleSpeed")
    share = b.value("occupancy")
    b.put("occupancy_pct", "occupancy", percent(share) if _number(share) else None)
    b.tag("site", "refRoadSegment", _local_part(b.value("refRoadSegment")))
    lane = b.value("laneId")
    if _number(lane):
        b.tag("lane", "laneId", str(int(lane)))
    b.tag("direction", "direction")
    observed = b.value("dateObserved")
    if "dateObservedTo" in b.attrs:
        b.time(("dateObservedTo",), "intensity", fallback)
    elif isinstance(observed, str) and "/" in observed:
        b.out.reading["ts"], b.out.paths["ts"] = observed.split("/", 1)[1], "dateObserved"
    else:
        b.time(("dateObserved",), "intensity", fallback)
    b.place()


def _fleet(b: _Builder, position: str, heading: str, at: str, fallback: str | None) -> None:
    where = b.place(position) if position in b.attrs else b.place("location")
    attribute = position if position in b.attrs else "location"
    if where is None:
        b.put("lon", f"{attribute}.coordinates[0]")
        b.put("lat", f"{attribute}.coordinates[1]")
    else:
        b.put("lon", f"{attribute}.coordinates[0]", where[0])
        b.put("lat", f"{attribute}.coordinates[1]", where[1])
    b.put("speed_kmh", "speed")
    b.put("heading_deg", heading)
    b.tag("route", "route")
    if "fleetVehicleType" in b.attrs:
        b.tag("vehicle_type", "fleetVehicleType")
    elif b.value("vehicleType") != "anyVehicle":  # the model's "not said"
        b.tag("vehicle_type", "vehicleType")
    b.time((at,), attribute, fallback)
    b.out.place = None  # a vehicle's position is its reading, not a site to show on the map


def _vehicle(b: _Builder, fallback: str | None) -> None:
    _fleet(b, "location", "heading" if "heading" in b.attrs else "bearing", "observationDateTime", fallback)


def _fleet_vehicle_status(b: _Builder, fallback: str | None) -> None:
    _fleet(b, "lastKnownPosition", "bearing", "lastKnownPositionUpdatedAt", fallback)


# EVChargingStation `status` -> whether the station works; the occupancy states imply it does.
_IN_SERVICE = {
    "working": True,
    "almostEmpty": True,
    "almostFull": True,
    "empty": True,
    "full": True,
    "outOfService": False,
    "withIncidence": False,
}


def _ev_charging_station(b: _Builder, fallback: str | None) -> None:
    b.put("capacity", "capacity")
    b.put("available", "availableCapacity")
    status = b.value("status")
    if status is not None:
        b.put("in_service", "status", _IN_SERVICE.get(status, status) if isinstance(status, str) else status)
    b.place()
    b.time(("observationDateTime",), "availableCapacity", fallback)


MAPPINGS: dict[str, tuple[SensorKind, Callable[[_Builder, str | None], None]]] = {
    "OffStreetParking": (SensorKind.PARKING, _off_street_parking),
    "ParkingSpot": (SensorKind.PARKING_SPOT, _parking_spot),
    "TrafficFlowObserved": (SensorKind.TRAFFIC, _traffic_flow_observed),
    "Vehicle": (SensorKind.FLEET, _vehicle),
    "FleetVehicleStatus": (SensorKind.FLEET, _fleet_vehicle_status),
    "EVChargingStation": (SensorKind.EV_CHARGING, _ev_charging_station),
}
# Known but not readings: a partner's worksites are not imported into our registry (yet).
NOT_READINGS = frozenset({"CityWork"})


def to_reading(entity: Any, *, fallback_ts: str | None = None) -> Mapped:
    """The reading of one entity (normalized or keyValues); raises UnmappedError."""
    if not isinstance(entity, dict):
        raise UnmappedError("schema", "", "expected an NGSI-LD entity (a JSON object)", entity)
    entity_type = entity.get("type")
    if not isinstance(entity.get("id"), str) or not entity["id"]:
        raise UnmappedError("schema", "id", "an entity needs an id", entity.get("id"))
    if entity_type in NOT_READINGS:
        raise UnmappedError("not_a_reading", "type", f"{entity_type} entities are exported only", entity_type)
    mapping = MAPPINGS.get(entity_type) if isinstance(entity_type, str) else None
    if mapping is None:
        known = ", ".join(sorted(MAPPINGS))
        raise UnmappedError("unknown_type", "type", f"not a type we read; known: {known}", entity_type)
    try:
        attrs = attributes(entity)
    except FormError as exc:
        raise UnmappedError("schema", exc.attribute, str(exc).split(": ", 1)[-1], exc.value) from None
    kind, build = mapping
    builder = _Builder(kind, entity, attrs)
    build(builder, fallback_ts)
    return builder.out


__all__ = ["MAPPINGS", "NOT_READINGS", "Mapped", "UnmappedError", "to_reading"]
