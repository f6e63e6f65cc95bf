"""Bus delays near active worksites against the same hour of the week without them.

Each `transit_delay` reading (a trip's delay as it passed a stop) is placed: its stop from the
bus network, the hour of the week in `timezone`. Away from any active worksite it teaches that
stop and route's baseline for that hour (a running mean); within `radius_m` of an active
worksite it is compared with it, and the excess over the baseline is kept per worksite and
route. The mean excess of the last `readings` readings above `above_s` fires, under `clear_s`
resolves; so does the worksite ending (the next reading there finds none).
"""

from __future__ import annotations

from collections import deque
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator

from cloud.core.alerts import Alert
from cloud.core.geo import Geography, NoWorksites, WorksiteLookup, WorksiteRef
from cloud.core.orgs import OrgId
from cloud.core.transit import NoTransit, TransitNetwork
from cloud.rules.base import Rule, RuleConfig
from cloud.rules.registry import register
from edge.contract import Reading, SensorKind
from edge.contract.gtfs.ids import sensor_id

Baseline = tuple[str, str, str, int]  # (operator, route tag, stop sensor, hour of the week)
Watch = tuple[str, str, str]  # (operator, route tag, worksite id)
HOURS_PER_WEEK = 168


class WorksiteBusDelayConfig(RuleConfig):
    rule: Literal["worksite_bus_delay"] = "worksite_bus_delay"
    radius_m: float = Field(default=300.0, gt=0)
    above_s: float = Field(default=180.0, gt=0)
    clear_s: float = Field(default=60.0)
    readings: int = Field(default=3, ge=1, le=100)
    min_baseline: int = Field(default=3, ge=1)
    baseline_weight: int = Field(default=12, ge=1)  # the running mean weighs at most this many
    notify: list[OrgId] = Field(default_factory=lambda: ["comune-prato"], max_length=20)
    timezone: str = "Europe/Rome"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ValueError, OSError):
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. Europe/Rome)") from None
        return value

    @field_validator("clear_s")
    @classmethod
    def _clear_under_above(cls, value: float, info: Any) -> float:
        above = info.data.get("above_s")
        if above is not None and value >= above:
            raise ValueError(f"must be under above_s ({above:g}), or the alert could never resolve")
        return value


def hour_of_week(ts: datetime, tz: ZoneInfo) -> int:
    """0 for Monday 00:00-01:00 local time, 167 for Sunday 23:00-24:00."""
    local = ts.astimezone(tz)
    return local.weekday() * 24 + local.hour


@register("worksite_bus_delay")
class WorksiteBusDelay(Rule[WorksiteBusDelayConfig]):
    Config = WorksiteBusDelayConfig

    def __init__(self, config: WorksiteBusDelayConfig) -> None:
        super().__init__(config)
        self.watches = frozenset({SensorKind.TRANSIT_DELAY.value})
        self.worksites: WorksiteLookup = NoWorksites()
        self.transit: TransitNetwork = NoTransit()
        self.tz = ZoneInfo(config.timezone)
        self.baselines: dict[Baseline, tuple[int, float]] = {}  # count, mean delay_s
        self.excess: dict[Watch, deque[float]] = {}
        self.firing: dict[Watch, list[Alert]] = {}
        self.unplaced = 0  # readings of a stop the network does not know
        self.unjudged = 0  # readings near a worksite with no baseline for their hour yet

    def bind(self, geography: Geography) -> None:
        self.worksites = geography.worksites
        self.transit = geography.transit

    def _learn(self, key: Baseline, delay_s: float) -> None:
        n, mean = self.baselines.get(key, (0, 0.0))
        n = min(n + 1, self.config.baseline_weight)
        self.baselines[key] = (n, mean + (delay_s - mean) / n)

    def observe(self, reading: Reading) -> list[Alert]:
        delay = reading.fields.get("delay_s")
        if reading.fields.get("status") != "scheduled" or not isinstance(delay, int | float):
            return []
        stop = self.transit.stop(reading.org, reading.sensor)
        if stop is None:
            self.unplaced += 1
            return []
        route = reading.tags.get("route", "")
        how = hour_of_week(reading.ts, self.tz)
        key = (reading.org, route, reading.sensor, how)
        near = self.worksites.active_near(stop.lat, stop.lon, self.config.radius_m, reading.ts)
        out = self._resolve_gone(reading, route, {w.id for w in near})
        if not near:
            self._learn(key, float(delay))
            return out
        n, mean = self.baselines.get(key, (0, 0.0))
        if n < self.config.min_baseline:
            self.unjudged += 1
            return out
        for ws in near:
            watch = (reading.org, route, ws.id)
            window = self.excess.setdefault(watch, deque(maxlen=self.config.readings))
            window.append(float(delay) - mean)
            if len(window) < self.config.readings:
                continue
            excess = sum(window) / len(window)
            if watch not in self.firing and excess >= self.config.above_s:
                alerts = self._fire(reading, ws, route, stop.name, excess, mean, how)
                self.firing[watch] = alerts
                out += alerts
            elif watch in self.firing and excess < self.config.clear_s:
                back = f"buses of route {route} back to their usual delay ({excess / 60:+.1f} min)"
                out += self._resolve(watch, reading.ts, back)
        return out

    def _resolve_gone(self, reading: Reading, route: str, near: set[str]) -> list[Alert]:
        """Alerts on this route whose worksite is no longer active here resolve."""
        out: list[Alert] = []
        for watch in [w for w in self.firing if w[:2] == (reading.org, route) and w[2] not in near]:
            ws_active = {w.id for w in self.worksites.active(reading.ts)}
            if watch[2] not in ws_active:
                out += self._resolve(watch, reading.ts, f"worksite {watch[2]} no longer active")
        return out

    def _resolve(self, watch: Watch, ts: datetime, message: str) -> list[Alert]:
        self.excess.pop(watch, None)
        return [a.resolved(ts, message) for a in self.firing.pop(watch, [])]

    def _fire(
        self, reading: Reading, ws: WorksiteRef, route: str, stop: str, excess: float, mean: float, how: int
    ) -> list[Alert]:
        day = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")[how // 24]
        message = (
            f"buses of route {route} {excess / 60:+.1f} min later than usual near worksite "
            f"{ws.name or ws.id} (at {stop}: usual delay {mean / 60:+.1f} min on {day} {how % 24:02d}h)"
        )
        context: dict[str, Any] = {
            "worksite": ws.to_context() | {"owner": ws.org},
            "route": route,
            "operator": reading.org,
            "stop": stop,
            "baseline_s": round(mean, 1),
            "hour_of_week": how,
            "readings": self.config.readings,
        }
        entity = sensor_id(f"{ws.id}--{route.lower()}")
        return [
            Alert(
                rule=self.name,
                org=org,
                entity=entity,
                gateway=reading.gateway,
                kind=reading.kind.value,
                severity=self.config.severity,
                state="firing",
                since=reading.ts,
                ts=reading.ts,
                message=message,
                value=round(excess, 1),
                threshold=self.config.above_s,
                context=context,
            )
            for org in dict.fromkeys([reading.org, *self.config.notify])
        ]
