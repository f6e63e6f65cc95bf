"""Rate of change: a field changing faster than `max_per_min` between consecutive readings (a
counter drop, a sudden surge); resolves at the first reading whose change is back within the limit."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from pydantic import Field

from cloud.core.alerts import Alert
from cloud.rules.field import FieldRule, FieldRuleConfig, FieldRuleGroup
from cloud.rules.hysteresis import SeriesId, series_of
from cloud.rules.registry import register
from edge.contract import Reading


class RateOfChangeConfig(FieldRuleConfig):
    rule: Literal["rate_of_change"] = "rate_of_change"
    max_per_min: float = Field(gt=0)  # absolute change per minute of event time
    direction: Literal["any", "up", "down"] = "any"


Previous = tuple[datetime, float]  # the series' previous reading: ts, value


def per_minute(prev: Previous, ts: datetime, value: float) -> float:
    return (value - prev[1]) / ((ts - prev[0]).total_seconds() / 60.0)


class RateOfChangeGroup(FieldRuleGroup["RateOfChange"]):
    """Every rate-of-change rule on one (kind, field), sharing one previous value per series:
    a reading whose change is within every rule's limit, for a series none of them has firing,
    costs one division instead of one call per rule."""

    def __init__(self, rules: list[RateOfChange]) -> None:
        super().__init__(rules)
        self.quiet_per_min = min(r.config.max_per_min for r in rules)
        self.last: dict[SeriesId, Previous] = {}

    def observe(self, reading: Reading) -> list[Alert]:
        # measured() and series_of(), inlined: every reading of the kind comes here.
        raw = reading.fields.get(self.field)
        if raw is None or (self.is_traffic_speed and reading.fields.get("vehicles") == 0):
            return []
        value = float(raw)
        key = (reading.org, reading.gateway, reading.sensor)
        prev = self.last.get(key)
        self.last[key] = (reading.ts, value)
        if prev is None or reading.ts <= prev[0]:
            return []
        rate = per_minute(prev, reading.ts, value)
        if -self.quiet_per_min <= rate <= self.quiet_per_min and key not in self.engaged:
            return []
        return self._judge_all(reading, key, prev, value, rate)

    def observe_many(self, readings: Sequence[Reading], keys: Sequence[SeriesId]) -> list[tuple[int, Alert]]:
        """`observe` each reading in turn, inlined: a change within every limit of a series none
        of the rules has firing costs no call."""
        field, is_speed, last, engaged = self.field, self.is_traffic_speed, self.last, self.engaged
        quiet = self.quiet_per_min
        out: list[tuple[int, Alert]] = []
        for i, reading in enumerate(readings):
            fields = reading.fields
            raw = fields.get(field)
            if raw is None or (is_speed and fields.get("vehicles") == 0):
                continue
            value = float(raw)
            key = keys[i]
            ts = reading.ts
            prev = last.get(key)
            last[key] = (ts, value)
            if prev is None or ts <= prev[0]:
                continue
            rate = (value - prev[1]) / ((ts - prev[0]).total_seconds() / 60.0)  # per_minute()
            if -quiet <= rate <= quiet and not (engaged and key in engaged):
                continue
            found = self._judge_all(reading, key, prev, value, rate)
            if found:
                out.extend([(i, a) for a in found])
        return out

    def _judge_all(
        self, reading: Reading, key: SeriesId, prev: Previous, value: float, rate: float
    ) -> list[Alert]:
        return self.judge_all(key, lambda r: r.judge(reading, key, prev, value, rate))


@register("rate_of_change")
class RateOfChange(FieldRule[RateOfChangeConfig]):
    Config = RateOfChangeConfig
    Group = RateOfChangeGroup

    def __init__(self, config: RateOfChangeConfig) -> None:
        super().__init__(config)
        self.last: dict[SeriesId, Previous] = {}

    def observe(self, reading: Reading) -> list[Alert]:
        value = self._value(reading)
        if value is None:
            return []
        key = series_of(reading)
        prev = self.last.get(key)
        self.last[key] = (reading.ts, value)
        if prev is None or reading.ts <= prev[0]:
            return []
        return self.judge(reading, key, prev, value, per_minute(prev, reading.ts, value))

    def judge(
        self, reading: Reading, key: SeriesId, prev: Previous, value: float, rate: float
    ) -> list[Alert]:
        limit, direction = self.config.max_per_min, self.config.direction
        is_fast = (
            abs(rate) > limit
            if direction == "any"
            else (rate > limit if direction == "up" else -rate > limit)
        )
        t = self.hysteresis.step(key, reading.ts, is_beyond=is_fast, is_cleared=not is_fast, since=prev[0])
        if t is None:
            return []
        field = self.config.field
        if t.state == "resolved":
            message = f"{field} changing at {rate:+.3g}/min again"
            return [self.alert_on(reading, "resolved", t.since, value=value, message=message)]
        return [
            self.alert_on(
                reading,
                "firing",
                t.since,
                value=value,
                message=f"{field} changed {value - prev[1]:+g} ({rate:+.3g}/min) "
                f"from {prev[1]:g} to {value:g}",
                threshold=limit,
                context={"previous": prev[1], "per_min": round(rate, 6)},
            )
        ]
