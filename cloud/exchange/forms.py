"""The two NGSI-LD representations of an entity: normalized and keyValues (ETSI GS CIM 009).

An `Entity` holds the keyValues attributes plus what the normalized form adds: the time each
measured attribute was observed (`observedAt`) and its unit (`unitCode`, UN/CEFACT common
codes). `normalized()` writes a Property, GeoProperty (GeoJSON values) or Relationship (`ref...`
attributes holding an entity id) per attribute, date-times as JSON-LD typed values
(`{"@type": "DateTime", "@value": ...}`); `key_values()` reads any normalized entity back to
plain values, which is also how the models' JSON Schemas (written for keyValues) check it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

GEOJSON_TYPES = frozenset(
    {"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon", "GeometryCollection"}
)
# Relationships of the models we write: an attribute whose value is another entity's id.
RELATIONSHIPS = frozenset({"refParkingSite", "refRoadSegment", "fleetVehicle"})
# Attributes whose value is a date-time (not an ISO 8601 interval such as TrafficFlowObserved's
# `dateObserved` may be): these are typed `DateTime` in the normalized form.
DATE_TIMES = frozenset(
    {
        "observationDateTime",
        "dateObservedFrom",
        "dateObservedTo",
        "lastKnownPositionUpdatedAt",
        "timeInstant",
        "startDate",
        "endDate",
        "dateLastReported",
        "dateCreated",
        "dateModified",
        "occupancyModified",
    }
)
_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
META = ("id", "type", "@context")
ATTRIBUTE_TYPES = frozenset({"Property", "GeoProperty", "Relationship", "LanguageProperty"})


@dataclass(frozen=True, slots=True)
class Entity:
    """An entity in keyValues form, with the observation times and units of its measured attributes."""

    attrs: dict[str, Any]  # id, type and every attribute, plain values
    context: list[str]
    observed_at: dict[str, str] = field(default_factory=dict)  # attribute -> RFC 3339 UTC
    units: dict[str, str] = field(default_factory=dict)  # attribute -> UN/CEFACT common code

    @property
    def id(self) -> str:
        return str(self.attrs["id"])

    @property
    def type(self) -> str:
        return str(self.attrs["type"])

    def key_values(self) -> dict[str, Any]:
        return {**self.attrs, "@context": list(self.context)}

    def normalized(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "type": self.type}
        for name, value in self.attrs.items():
            if name in META:
                continue
            out[name] = self._attribute(name, value)
        out["@context"] = list(self.context)
        return out

    def _attribute(self, name: str, value: Any) -> dict[str, Any]:
        attr: dict[str, Any]
        if name in RELATIONSHIPS and isinstance(value, str):
            attr = {"type": "Relationship", "object": value}
        elif is_geometry(value):
            attr = {"type": "GeoProperty", "value": value}
        elif name in DATE_TIMES and isinstance(value, str) and _DATE_TIME.fullmatch(value):
            attr = {"type": "Property", "value": {"@type": "DateTime", "@value": value}}
        else:
            attr = {"type": "Property", "value": value}
        if name in self.units:
            attr["unitCode"] = self.units[name]
        if name in self.observed_at:
            attr["observedAt"] = self.observed_at[name]
        return attr


def is_geometry(value: Any) -> bool:
    return isinstance(value, dict) and value.get("type") in GEOJSON_TYPES and "coordinates" in value


class FormError(ValueError):
    """An attribute that is not an NGSI-LD attribute in either form."""

    def __init__(self, attribute: str, message: str, value: Any = None) -> None:
        self.attribute = attribute
        self.value = value
        super().__init__(f"{attribute}: {message}")


@dataclass(frozen=True, slots=True)
class Attribute:
    value: Any
    observed_at: str | None = None


def _instance(name: str, raw: Any) -> dict[str, Any] | None:
    """One attribute instance of a normalized entity; None when `raw` is a keyValues value."""
    if isinstance(raw, list) and raw and all(isinstance(x, dict) and "type" in x for x in raw):
        # A multi-attribute (several datasetIds): the default instance, the one without one.
        default: list[dict[str, Any]] = [x for x in raw if "datasetId" not in x]
        return default[0] if default else dict(raw[0])
    if isinstance(raw, dict) and raw.get("type") in ATTRIBUTE_TYPES:
        return raw
    return None


def attributes(entity: dict[str, Any]) -> dict[str, Attribute]:
    """Every attribute of an entity in either form, as a plain value with its `observedAt`."""
    out: dict[str, Attribute] = {}
    for name, raw in entity.items():
        if name in META:
            continue
        inst = _instance(name, raw)
        if inst is None:
            out[name] = Attribute(raw)
            continue
        kind = inst["type"]
        if kind == "Relationship":
            if "object" not in inst:
                raise FormError(name, "a Relationship without `object`", inst)
            value = inst["object"]
        elif kind == "LanguageProperty":
            languages = inst.get("languageMap")
            value = next(iter(languages.values()), None) if isinstance(languages, dict) else None
        else:
            if "value" not in inst:
                raise FormError(name, f"a {kind} without `value`", inst)
            value = inst["value"]
            if isinstance(value, dict) and "@value" in value:
                value = value["@value"]  # a JSON-LD typed value, e.g. {"@type": "DateTime", ...}
        observed = inst.get("observedAt")
        out[name] = Attribute(value, observed if isinstance(observed, str) else None)
    return out


def key_values(entity: dict[str, Any]) -> dict[str, Any]:
    """Any entity as keyValues (the form the models' JSON Schemas describe)."""
    out: dict[str, Any] = {k: entity[k] for k in ("id", "type") if k in entity}
    out.update({name: a.value for name, a in attributes(entity).items()})
    if "@context" in entity:
        out["@context"] = entity["@context"]
    return out


__all__ = ["Attribute", "Entity", "FormError", "attributes", "is_geometry", "key_values"]
