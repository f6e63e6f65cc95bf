"""Flatline: a stuck sensor, the same value for at least `min_readings` readings and `min_duration_min`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal

from pydantic import Field

from cloud.core.alerts import Alert
from cloud.rules.field import FieldRule, FieldRuleConfig, FieldRuleGroup
from cloud.rules.hysteresis import Hysteresis, SeriesId, series_of
from cloud.rules.registry import register
from edge.contract import Reading


class FlatlineConfig(FieldRuleConfig):
    rule: Literal["flatline"] = "flatline"
    min_readings: int = Field(default=6, ge=2)
    min_duration_min: float = Field(default=30.0, ge=0)


Run = tuple[float, datetime, int]  # value, since, readings


def advance(run: Run | None, value: float, ts: datetime) -> Run:
    if run is None or run[0] != value:
        return (value, ts, 1)
    return (value, run[1], run[2] + 1)


class FlatlineGroup(FieldRuleGroup["Flatline"]):
    """Every flatline rule on one (kind, field), sharing one run per series."""

    def __init__(self, rules: list[Flatline]) -> None:
        super().__init__(rules)
        self.quiet_below = min(r.config.min_readings for r in rules)
        self.run: dict[SeriesId, Run] = {}

    def observe(self, reading: Reading) -> list[Alert]:
        # measured() and series_of(), inlined: every reading of the kind comes here.
        raw = reading.fields.get(self.field)
        if raw is None or (self.is_traffic_speed and reading.fields.get("vehicles") == 0):
            return []
        value = float(raw)
        key = (reading.org, reading.gateway, reading.sensor)
        run = advance(self.run.get(key), value, reading.ts)
        self.run[key] = run
        if run[2] < self.quiet_below and key not in self.engaged:
            return []
        return self._judge_all(reading, key, run, value)

    def observe_many(self, readings: Sequence[Reading], keys: Sequence[SeriesId]) -> list[tuple[int, Alert]]:
        """`observe` each reading in turn, inlined: a run shorter than every rule's, of a series
        none of them is holding or firing, costs no call."""
        field, is_speed, runs, engaged = self.field, self.is_traffic_speed, self.run, self.engaged
        quiet_below = self.quiet_below
        out: list[tuple[int, Alert]] = []
        for i, reading in enumerate(readings):
            fields = reading.fields
            raw = fields.get(field)
            if raw is None or (is_speed and fields.get("vehicles") == 0):
                continue
            value = float(raw)
            key = keys[i]
            run = runs.get(key)
            # The run goes on or a new one starts: advance(), inlined.
            run = (value, reading.ts, 1) if run is None or run[0] != value else (value, run[1], run[2] + 1)
            runs[key] = run
            if run[2] < quiet_below and not (engaged and key in engaged):
                continue
            found = self._judge_all(reading, key, run, value)
            if found:
                out.extend([(i, a) for a in found])
        return out

    def _judge_all(self, reading: Reading, key: SeriesId, run: Run, value: float) -> list[Alert]:
        return self.judge_all(key, lambda r: r.judge(reading, key, run, value))


@register("flatline")
class Flatline(FieldRule[FlatlineConfig]):
    Config = FlatlineConfig
    Group = FlatlineGroup

    def __init__(self, config: FlatlineConfig) -> None:
        super().__init__(config)
        # The run must last `min_duration_min` from its first reading: a hold from the run's start.
        self.hysteresis = Hysteresis(hold=timedelta(minutes=config.min_duration_min))
        self.run: dict[SeriesId, Run] = {}

    def observe(self, reading: Reading) -> list[Alert]:
        value = self._value(reading)
        if value is None:
            return []
        key = series_of(reading)
        run = advance(self.run.get(key), value, reading.ts)
        self.run[key] = run
        return self.judge(reading, key, run, value)

    def judge(self, reading: Reading, key: SeriesId, run: Run, value: float) -> list[Alert]:
        count = run[2]
        t = self.hysteresis.step(
            key, reading.ts, is_beyond=count >= self.config.min_readings, is_cleared=count == 1, since=run[1]
        )
        if t is None:
            return []
        field = self.config.field
        if t.state == "resolved":
            return [
                self.alert_on(
                    reading, "resolved", t.since, value=value, message=f"{field} moving again ({value:g})"
                )
            ]
        minutes = (reading.ts - run[1]).total_seconds() / 60
        return [
            self.alert_on(
                reading,
                "firing",
                t.since,
                value=value,
                message=f"{field} stuck at {value:g} for {count} readings ({minutes:.0f} min)",
                context={"readings": count},
            )
        ]
