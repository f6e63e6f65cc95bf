"""Parking saturation: a car park full for `hold_min`, with the nearest facility that has free
spaces (from the latest readings this engine has seen) and the nearest park-and-ride as
intermodal hints."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import Field

from cloud.core.alerts import Alert
from cloud.core.geo import Geography, Site, distance_m
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


@register("parking_saturation")
class ParkingSaturation(Rule[ParkingSaturationConfig]):
    Config = ParkingSaturationConfig

    def __init__(self, config: ParkingSaturationConfig) -> None:
        super().__init__(config)
        self.watches = frozenset({SensorKind.PARKING.value})
        self.sites: dict[str, Site] = {}
        self.latest: dict[str, tuple[float, int, int, datetime]] = {}  # sensor -> pct, free, cap, ts
        self.hysteresis = Hysteresis(hold=timedelta(minutes=config.hold_min))

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
        return best

    def observe(self, reading: Reading) -> list[Alert]:
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
        if "park_and_ride" in hint and hint["park_and_ride"] != hint.get("nearest"):
            p = hint["park_and_ride"]
            text += f"; park and ride: {p['name']} ({p['free']} free, {p['distance_m']} m)"
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
