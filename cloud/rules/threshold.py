"""Threshold with hold time and hysteresis: e.g. a car park above 95 % for 15 minutes.

The condition starts when the field goes beyond `above` (or `below`) and lasts until the value
is back past `clear`: a value hovering between the two still counts. It fires once the
condition has lasted `hold_min` of event time and resolves when it ends, so a value hovering
at the threshold neither flaps nor restarts the hold.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal, Self

from pydantic import Field, model_validator

from cloud.core.alerts import Alert
from cloud.rules.base import Rule, RuleConfig
from cloud.rules.registry import register
from edge.contract import KINDS, Reading, SensorKind


class ThresholdConfig(RuleConfig):
    rule: Literal["threshold"] = "threshold"
    kind: SensorKind
    field: str
    above: float | None = None
    below: float | None = None
    clear: float | None = None  # default: the threshold itself (no hysteresis)
    hold_min: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.field not in KINDS[self.kind].by_name:
            known = ", ".join(KINDS[self.kind].by_name)
            raise ValueError(f"field: {self.field!r} is not a field of {self.kind.value} (known: {known})")
        if (self.above is None) == (self.below is None):
            raise ValueError("give exactly one of `above` and `below`")
        if self.clear is not None:
            if self.above is not None and self.clear > self.above:
                raise ValueError(f"clear: {self.clear} must not exceed above ({self.above})")
            if self.below is not None and self.clear < self.below:
                raise ValueError(f"clear: {self.clear} must not be under below ({self.below})")
        return self


@register("threshold")
class Threshold(Rule):
    Config = ThresholdConfig

    def __init__(self, config: RuleConfig) -> None:
        super().__init__(config)
        assert isinstance(config, ThresholdConfig)
        self.cfg = config
        self.watches = frozenset({config.kind})
        self.hold = timedelta(minutes=config.hold_min)
        limit = config.above if config.above is not None else config.below
        assert limit is not None  # the config allows exactly one of them
        self.limit: float = limit
        self.clear: float = config.clear if config.clear is not None else limit
        self.beyond_since: dict[tuple[str, str, str], datetime] = {}
        self.firing: set[tuple[str, str, str]] = set()

    def _beyond(self, v: float) -> bool:
        return v > self.cfg.above if self.cfg.above is not None else v < self.cfg.below  # type: ignore[operator]

    def _cleared(self, v: float) -> bool:
        return v < self.clear if self.cfg.above is not None else v > self.clear

    def observe(self, reading: Reading) -> list[Alert]:
        if reading.kind is not self.cfg.kind or self.cfg.field not in reading.fields:
            return []
        value = float(reading.fields[self.cfg.field])
        key = (reading.org, reading.gateway, reading.sensor)
        if self._beyond(value):
            since = self.beyond_since.setdefault(key, reading.ts)
            if key not in self.firing and reading.ts - since >= self.hold:
                self.firing.add(key)
                word = "above" if self.cfg.above is not None else "below"
                return [
                    self._alert(
                        reading,
                        "firing",
                        since,
                        value,
                        f"{self.cfg.field} {value:g} {word} {self.limit:g} for "
                        f"{(reading.ts - since).total_seconds() / 60:.0f} min",
                    )
                ]
        elif self._cleared(value):
            self.beyond_since.pop(key, None)
            if key in self.firing:
                self.firing.discard(key)
                return [
                    self._alert(reading, "resolved", reading.ts, value, f"{self.cfg.field} back to {value:g}")
                ]
        return []

    def _alert(
        self, r: Reading, state: Literal["firing", "resolved"], since: datetime, value: float, message: str
    ) -> Alert:
        return self.alert_on(r, state, since, value=value, message=message, threshold=self.limit)


class ThresholdGroup:
    """Every threshold rule on one (kind, field): a reading inside the band no rule cares about,
    for a series no rule is holding or firing, costs two comparisons instead of one call per rule."""

    def __init__(self, rules: list[Threshold]) -> None:
        self.rules = rules
        self.field = rules[0].cfg.field
        aboves = [r.cfg.above for r in rules if r.cfg.above is not None]
        belows = [r.cfg.below for r in rules if r.cfg.below is not None]
        # Quiet band: not beyond any `above` nor any `below`, and not between a limit and its clear.
        self.quiet_hi = min(
            [*aboves, *(r.clear for r in rules if r.cfg.above is not None)], default=float("inf")
        )
        self.quiet_lo = max(
            [*belows, *(r.clear for r in rules if r.cfg.below is not None)], default=float("-inf")
        )
        self.engaged: set[tuple[str, str, str]] = set()

    def observe(self, reading: Reading) -> list[Alert]:
        raw = reading.fields.get(self.field)
        if raw is None:
            return []
        key = (reading.org, reading.gateway, reading.sensor)
        if self.quiet_lo < raw < self.quiet_hi and key not in self.engaged:
            return []
        out: list[Alert] = []
        for r in self.rules:
            out.extend(r.observe(reading))
        if any(key in r.beyond_since or key in r.firing for r in self.rules):
            self.engaged.add(key)
        else:
            self.engaged.discard(key)
        return out
