"""Staleness: a sensor or a gateway that has gone silent, in event time.

A sensor is stale when its gateway's event time is `silent_min` newer than the sensor's own
reading: the gateway is alive, the sensor is not. A gateway is stale when the overall event
time is `silent_min` newer than the gateway's reading, or at once when its last will
("offline", connection lost) arrives. Event time keeps the rule right under accelerated replay;
the engine's watermarks (cloud/rules/watermark.py) keep one reading stamped ahead from making
every other sensor or gateway look silent.

Only kinds that report on a schedule are watched (`KindSpec.reports_periodically`): a bus stop
is silent between buses and a bus out of service, which is no fault; a GTFS-Realtime feed's
own silence is its reader's `transit-feed-stale` alert (cloud/transit/realtime/reader.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal

from pydantic import Field

from cloud.core.alerts import Alert
from cloud.rules.base import Clocks, Rule, RuleConfig
from cloud.rules.hysteresis import SeriesId
from cloud.rules.registry import register
from edge.contract import KINDS, Reading, SensorKind


class StalenessConfig(RuleConfig):
    rule: Literal["staleness"] = "staleness"
    scope: Literal["sensor", "gateway"] = "sensor"
    silent_min: float = Field(default=10.0, gt=0)


@register("staleness")
class Staleness(Rule[StalenessConfig]):
    Config = StalenessConfig

    def __init__(self, config: StalenessConfig) -> None:
        super().__init__(config)
        self.silent = timedelta(minutes=config.silent_min)
        # (org, gateway, sensor) -> (kind, last ts)
        self.last: dict[tuple[str, str, str], tuple[str, datetime]] = {}
        self.stale: set[tuple[str, str, str]] = set()

    def observe(self, reading: Reading) -> list[Alert]:
        if not KINDS[reading.kind].reports_periodically:
            return []
        key = (reading.org, reading.gateway, reading.sensor if self.config.scope == "sensor" else "")
        prev = self.last.get(key)
        if prev is None or reading.ts > prev[1]:
            self.last[key] = (reading.kind.value, reading.ts)
        if key in self.stale:
            self.stale.discard(key)
            return [self._alert(key, reading.ts, "resolved", f"{self._what(key)} reports again")]
        return []

    def observe_many(self, readings: Sequence[Reading], keys: Sequence[SeriesId]) -> list[tuple[int, Alert]]:
        """`observe` each reading in turn, inlined: a reading of a series that is not stale
        only moves its time."""
        is_sensor = self.config.scope == "sensor"
        last, stale = self.last, self.stale
        out: list[tuple[int, Alert]] = []
        kind_of: SensorKind | None = None
        kind = ""
        periodic = True
        for i, reading in enumerate(readings):
            if reading.kind is not kind_of:  # one kind per message: its value once
                kind_of = reading.kind
                kind = kind_of.value
                periodic = KINDS[kind_of].reports_periodically
            if not periodic:
                continue  # a bus between stops, a feed at night: no schedule to miss
            key = keys[i] if is_sensor else (reading.org, reading.gateway, "")
            ts = reading.ts
            prev = last.get(key)
            if prev is None or ts > prev[1]:
                last[key] = (kind, ts)
            if stale and key in stale:
                stale.discard(key)
                out.append((i, self._alert(key, ts, "resolved", f"{self._what(key)} reports again")))
        return out

    def tick(self, clocks: Clocks) -> list[Alert]:
        out = []
        for key, (_kind, last_ts) in self.last.items():
            org, gateway, _sensor = key
            ref = clocks.gateways.get((org, gateway)) if self.config.scope == "sensor" else clocks.now
            if ref is None or key in self.stale or ref - last_ts <= self.silent:
                continue
            self.stale.add(key)
            minutes = (ref - last_ts).total_seconds() / 60
            out.append(
                self._alert(
                    key,
                    ref,
                    "firing",
                    f"{self._what(key)} silent for {minutes:.0f} min",
                    since=last_ts,
                    value=minutes,
                )
            )
        return out

    def gateway_status(self, org: str, gateway: str, state: str, reason: str, ts: datetime) -> list[Alert]:
        key = (org, gateway, "")
        if self.config.scope != "gateway" or state != "offline" or reason == "shutdown" or key in self.stale:
            return []
        self.last.setdefault(key, ("gateway", ts))
        self.stale.add(key)
        return [self._alert(key, ts, "firing", f"gateway {gateway} lost its connection ({reason})", since=ts)]

    def _what(self, key: tuple[str, str, str]) -> str:
        return f"sensor {key[2]} on {key[1]}" if key[2] else f"gateway {key[1]}"

    def _alert(
        self,
        key: tuple[str, str, str],
        ts: datetime,
        state: Literal["firing", "resolved"],
        message: str,
        *,
        since: datetime | None = None,
        value: float | None = None,
    ) -> Alert:
        org, gateway, sensor = key
        kind = self.last.get(key, ("gateway", ts))[0] if sensor else "gateway"
        return Alert(
            rule=self.name,
            org=org,
            entity=sensor or gateway,
            gateway=gateway,
            kind=kind,
            severity=self.config.severity,
            state=state,
            since=since or ts,
            ts=ts,
            message=message,
            value=value,
            threshold=self.config.silent_min,
        )
