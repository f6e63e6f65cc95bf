"""Geofence: a fleet vehicle inside an active worksite, out of its service area, or halted too long."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal, Self

from pydantic import Field, model_validator
from shapely import Point
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from cloud.core.alerts import Alert
from cloud.core.geo import Geography, NoWorksites, WorksiteLookup, WorksiteRef
from cloud.rules.base import Rule, RuleConfig
from cloud.rules.hysteresis import Hysteresis, SeriesId, series_of
from cloud.rules.registry import register
from edge.contract import Reading, SensorKind


class GeofenceConfig(RuleConfig):
    rule: Literal["geofence"] = "geofence"
    check: Literal["inside_worksite", "outside_area", "halted"]
    area: dict[str, Any] | None = None  # a GeoJSON geometry (lon, lat), for outside_area
    halt_kmh: float = Field(default=2.0, ge=0)
    halted_min: float = Field(default=10.0, gt=0)
    only_in_worksite: bool = False  # halted: only count halts inside an active worksite

    @model_validator(mode="after")
    def _area(self) -> Self:
        if self.check == "outside_area":
            if self.area is None:
                raise ValueError("area: outside_area needs a GeoJSON Polygon or MultiPolygon")
            try:
                geom = shape(self.area)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise ValueError(f"area: not a GeoJSON geometry ({exc})") from None
            if geom.is_empty or not geom.is_valid:
                raise ValueError("area: the geometry is empty or invalid")
        return self


@register("geofence")
class Geofence(Rule[GeofenceConfig]):
    Config = GeofenceConfig

    def __init__(self, config: GeofenceConfig) -> None:
        super().__init__(config)
        self.watches = frozenset({SensorKind.FLEET.value})
        self.area: BaseGeometry | None = shape(config.area) if config.area else None
        self.worksites: WorksiteLookup = NoWorksites()
        self.halted_since: dict[SeriesId, datetime] = {}
        self.hysteresis = Hysteresis()
        self.halt = timedelta(minutes=config.halted_min)

    def bind(self, geography: Geography) -> None:
        self.worksites = geography.worksites

    def observe(self, reading: Reading) -> list[Alert]:
        lat, lon = float(reading.fields["lat"]), float(reading.fields["lon"])
        speed = float(reading.fields.get("speed_kmh", 0.0))
        key = series_of(reading)
        c = self.config
        since = reading.ts
        inside: list[WorksiteRef] = []
        if c.check == "inside_worksite":
            inside = self.worksites.containing(lat, lon, reading.ts)
            is_bad = bool(inside)
        elif c.check == "outside_area":
            assert self.area is not None  # the config requires an area for outside_area
            is_bad = not self.area.covers(Point(lon, lat))
        elif speed > c.halt_kmh:
            self.halted_since.pop(key, None)
            is_bad = False
        else:
            since = self.halted_since.setdefault(key, reading.ts)
            inside = self.worksites.containing(lat, lon, reading.ts) if c.only_in_worksite else []
            is_bad = reading.ts - since >= self.halt and (bool(inside) or not c.only_in_worksite)
        if not is_bad and key not in self.hysteresis.firing:
            return []  # nothing to resolve: no step (every fix comes here)
        t = self.hysteresis.step(key, reading.ts, is_beyond=is_bad, is_cleared=not is_bad, since=since)
        if t is None:
            return []
        if t.state == "resolved":
            message = f"{c.check.replace('_', ' ')}: clear"
            return [self.alert_on(reading, "resolved", t.since, value=speed, message=message)]
        # What is said only when it fires.
        context: dict[str, Any] = {"lat": lat, "lon": lon, "speed_kmh": speed}
        if c.check == "inside_worksite":
            message = f"inside active worksite {inside[0].name or inside[0].id}"
        elif c.check == "outside_area":
            message = f"outside its service area at {lat:.5f},{lon:.5f}"
        else:
            minutes = (reading.ts - since).total_seconds() / 60
            where = " inside a worksite" if c.only_in_worksite else ""
            message = f"halted{where} for {minutes:.0f} min at {lat:.5f},{lon:.5f}"
        if c.check != "outside_area":
            context["worksites"] = [w.to_context() for w in inside]
        return [self.alert_on(reading, "firing", t.since, value=speed, message=message, context=context)]
