"""GeoJSON vehicle positions (an RFC 7946 FeatureCollection of Points) as a wire batch of fleet readings.

Utilities' fleet-management platforms export positions as GeoJSON. Each Feature is one fix::

    {"type": "Feature",
     "geometry": {"type": "Point", "coordinates": [11.1003, 43.8825]},
     "properties": {"vehicle": "v-alia-01", "ts": "2026-11-24T08:00:00.000Z",
                    "speed_kmh": 14.5, "heading_deg": 270.0, "route": "raccolta-centro"}}

Coordinates are longitude, latitude (RFC 7946 §3.1.1; a third, the altitude, is allowed and not
kept). `vehicle` (or else the Feature's `id`) is the sensor id; the other properties are the
fleet kind's fields and tags. This module only re-shapes: every value goes to ingest's decoder
as the sender wrote it, so the contract judges it with its usual errors, and `feature_path`
names each refusal where the sender wrote the value (`features[3].geometry.coordinates[1]`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from edge.contract import KINDS, SCHEMA_VERSION, SchemaError, SensorKind, format_ts
from edge.contract.batch import MAX_READINGS_PER_BATCH

_FLEET = KINDS[SensorKind.FLEET]
_VALUE_FIELDS = tuple(f.name for f in _FLEET.fields if f.name not in ("lat", "lon"))
PROPERTIES = ("vehicle", "ts", *_VALUE_FIELDS, *_FLEET.tags)
_READING_PATH = re.compile(r"readings\[(\d+)\](.*)")


@dataclass(slots=True)
class Positions:
    """The wire batch of the features that could be read, and why the others could not."""

    features: int
    batch: dict[str, Any] | None  # None when no feature could be read
    feature_of: list[int] = field(default_factory=list)  # reading index in `batch` -> feature index
    refusals: list[tuple[int, SchemaError]] = field(default_factory=list)  # (feature index, why)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _reading(i: int, feature: Any) -> dict[str, Any] | SchemaError:  # noqa: PLR0911  (one return per shape error)
    where = f"features[{i}]"
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        return SchemaError("expected a GeoJSON Feature", field=where, value=feature)
    geometry = feature.get("geometry")
    if not isinstance(geometry, dict) or geometry.get("type") != "Point":
        got = geometry.get("type") if isinstance(geometry, dict) else geometry
        return SchemaError("expected a Point geometry", field=f"{where}.geometry.type", value=got)
    coords = geometry.get("coordinates")
    if not isinstance(coords, list) or len(coords) not in (2, 3) or not all(map(_number, coords)):
        return SchemaError(
            "expected [longitude, latitude] or [longitude, latitude, altitude]",
            field=f"{where}.geometry.coordinates",
            value=coords,
        )
    props = feature.get("properties")
    if not isinstance(props, dict):
        return SchemaError("expected an object", field=f"{where}.properties", value=props)
    for key in props:
        if key not in PROPERTIES:
            why = f"unknown property; known: {', '.join(PROPERTIES)}"
            return SchemaError(why, field=f"{where}.properties.{key}", value=key)
    vehicle = props.get("vehicle", feature.get("id"))
    if vehicle is None:
        return SchemaError("the vehicle's id is missing", field=f"{where}.properties.vehicle", value=None)
    lon, lat = coords[0], coords[1]
    fields = {"lat": lat, "lon": lon, **{k: props[k] for k in _VALUE_FIELDS if k in props}}
    reading: dict[str, Any] = {"sensor": vehicle, "ts": props.get("ts"), "fields": fields}
    if reading["ts"] is None:
        return SchemaError("the fix's time is missing", field=f"{where}.properties.ts", value=None)
    tags = {k: props[k] for k in _FLEET.tags if k in props}
    if tags:
        reading["tags"] = tags
    return reading


def to_batch(raw: Any, *, org: str, gateway: str, seq: int, sent_at: datetime) -> Positions:
    """The fleet batch of a FeatureCollection; raises SchemaError when the collection itself is unusable."""
    if not isinstance(raw, dict) or raw.get("type") != "FeatureCollection":
        got = raw.get("type") if isinstance(raw, dict) else raw
        raise SchemaError("expected a GeoJSON FeatureCollection", field="type", value=got)
    features = raw.get("features")
    if not isinstance(features, list) or not features:
        raise SchemaError("expected a non-empty list of Features", field="features", value=features)
    if len(features) > MAX_READINGS_PER_BATCH:
        raise SchemaError(
            f"more than {MAX_READINGS_PER_BATCH} features in one batch", field="features", value=len(features)
        )
    out = Positions(len(features), None)
    readings = []
    for i, feature in enumerate(features):
        reading = _reading(i, feature)
        if isinstance(reading, SchemaError):
            out.refusals.append((i, reading))
        else:
            readings.append(reading)
            out.feature_of.append(i)
    if readings:
        out.batch = {
            "v": SCHEMA_VERSION,
            "org": org,
            "gateway": gateway,
            "kind": SensorKind.FLEET.value,
            "seq": seq,
            "sent_at": format_ts(sent_at),
            "readings": readings,
        }
    return out


def feature_path(path: str, feature_of: list[int]) -> str:
    """A decoder's path into the wire batch (`readings[2].fields.lat`) as a path into the GeoJSON."""
    m = _READING_PATH.fullmatch(path)
    if m is None:
        return path
    where = f"features[{feature_of[int(m.group(1))]}]"
    rest = m.group(2)
    if rest in (".fields.lon", ".fields.lat"):
        return f"{where}.geometry.coordinates[{0 if rest.endswith('lon') else 1}]"
    if rest == ".sensor":
        return f"{where}.properties.vehicle"
    for prefix in (".fields.", ".tags."):
        if rest.startswith(prefix):
            return f"{where}.properties.{rest[len(prefix) :]}"
    return f"{where}.properties{rest}" if rest == ".ts" else f"{where}{rest}"


__all__ = ["PROPERTIES", "Positions", "feature_path", "to_batch"]
