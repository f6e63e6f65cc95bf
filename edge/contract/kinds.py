"""Sensor kinds: each kind's fields (name, type, unit, valid range) and tags, declared once.

These declarations drive reading validation, the InfluxDB field types (fixed per field on
first write, so they must never vary), the AsyncAPI document and the Grafana units.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

FieldType = Literal["float", "int", "bool", "str"]
# How an hour of a field becomes one value in the hourly rollups (cloud/io/influx/retention.py):
# counts add up, levels average (`mean_max` keeps the hour's peak beside, as `{name}_max`; `max`
# keeps only the peak), and states and positions keep their last value. None: `mean` for
# numbers, `last` for booleans, nothing for strings.
Aggregate = Literal["sum", "mean", "mean_max", "max", "last"]

# A string field holds text for people and ids from other systems (a GTFS trip or stop id), never
# structure: no control characters (C0, DEL, C1) and no lone surrogates, which no UTF-8 encoder
# writes. Line protocol then needs only its quote and backslash escapes. Also the AsyncAPI
# document's `pattern` for string fields, written as "no such character anywhere" so that it
# means the same with ECMA-262 and Python's `re.search`, whose `$` also matches before a final
# newline.
STRING_PATTERN = r"^(?![\s\S]*[\x00-\x1f\x7f-\x9f\ud800-\udfff])"
_STRING_RE = re.compile(STRING_PATTERN)
# Tag keys every point carries besides its kind's own (cloud/io/influx/lineprotocol.reading_tags):
# InfluxDB 3 refuses a tag and a field of the same name in one table, so no field may take them.
ENVELOPE_TAGS = ("org", "gateway", "sensor")


class SensorKind(StrEnum):
    """What a reading measures; also the InfluxDB measurement and the last topic level."""

    PARKING = "parking"  # a facility (car park, square) counting occupied spaces
    PARKING_SPOT = "parking_spot"  # one on-street bay with an occupancy sensor
    TRAFFIC = "traffic"  # a counter's interval record for one lane and direction
    FLEET = "fleet"  # a vehicle position fix
    TRANSIT_VEHICLE = "transit_vehicle"  # a bus or tram position from a GTFS-Realtime feed
    TRANSIT_DELAY = "transit_delay"  # a trip's delay as it passed one stop (GTFS-Realtime)
    EV_CHARGING = "ev_charging"  # an electric-vehicle charging station's state


# GTFS-Realtime enums (VehiclePosition.VehicleStopStatus, OccupancyStatus), lower-cased.
VEHICLE_STOP_STATUS = ("incoming_at", "stopped_at", "in_transit_to")
OCCUPANCY_STATUS = (
    "empty",
    "many_seats_available",
    "few_seats_available",
    "standing_room_only",
    "crushed_standing_room_only",
    "full",
    "not_accepting_passengers",
    "no_data_available",
    "not_boardable",
)
# scheduled: served, with its delay; skipped: the trip passed without stopping; cancelled: the
# trip did not run; no_data: the feed said it knows nothing of this stop.
STOP_EVENT_STATUS = ("scheduled", "skipped", "cancelled", "no_data")


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field. For a `str` field, `minimum` and `maximum` bound its length in characters and
    `choices`, when given, are the only values it may take."""

    name: str
    type: FieldType
    unit: str  # UCUM-like unit, also the Grafana unit hint
    minimum: float
    maximum: float
    description: str
    required: bool = True
    choices: tuple[str, ...] = ()
    aggregate: Aggregate | None = field(default=None, kw_only=True)
    # The count field that must be above 0 for this one to mean anything: a traffic counter
    # reports a mean speed of 0 for an interval in which no vehicle passed.
    meaningful_if: str | None = field(default=None, kw_only=True)

    @property
    def rollup(self) -> Aggregate | None:
        """How the hourly rollup aggregates this field (None: it is left out)."""
        if self.type == "bool":
            return self.aggregate or "last"
        if self.type in ("int", "float"):
            return self.aggregate or "mean"
        return self.aggregate

    def check(self, value: object) -> str | None:
        """Return why `value` is invalid for this field, or None when it is valid."""
        # bool is an int subclass in Python: test it first so True never passes as 1.
        if self.type == "bool":
            return None if isinstance(value, bool) else f"expected a boolean, got {type(value).__name__}"
        if self.type == "str":
            return self._check_str(value)
        return self._check_number(value)

    def _check_number(self, value: object) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"expected a number, got {type(value).__name__}"
        if isinstance(value, float) and not math.isfinite(value):
            return "must be a finite number"
        if self.type == "int" and isinstance(value, float) and not value.is_integer():
            return "expected an integer"
        if not self.minimum <= value <= self.maximum:
            return f"out of range [{self.minimum:g}, {self.maximum:g}]"
        return None

    def _check_str(self, value: object) -> str | None:
        if not isinstance(value, str):
            return f"expected a string, got {type(value).__name__}"
        if self.choices:
            return None if value in self.choices else f"not one of {', '.join(self.choices)}"
        if not self.minimum <= len(value) <= self.maximum:
            return f"length {len(value)} out of range [{self.minimum:g}, {self.maximum:g}]"
        if _STRING_RE.match(value) is None:
            return "must not contain control characters"
        return None


def choice(name: str, description: str, choices: tuple[str, ...], required: bool = True) -> FieldSpec:
    """A `str` field that takes one of `choices` (its length bounds are theirs)."""
    lengths = [len(c) for c in choices]
    return FieldSpec(name, "str", "", min(lengths), max(lengths), description, required, choices)


@dataclass(frozen=True, slots=True)
class KindSpec:
    kind: SensorKind
    description: str
    fields: tuple[FieldSpec, ...]
    tags: tuple[str, ...] = ()  # allowed tag keys, low-cardinality metadata
    # Every reading carries every tag: one fixed tag set per measurement, as InfluxDB 3 wants
    # (its table's series key is set by the first write). The older kinds' tags stay optional.
    fixed_tags: bool = False
    # Its sensors report on a schedule, so a silent one is a fault (the staleness rule watches
    # it). False for event-driven kinds: a stop reports when a bus passes, a bus while in service.
    reports_periodically: bool = True
    by_name: dict[str, FieldSpec] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {f.name: f for f in self.fields})
        for f in self.fields:
            bound = self.by_name.get(f.meaningful_if) if f.meaningful_if else None
            if f.meaningful_if and (bound is None or bound.type == "bool"):
                raise ValueError(
                    f"{self.kind.value}.{f.name}: meaningful_if {f.meaningful_if!r} is no numeric field"
                )
        clash = set(self.by_name) & {*self.tags, *ENVELOPE_TAGS}
        if clash:
            raise ValueError(f"{self.kind.value}: {sorted(clash)} would be both a tag and a field")


KINDS: dict[SensorKind, KindSpec] = {
    spec.kind: spec
    for spec in (
        KindSpec(
            SensorKind.PARKING,
            "Occupancy of a parking facility (car park or square), counted at its gates.",
            (
                FieldSpec("occupied", "int", "spaces", 0, 20_000, "occupied spaces", aggregate="mean_max"),
                FieldSpec("capacity", "int", "spaces", 1, 20_000, "spaces in service", aggregate="last"),
                FieldSpec(
                    "occupancy_pct", "float", "percent", 0, 100, "occupied / capacity", aggregate="mean_max"
                ),
            ),
            tags=("zone",),
        ),
        KindSpec(
            SensorKind.PARKING_SPOT,
            "State of one on-street parking bay, from an in-ground occupancy sensor.",
            (FieldSpec("occupied", "bool", "", 0, 1, "a vehicle is on the bay"),),
            tags=("zone", "street"),
        ),
        KindSpec(
            SensorKind.TRAFFIC,
            "A traffic counter's interval record for one lane and direction.",
            (
                FieldSpec("vehicles", "int", "vehicles", 0, 100_000, "vehicles counted", aggregate="sum"),
                FieldSpec(
                    "heavy", "int", "vehicles", 0, 100_000, "of which heavy (> 3.5 t)", aggregate="sum"
                ),
                FieldSpec("interval_s", "int", "s", 1, 3_600, "length of the interval", aggregate="sum"),
                FieldSpec("speed_kmh", "float", "km/h", 0, 250, "mean speed", meaningful_if="vehicles"),
                FieldSpec(
                    "occupancy_pct",
                    "float",
                    "percent",
                    0,
                    100,
                    "time the loop is occupied",
                    aggregate="mean_max",
                ),
            ),
            tags=("site", "lane", "direction"),
        ),
        KindSpec(
            SensorKind.FLEET,
            "A fleet vehicle's GNSS position fix.",
            (
                FieldSpec("lat", "float", "deg", -90, 90, "latitude, WGS84", aggregate="last"),
                FieldSpec("lon", "float", "deg", -180, 180, "longitude, WGS84", aggregate="last"),
                FieldSpec("speed_kmh", "float", "km/h", 0, 300, "speed over ground", aggregate="mean_max"),
                FieldSpec(
                    "heading_deg", "float", "deg", 0, 360, "course over ground, true", aggregate="last"
                ),
            ),
            tags=("vehicle_type", "route"),
        ),
        KindSpec(
            SensorKind.TRANSIT_VEHICLE,
            "A public-transport vehicle's position, from its operator's GTFS-Realtime "
            "VehiclePositions; the sensor is the vehicle, the route tag its trip's route "
            "(`none` when it runs no trip).",
            (
                FieldSpec("lat", "float", "deg", -90, 90, "latitude, WGS84", aggregate="last"),
                FieldSpec("lon", "float", "deg", -180, 180, "longitude, WGS84", aggregate="last"),
                FieldSpec(
                    "bearing_deg",
                    "float",
                    "deg",
                    0,
                    360,
                    "bearing, clockwise from north",
                    False,
                    aggregate="last",
                ),
                FieldSpec("speed_kmh", "float", "km/h", 0, 300, "speed", False, aggregate="mean_max"),
                FieldSpec("trip", "str", "", 1, 255, "GTFS trip_id it runs (too many for a tag)", False),
                FieldSpec("stop", "str", "", 1, 255, "GTFS stop_id of its current or next stop", False),
                choice("stop_status", "where it is relative to that stop", VEHICLE_STOP_STATUS, False),
                choice("occupancy", "GTFS-Realtime occupancy status", OCCUPANCY_STATUS, False),
                FieldSpec(
                    "occupancy_pct",
                    "int",
                    "percent",
                    0,
                    300,
                    "load; over 100 when crowded",
                    False,
                    aggregate="mean_max",
                ),
                FieldSpec(
                    "delay_s",
                    "int",
                    "s",
                    -86_400,
                    86_400,
                    "its trip's delay, when known",
                    False,
                    aggregate="mean_max",
                ),
            ),
            tags=("route",),
            fixed_tags=True,
            reports_periodically=False,
        ),
        KindSpec(
            SensorKind.TRANSIT_DELAY,
            "A trip's delay at one stop as the vehicle passed it (GTFS-Realtime TripUpdates), "
            "timestamped at the scheduled time; the sensor is the stop, the route tag the "
            "trip's route.",
            (
                FieldSpec("trip", "str", "", 1, 255, "GTFS trip_id (too many for a tag)"),
                FieldSpec(
                    "stop_sequence",
                    "int",
                    "1",
                    0,
                    2**31 - 1,
                    "the stop's place in the trip",
                    aggregate="last",
                ),
                choice("status", "how the trip served the stop", STOP_EVENT_STATUS),
                FieldSpec(
                    "delay_s",
                    "int",
                    "s",
                    -86_400,
                    86_400,
                    "departure minus scheduled time",
                    False,
                    aggregate="mean_max",
                ),
            ),
            tags=("route",),
            fixed_tags=True,
            reports_periodically=False,
        ),
        KindSpec(
            SensorKind.EV_CHARGING,
            "State of an electric-vehicle charging station (Smart Data Models EVChargingStation).",
            (
                FieldSpec(
                    "capacity",
                    "int",
                    "vehicles",
                    1,
                    1_000,
                    "vehicles that can charge at once",
                    aggregate="last",
                ),
                FieldSpec("available", "int", "vehicles", 0, 1_000, "vehicles that can start charging now"),
                # Optional: an operator that publishes no status gives no verdict on service.
                FieldSpec("in_service", "bool", "", 0, 1, "the station works", required=False),
            ),
        ),
    )
}


# Cross-field rules, declared as data so that ingest's fast path can inline them:
# (field, bound) means an integer `field` must not exceed the integer `bound` of the same reading.
NOT_ABOVE: dict[SensorKind, tuple[tuple[str, str], ...]] = {
    SensorKind.PARKING: (("occupied", "capacity"),),
    SensorKind.TRAFFIC: (("heavy", "vehicles"),),
    SensorKind.EV_CHARGING: (("available", "capacity"),),
}


def cross_field_error(
    kind: SensorKind, fields: dict[str, float | int | bool | str]
) -> tuple[str, str] | None:
    """Checks that involve more than one field: (field, why) or None."""
    for name, bound in NOT_ABOVE.get(kind, ()):
        value, limit = fields.get(name), fields.get(bound)
        if isinstance(value, int) and isinstance(limit, int) and value > limit:
            return name, f"{value} exceeds {bound} {limit}"
    return None
