"""Threshold with hold time and hysteresis: e.g. a car park above 95 % for 15 minutes.

The condition starts when the field goes beyond `above` (or `below`) and lasts until the value
is back past `clear`: a value hovering between the two still counts. It fires once the
condition has lasted `hold_min` of event time and resolves when it ends, so a value hovering
at the threshold neither flaps nor restarts the hold.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Literal, Self

from pydantic import Field, model_validator

from cloud.core.alerts import Alert
from cloud.rules.base import Rule
from cloud.rules.field import FieldRuleConfig
from cloud.rules.group import RuleGroup
from cloud.rules.hysteresis import Hysteresis, SeriesId, series_of
from cloud.rules.registry import register
from edge.contract import Reading


class ThresholdConfig(FieldRuleConfig):
    rule: Literal["threshold"] = "threshold"
    above: float | None = None
    below: float | None = None
    clear: float | None = None  # default: the threshold itself (no hysteresis)
    hold_min: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.above is None) == (self.below is None):
            raise ValueError("give exactly one of `above` and `below`")
        if self.clear is not None:
            if self.above is not None and self.clear > self.above:
                raise ValueError(f"clear: {self.clear} must not exceed above ({self.above})")
            if self.below is not None and self.clear < self.below:
                raise ValueError(f"clear: {self.clear} must not be under below ({self.below})")
        return self


class ThresholdGroup(RuleGroup["Threshold"]):
    """Every threshold rule on one (kind, field): a reading inside the band no rule cares about,
    for a series no rule is holding or firing, costs two comparisons instead of one call per rule."""

    def __init__(self, rules: list[Threshold]) -> None:
        super().__init__(rules)
        self.field = rules[0].config.field
        # Quiet band: not beyond any `above` nor any `below`, and not between a limit and its clear.
        self.quiet_hi = min(
            [lim for r in rules if r.is_above for lim in (r.limit, r.clear)], default=float("inf")
        )
        self.quiet_lo = max(
            [lim for r in rules if not r.is_above for lim in (r.limit, r.clear)], default=float("-inf")
        )

    def observe(self, reading: Reading) -> list[Alert]:
        raw = reading.fields.get(self.field)
        if raw is None:
            return []
        key = (reading.org, reading.gateway, reading.sensor)  # series_of(), inlined: every reading comes here
        if self.quiet_lo < raw < self.quiet_hi and key not in self.engaged:
            return []
        return self.judge_all(key, lambda r: r.observe(reading))

    def observe_many(self, readings: Sequence[Reading], keys: Sequence[SeriesId]) -> list[tuple[int, Alert]]:
        """`observe` each reading in turn, a quiet reading of a quiet series inline."""
        field, quiet_lo, quiet_hi, engaged = self.field, self.quiet_lo, self.quiet_hi, self.engaged
        out: list[tuple[int, Alert]] = []
        for i, reading in enumerate(readings):
            raw = reading.fields.get(field)
            if raw is None or (quiet_lo < raw < quiet_hi and not (engaged and keys[i] in engaged)):
                continue
            found = self.observe(reading)
            if found:
                out.extend([(i, a) for a in found])
        return out


@register("threshold")
class Threshold(Rule[ThresholdConfig]):
    Config = ThresholdConfig
    Group = ThresholdGroup

    def __init__(self, config: ThresholdConfig) -> None:
        super().__init__(config)
        self.watches = frozenset({config.kind})
        self.is_above = config.above is not None
        limit = config.above if config.above is not None else config.below
        assert limit is not None  # the config allows exactly one of them
        self.limit: float = limit
        self.clear: float = config.clear if config.clear is not None else limit
        self.hysteresis = Hysteresis(hold=timedelta(minutes=config.hold_min))

    def group_key(self) -> str | None:
        return self.config.field

    def observe(self, reading: Reading) -> list[Alert]:
        if reading.kind is not self.config.kind or self.config.field not in reading.fields:
            return []
        value = float(reading.fields[self.config.field])
        if self.is_above:
            is_beyond, is_cleared = value > self.limit, value < self.clear
        else:
            is_beyond, is_cleared = value < self.limit, value > self.clear
        t = self.hysteresis.step(series_of(reading), reading.ts, is_beyond=is_beyond, is_cleared=is_cleared)
        if t is None:
            return []
        field = self.config.field
        if t.state == "firing":
            word = "above" if self.is_above else "below"
            minutes = (reading.ts - t.since).total_seconds() / 60
            message = f"{field} {value:g} {word} {self.limit:g} for {minutes:.0f} min"
        else:
            message = f"{field} back to {value:g}"
        return [self.alert_on(reading, t.state, t.since, value=value, message=message, threshold=self.limit)]
