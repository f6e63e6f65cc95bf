"""Parking saturation: a car park full for `hold_min`, with the nearest facility that has free
spaces (from the latest readings this engine has seen) and the nearest park-and-ride as
intermodal hints; with a bus network bound, the park-and-ride's stops within `walk_m` and the
next departures from them toward the full car park (timetable, and each trip's latest
real-time delay from the `transit_vehicle` and `transit_delay` readings this engine has seen)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator

from cloud.core.alerts import Alert
from cloud.core.geo import Geography, Site
from cloud.core.metres import distance_m
from cloud.core.transit import DelayBook, Departure, NoTransit, TransitNetwork
from cloud.rules.base import Rule, RuleConfig
from cloud.rules.hysteresis import Hysteresis, SeriesId, series_of
from cloud.rules.registry import register
from edge.contract import Reading, SensorKind


class ParkingSaturationConfig(RuleConfig):
    rule: Literal["parking_saturation"] = "parking_saturation"
    above_pct: float = Field(default=95.0, gt=0, le=100)
    clear_pct: float = Field(default=90.0, ge=0, le=100)
    hold_min: float = Field(default=10.0, ge=0)
    free_below_pct: float = Field(default=85.0, gt=0, le=100)  # a facility this empty is a hint
    max_hint_m: float = Field(default=5000.0, gt=0)
    walk_m: float = Field(default=400.0, gt=0)  # the park-and-ride's stops: within this walk
    departures: int = Field(default=3, ge=0, le=10)  # next departures named (0: none)
    horizon_min: float = Field(default=60.0, gt=0)  # ... within this many minutes
    delay_max_age_min: float = Field(default=30.0, gt=0)  # a trip's delay older than this is unknown
    timezone: str = "Europe/Rome"  # departure times in the message are local

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ValueError, OSError):
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. Europe/Rome)") from None
        return value


@register("parking_saturation")
class ParkingSaturation(Rule[ParkingSaturationConfig]):
    Config = ParkingSaturationConfig

    def __init__(self, config: ParkingSaturationConfig) -> None:
        super().__init__(config)
        self.watches = frozenset({SensorKind.PARKING.value})
        self.sites: dict[str, Site] = {}
        self.latest: dict[str, tuple[float, int, int, datetime]] = {}  # sensor -> pct, free, cap, ts
        self.hysteresis = Hysteresis(hold=timedelta(minutes=config.hold_min))
        self.transit: TransitNetwork = NoTransit()
        self.delays = DelayBook(max_age=timedelta(minutes=config.delay_max_age_min))
        self.tz = ZoneInfo(config.timezone)

    def bind(self, geography: Geography) -> None:
        self.sites = geography.sites
        self.transit = geography.transit
        if self.config.departures > 0 and not isinstance(self.transit, NoTransit):
            # Real-time delays come from the transit readings on the same stream.
            self.watches = frozenset(
                {SensorKind.PARKING.value, SensorKind.TRANSIT_VEHICLE.value, SensorKind.TRANSIT_DELAY.value}
            )

    def departures_from(self, site: Site, toward: Site, at: datetime) -> dict[str, Any]:
        """The park-and-ride's stops and the next departures from them toward `toward`."""
        stops = self.transit.stops_near(site.lat, site.lon, self.config.walk_m)
        if not stops:
            return {}
        found = self.transit.departures(
            stops,
            at,
            toward=(toward.lat, toward.lon),
            walk_m=self.config.walk_m,
            horizon=timedelta(minutes=self.config.horizon_min),
            limit=self.config.departures,
        )
        timed = self.delays.apply(found, at)
        return {
            "stops": [
                {"stop_id": s.stop_id, "name": s.name, "distance_m": round(s.distance_m)} for s in stops
            ],
            "departures": [self._departure(d) for d in timed],
        }

    def _departure(self, d: Departure) -> dict[str, Any]:
        return {
            "route": d.route_name,
            "trip": d.trip_id,
            "stop": d.stop_name,
            "scheduled": d.scheduled.astimezone(self.tz).strftime("%H:%M"),
            "delay_s": d.delay_s,
            "expected": d.expected.astimezone(self.tz).strftime("%H:%M"),
            "to": d.alight_stop_name,
            "arrives": d.expected_arrival.astimezone(self.tz).strftime("%H:%M"),
        }

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
                or pct >= self.config.free_below_pct
                or at - ts > timedelta(hours=1)
            ):
                continue
            d = distance_m(here.lat, here.lon, site.lat, site.lon)
            if d > self.config.max_hint_m:
                continue
            entry = {"sensor": other, "name": site.name, "free": free, "distance_m": round(d)}
            if "nearest" not in best or d < best["nearest"]["distance_m"]:
                best["nearest"] = entry
            if site.park_and_ride and (
                "park_and_ride" not in best or d < best["park_and_ride"]["distance_m"]
            ):
                best["park_and_ride"] = entry
        ride = best.get("park_and_ride")
        if ride is not None and self.config.departures > 0:
            best["park_and_ride"] = ride | self.departures_from(self.sites[ride["sensor"]], here, at)
        return best

    def observe(self, reading: Reading) -> list[Alert]:
        if reading.kind is not SensorKind.PARKING:
            self.delays.observe(reading)
            return []
        pct = float(reading.fields["occupancy_pct"])
        cap = int(reading.fields["capacity"])
        free = max(cap - int(reading.fields["occupied"]), 0)
        self.latest[reading.sensor] = (pct, free, cap, reading.ts)
        key = series_of(reading)
        is_beyond, h = pct > self.config.above_pct, self.hysteresis
        if not is_beyond and key not in h.beyond_since and key not in h.firing:
            return []  # not full, not held: nothing to step (every parking reading comes here)
        return self._step(reading, key, pct, free, is_beyond=is_beyond)

    def observe_many(self, readings: Sequence[Reading], keys: Sequence[SeriesId]) -> list[tuple[int, Alert]]:
        """`observe` each reading in turn, inlined: a car park not full and not held only
        updates its latest figures (the hints of the others' alerts)."""
        latest, above = self.latest, self.config.above_pct
        beyond_since, firing = self.hysteresis.beyond_since, self.hysteresis.firing
        out: list[tuple[int, Alert]] = []
        for i, reading in enumerate(readings):
            if reading.kind is not SensorKind.PARKING:
                self.delays.observe(reading)  # the buses' delays, for the park-and-ride hint
                continue
            fields = reading.fields
            pct = float(fields["occupancy_pct"])
            cap = int(fields["capacity"])
            free = max(cap - int(fields["occupied"]), 0)
            key = keys[i]
            latest[key[2]] = (pct, free, cap, reading.ts)
            is_beyond = pct > above
            if not is_beyond and not beyond_since and not firing:
                continue
            if not is_beyond and key not in beyond_since and key not in firing:
                continue
            found = self._step(reading, key, pct, free, is_beyond=is_beyond)
            if found:
                out.extend([(i, a) for a in found])
        return out

    def _step(
        self, reading: Reading, key: SeriesId, pct: float, free: int, *, is_beyond: bool
    ) -> list[Alert]:
        h = self.hysteresis
        t = h.step(key, reading.ts, is_beyond=is_beyond, is_cleared=pct < self.config.clear_pct)
        if t is None:
            return []
        threshold = self.config.above_pct
        if t.state == "resolved":
            message = f"{reading.sensor} back to {pct:.0f} %"
            return [
                self.alert_on(reading, "resolved", t.since, value=pct, message=message, threshold=threshold)
            ]
        hint = self.hint(reading.sensor, reading.ts)
        text = f"{reading.sensor} full ({pct:.0f} %, {free} free)"
        if "nearest" in hint:
            n = hint["nearest"]
            text += f"; nearest with free spaces: {n['name']} ({n['free']} free, {n['distance_m']} m)"
        ride = hint.get("park_and_ride")
        if ride is not None and ride["sensor"] != hint.get("nearest", {}).get("sensor"):
            text += f"; park and ride: {ride['name']} ({ride['free']} free, {ride['distance_m']} m)"
        if ride is not None and ride.get("departures"):
            text += f"; buses from {ride['name']}: " + ", ".join(_said(d) for d in ride["departures"])
        return [
            self.alert_on(
                reading,
                "firing",
                t.since,
                value=pct,
                message=text,
                threshold=threshold,
                context={"hint": hint},
            )
        ]


def _said(d: dict[str, Any]) -> str:
    """`LAM Rossa 08:10 (+3 min) to Piazza Mercatale 08:16`; `(on time)` for a zero delay."""
    late = d["delay_s"]
    when = d["expected"]
    if late is not None:
        minutes = round(late / 60)
        when += " (on time)" if minutes == 0 else f" ({minutes:+d} min)"
    return f"{d['route']} {when} to {d['to']} {d['arrives']}"
