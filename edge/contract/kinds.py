"""Sensor kinds: each kind's fields (name, type, unit, valid range) and tags, declared once.

These declarations drive reading validation, the InfluxDB field types (fixed per field on
first write, so they must never vary), the AsyncAPI document and the Grafana units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

FieldType = Literal["float", "int", "bool"]
# How an hour of a field becomes one value in the hourly rollups (cloud/io/influx/retention.py):
# counts add up, levels average (`mean_max` keeps the hour's peak beside, as `{name}_max`; `max`
# keeps only the peak), and states and positions keep their last value. None: `mean` for
# numbers, `last` for booleans.
Aggregate = Literal["sum", "mean", "mean_max", "max", "last"]


class SensorKind(StrEnum):
    """What a reading measures; also the InfluxDB measurement and the last topic level."""

    PARKING = "parking"  # a facility (car park, square) counting occupied spaces
    PARKING_SPOT = "parking_spot"  # one on-street bay with an occupancy sensor
    TRAFFIC = "traffic"  # a counter's interval record for one lane and direction
    FLEET = "fleet"  # a vehicle position fix


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    type: FieldType
    unit: str  # UCUM-like unit, also the Grafana unit hint
    minimum: float
    maximum: float
    description: str
    required: bool = True
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
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"expected a number, got {type(value).__name__}"
        if isinstance(value, float) and not math.isfinite(value):
            return "must be a finite number"
        if self.type == "int" and isinstance(value, float) and not value.is_integer():
            return "expected an integer"
        if not self.minimum <= value <= self.maximum:
            return f"out of range [{self.minimum:g}, {self.maximum:g}]"
        return None


@dataclass(frozen=True, slots=True)
class KindSpec:
    kind: SensorKind
    description: str
    fields: tuple[FieldSpec, ...]
    tags: tuple[str, ...] = ()  # allowed tag keys, low-cardinality metadata
    by_name: dict[str, FieldSpec] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {f.name: f for f in self.fields})
        for f in self.fields:
            bound = self.by_name.get(f.meaningful_if) if f.meaningful_if else None
            if f.meaningful_if and (bound is None or bound.type == "bool"):
                raise ValueError(
                    f"{self.kind.value}.{f.name}: meaningful_if {f.meaningful_if!r} is no numeric field"
                )


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
    )
}


# Cross-field rules, declared as data so that ingest's fast path can inline them:
# (field, bound) means an integer `field` must not exceed the integer `bound` of the same reading.
NOT_ABOVE: dict[SensorKind, tuple[tuple[str, str], ...]] = {
    SensorKind.PARKING: (("occupied", "capacity"),),
    SensorKind.TRAFFIC: (("heavy", "vehicles"),),
}


def cross_field_error(kind: SensorKind, fields: dict[str, float | int | bool]) -> tuple[str, str] | None:
    """Checks that involve more than one field: (field, why) or None."""
    for name, bound in NOT_ABOVE.get(kind, ()):
        value, limit = fields.get(name), fields.get(bound)
        if isinstance(value, int) and isinstance(limit, int) and value > limit:
            return name, f"{value} exceeds {bound} {limit}"
    return None
