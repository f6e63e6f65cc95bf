"""Rules about places: geofence (fleet vs worksites and service area), worksite impact, and
parking saturation with an intermodal hint."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Literal, Self

from pydantic import Field, model_validator
from shapely import Point
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from cloud.core.alerts import Alert
from cloud.core.geo import Geography, NoWorksites, Site, WorksiteLookup, distance_m
from cloud.rules.anomaly import FieldRule, FieldRuleConfig, SeriesId
from cloud.rules.base import Rule, RuleConfig
from cloud.rules.detectors import Detector, get, names
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
class Geofence(Rule):
    """A fleet vehicle inside an active worksite, out of its service area, or halted too long."""

    Config = GeofenceConfig

    def __init__(self, config: RuleConfig) -> None:
        super().__init__(config)
        assert isinstance(config, GeofenceConfig)
        self.cfg = config
        self.watches = frozenset({SensorKind.FLEET.value})
        self.area: BaseGeometry | None = shape(config.area) if config.area else None
        self.worksites: WorksiteLookup = NoWorksites()
        self.halted_since: dict[SeriesId, datetime] = {}
        self.firing: set[SeriesId] = set()
        self.halt = timedelta(minutes=config.halted_min)

    def bind(self, geography: Geography) -> None:
        self.worksites = geography.worksites

    def observe(self, reading: Reading) -> list[Alert]:
        lat, lon = float(reading.fields["lat"]), float(reading.fields["lon"])
        speed = float(reading.fields.get("speed_kmh", 0.0))
        key = (reading.org, reading.gateway, reading.sensor)
        c = self.cfg
        since = reading.ts
        context: dict[str, Any] = {"lat": lat, "lon": lon, "speed_kmh": speed}
        if c.check == "inside_worksite":
            inside = self.worksites.containing(lat, lon, reading.ts)
            is_bad = bool(inside)
            message = f"inside active worksite {inside[0].name or inside[0].id}" if inside else ""
            context["worksites"] = [w.to_context() for w in inside]
        elif c.check == "outside_area":
            assert self.area is not None
            is_bad = not self.area.covers(Point(lon, lat))
            message = f"outside its service area at {lat:.5f},{lon:.5f}"
        else:
            if speed > c.halt_kmh:
                self.halted_since.pop(key, None)
                is_bad = False
            else:
                since = self.halted_since.setdefault(key, reading.ts)
                inside = self.worksites.containing(lat, lon, reading.ts) if c.only_in_worksite else []
                context["worksites"] = [w.to_context() for w in inside]
                is_bad = reading.ts - since >= self.halt and (bool(inside) or not c.only_in_worksite)
            minutes = (reading.ts - since).total_seconds() / 60
            where = " inside a worksite" if c.only_in_worksite else ""
            message = f"halted{where} for {minutes:.0f} min at {lat:.5f},{lon:.5f}"
        if is_bad and key not in self.firing:
            self.firing.add(key)
            return [self._alert(reading, "firing", since, speed, message, context)]
        if not is_bad and key in self.firing:
            self.firing.discard(key)
            return [
                self._alert(
                    reading, "resolved", reading.ts, speed, f"{c.check.replace('_', ' ')}: clear", None
                )
            ]
        return []

    def _alert(
        self,
        r: Reading,
        state: Literal["firing", "resolved"],
        since: datetime,
        value: float,
        message: str,
        context: dict[str, Any] | None,
    ) -> Alert:
        return self.alert_on(r, state, since, value=value, message=message, context=context)


class WorksiteImpactConfig(FieldRuleConfig):
    rule: Literal["worksite_impact"] = "worksite_impact"
    detector: str = "ensemble"
    score_above: float = Field(default=0.8, gt=0, le=1)
    clear_below: float = Field(default=0.4, ge=0, lt=1)
    clear_readings: int = Field(default=3, ge=1)
    radius_m: float = Field(default=400.0, gt=0)
    expected_severity: Literal["info", "warning", "critical"] = "info"

    @model_validator(mode="after")
    def _known_detector(self) -> Self:
        if self.detector not in names():
            raise ValueError(f"detector: {self.detector!r} is not one of {', '.join(names())}")
        return self


@register("worksite_impact")
class WorksiteImpact(FieldRule):
    """A traffic or parking series departing from its baseline, classified: *expected impact*
    when a planned worksite is active within `radius_m` of the sensor, *anomaly* otherwise."""

    Config = WorksiteImpactConfig

    def __init__(self, config: RuleConfig) -> None:
        super().__init__(config)
        assert isinstance(config, WorksiteImpactConfig)
        self.wc = config
        self.detector_cls = get(config.detector)
        self.detectors: dict[SeriesId, Detector] = {}
        self.calm: dict[SeriesId, int] = {}
        self.sites: dict[str, Site] = {}
        self.worksites: WorksiteLookup = NoWorksites()

    def bind(self, geography: Geography) -> None:
        super().bind(geography)
        self.worksites = geography.worksites

    def classify(self, sensor: str, at: datetime) -> tuple[str, list[dict[str, Any]]]:
        site = self.sites.get(sensor)
        if site is None:
            return "anomaly", []
        near = self.worksites.active_near(site.lat, site.lon, self.wc.radius_m, at)
        planned = [w.to_context() for w in near if w.is_planned]
        return ("expected_impact" if planned else "anomaly"), [w.to_context() for w in near]

    def observe(self, reading: Reading) -> list[Alert]:
        value = self._value(reading)
        if value is None:
            return []
        key, detector, score = self._series_score(reading, value, self.detectors, self.detector_cls)
        if score >= self.wc.score_above:
            self.calm[key] = 0
            if key in self.firing:
                return []
            classification, worksites = self.classify(reading.sensor, reading.ts)
            is_expected = classification == "expected_impact"
            why = (
                f"expected impact of worksite {worksites[0]['name'] or worksites[0]['id']}"
                if is_expected
                else "anomaly"
            )
            alerts = self._fire(
                reading,
                key,
                reading.ts,
                value,
                f"{self.cfg.field} {value:g} departs from its baseline (score {score:.2f}): {why}",
                threshold=self.wc.score_above,
                context=self._context(reading, score, detector)
                | {"classification": classification, "worksites": worksites},
            )
            if is_expected:
                alerts = [replace(a, severity=self.wc.expected_severity) for a in alerts]
            return alerts
        if key in self.firing and score < self.wc.clear_below:
            self.calm[key] = self.calm.get(key, 0) + 1
            if self.calm[key] >= self.wc.clear_readings:
                return self._resolve(
                    reading, key, value, f"{self.cfg.field} back to its baseline ({value:g})"
                )
        return []


class ParkingSaturationConfig(RuleConfig):
    rule: Literal["parking_saturation"] = "parking_saturation"
    above_pct: float = Field(default=95.0, gt=0, le=100)
    clear_pct: float = Field(default=90.0, ge=0, le=100)
    hold_min: float = Field(default=10.0, ge=0)
    free_below_pct: float = Field(default=85.0, gt=0, le=100)  # a facility this empty is a hint
    max_hint_m: float = Field(default=5000.0, gt=0)


@register("parking_saturation")
class ParkingSaturation(Rule):
    """A car park full for `hold_min`, with the nearest facility that has free spaces (from the
    latest readings this engine has seen) and the nearest park-and-ride as intermodal hints."""

    Config = ParkingSaturationConfig

    def __init__(self, config: RuleConfig) -> None:
        super().__init__(config)
        assert isinstance(config, ParkingSaturationConfig)
        self.cfg = config
        self.watches = frozenset({SensorKind.PARKING.value})
        self.sites: dict[str, Site] = {}
        self.latest: dict[str, tuple[float, int, int, datetime]] = {}  # sensor -> pct, free, cap, ts
        self.full_since: dict[SeriesId, datetime] = {}
        self.firing: set[SeriesId] = set()
        self.hold = timedelta(minutes=config.hold_min)

    def bind(self, geography: Geography) -> None:
        self.sites = geography.sites

    def hint(self, sensor: str, at: datetime) -> dict[str, Any]:
        here = self.sites.get(sensor)
        if here is None:
            return {}
        best: dict[str, Any] = {}
        for other, (pct, free, _cap, ts) in self.latest.items():
            site = self.sites.get(other)
            if (
                other == sensor
                or site is None
                or pct >= self.cfg.free_below_pct
                or at - ts > timedelta(hours=1)
            ):
                continue
            d = distance_m(here.lat, here.lon, site.lat, site.lon)
            if d > self.cfg.max_hint_m:
                continue
            entry = {"sensor": other, "name": site.name, "free": free, "distance_m": round(d)}
            if "nearest" not in best or d < best["nearest"]["distance_m"]:
                best["nearest"] = entry
            if site.park_and_ride and (
                "park_and_ride" not in best or d < best["park_and_ride"]["distance_m"]
            ):
                best["park_and_ride"] = entry
        return best

    def observe(self, reading: Reading) -> list[Alert]:
        pct = float(reading.fields["occupancy_pct"])
        cap = int(reading.fields["capacity"])
        free = max(cap - int(reading.fields["occupied"]), 0)
        self.latest[reading.sensor] = (pct, free, cap, reading.ts)
        key = (reading.org, reading.gateway, reading.sensor)
        if pct > self.cfg.above_pct:
            since = self.full_since.setdefault(key, reading.ts)
            if key not in self.firing and reading.ts - since >= self.hold:
                self.firing.add(key)
                hint = self.hint(reading.sensor, reading.ts)
                text = f"{reading.sensor} full ({pct:.0f} %, {free} free)"
                if "nearest" in hint:
                    n = hint["nearest"]
                    text += f"; nearest with free spaces: {n['name']} ({n['free']} free, {n['distance_m']} m)"
                if "park_and_ride" in hint and hint["park_and_ride"] != hint.get("nearest"):
                    p = hint["park_and_ride"]
                    text += f"; park and ride: {p['name']} ({p['free']} free, {p['distance_m']} m)"
                return [self._alert(reading, "firing", since, pct, text, {"hint": hint})]
        elif pct < self.cfg.clear_pct:
            self.full_since.pop(key, None)
            if key in self.firing:
                self.firing.discard(key)
                return [
                    self._alert(
                        reading, "resolved", reading.ts, pct, f"{reading.sensor} back to {pct:.0f} %", None
                    )
                ]
        return []

    def _alert(
        self,
        r: Reading,
        state: Literal["firing", "resolved"],
        since: datetime,
        value: float,
        message: str,
        context: dict[str, Any] | None,
    ) -> Alert:
        return self.alert_on(
            r, state, since, value=value, message=message, threshold=self.cfg.above_pct, context=context
        )
