"""Rules on one field of one kind: rate of change, flatline (stuck sensor), seasonal baseline.

Each keeps its per-series state in plain dicts keyed by (org, gateway, sensor), and declares the
sensor kind it watches, so the engine hands it only the readings of that kind.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Literal, Self

from pydantic import Field, model_validator

from cloud.core.alerts import Alert
from cloud.core.geo import Geography, Site
from cloud.rules.base import Rule, RuleConfig
from cloud.rules.detectors import DECADES, Detector, get, names, p_from_score, score_from_p
from cloud.rules.registry import register
from edge.contract import KINDS, Reading, SensorKind

SeriesId = tuple[str, str, str]


class FieldRuleConfig(RuleConfig):
    kind: SensorKind
    field: str

    @model_validator(mode="after")
    def _field_of_kind(self) -> Self:
        if self.field not in KINDS[self.kind].by_name:
            known = ", ".join(KINDS[self.kind].by_name)
            raise ValueError(f"field: {self.field!r} is not a field of {self.kind.value} (known: {known})")
        return self


class FieldRule(Rule):
    """A rule on `cfg.field` of readings of `cfg.kind`, with firing/resolved bookkeeping."""

    cfg: FieldRuleConfig

    def __init__(self, config: RuleConfig) -> None:
        super().__init__(config)
        assert isinstance(config, FieldRuleConfig)
        self.cfg = config
        self.watches = frozenset({config.kind})
        self.firing: dict[SeriesId, datetime] = {}
        self.sites: dict[str, Site] = {}

    def bind(self, geography: Geography) -> None:
        self.sites = geography.sites

    def _series_score(
        self,
        reading: Reading,
        value: float,
        detectors: dict[SeriesId, Detector],
        make: Callable[[], Detector],
    ) -> tuple[SeriesId, Detector, float]:
        """The reading's series, that series' own detector (made on first sight) and the reading's
        calibrated score from it: what the rules that learn a baseline per series share."""
        key = (reading.org, reading.gateway, reading.sensor)
        detector = detectors.get(key)
        if detector is None:
            detector = detectors[key] = make()
        return key, detector, score_from_p(detector.pvalue(reading.ts.timestamp(), value))

    def _value(self, r: Reading) -> float | None:
        """The field's value, or None when the reading does not measure it: a traffic counter
        that saw no vehicle in its interval reports speed 0, which is no speed at all."""
        raw = r.fields.get(self.cfg.field)
        if raw is None:
            return None
        if r.kind is SensorKind.TRAFFIC and self.cfg.field == "speed_kmh" and r.fields.get("vehicles") == 0:
            return None
        return float(raw)

    def _alert(
        self,
        r: Reading,
        state: Literal["firing", "resolved"],
        since: datetime,
        value: float,
        message: str,
        threshold: float | None = None,
        context: dict[str, Any] | None = None,
    ) -> Alert:
        return self.alert_on(
            r, state, since, value=value, message=message, threshold=threshold, context=context
        )

    def _fire(
        self, r: Reading, key: SeriesId, since: datetime, value: float, message: str, **kw: Any
    ) -> list[Alert]:
        if key in self.firing:
            return []
        self.firing[key] = since
        return [self._alert(r, "firing", since, value, message, **kw)]

    def _context(self, r: Reading, score: float, detector: Detector) -> dict[str, Any]:
        """Score, baseline (what the series usually reads now) and where the sensor is."""
        out: dict[str, Any] = {"score": round(score, 4)}
        if detector.baseline is not None:
            out["baseline"] = round(detector.baseline, 3)
        site = self.sites.get(r.sensor)
        if site is not None:
            out["where"] = {"name": site.name, "lat": site.lat, "lon": site.lon}
        return out

    def _resolve(self, r: Reading, key: SeriesId, value: float, message: str) -> list[Alert]:
        if self.firing.pop(key, None) is None:
            return []
        return [self._alert(r, "resolved", r.ts, value, message)]


class RateOfChangeConfig(FieldRuleConfig):
    rule: Literal["rate_of_change"] = "rate_of_change"
    max_per_min: float = Field(gt=0)  # absolute change per minute of event time
    direction: Literal["any", "up", "down"] = "any"


@register("rate_of_change")
class RateOfChange(FieldRule):
    """A field changing faster than `max_per_min` between consecutive readings (a counter drop,
    a sudden surge); resolves at the first reading whose change is back within the limit."""

    Config = RateOfChangeConfig

    def __init__(self, config: RuleConfig) -> None:
        super().__init__(config)
        assert isinstance(config, RateOfChangeConfig)
        self.rc = config
        self.last: dict[SeriesId, tuple[datetime, float]] = {}

    def observe(self, reading: Reading) -> list[Alert]:
        value = self._value(reading)
        if value is None:
            return []
        key = (reading.org, reading.gateway, reading.sensor)
        prev = self.last.get(key)
        self.last[key] = (reading.ts, value)
        if prev is None or reading.ts <= prev[0]:
            return []
        per_min = (value - prev[1]) / ((reading.ts - prev[0]).total_seconds() / 60.0)
        return self.judge(reading, key, prev, value, per_min)

    def judge(
        self, reading: Reading, key: SeriesId, prev: tuple[datetime, float], value: float, per_min: float
    ) -> list[Alert]:
        d = self.rc.direction
        is_fast = (
            abs(per_min) > self.rc.max_per_min
            if d == "any"
            else (per_min > self.rc.max_per_min if d == "up" else -per_min > self.rc.max_per_min)
        )
        if is_fast:
            return self._fire(
                reading,
                key,
                prev[0],
                value,
                f"{self.cfg.field} changed {value - prev[1]:+g} ({per_min:+.3g}/min) "
                f"from {prev[1]:g} to {value:g}",
                threshold=self.rc.max_per_min,
                context={"previous": prev[1], "per_min": round(per_min, 6)},
            )
        return self._resolve(reading, key, value, f"{self.cfg.field} changing at {per_min:+.3g}/min again")


Run = tuple[float, datetime, int]  # value, since, readings


def advance(run: Run | None, value: float, ts: datetime) -> Run:
    if run is None or run[0] != value:
        return (value, ts, 1)
    return (value, run[1], run[2] + 1)


class FlatlineConfig(FieldRuleConfig):
    rule: Literal["flatline"] = "flatline"
    min_readings: int = Field(default=6, ge=2)
    min_duration_min: float = Field(default=30.0, ge=0)


@register("flatline")
class Flatline(FieldRule):
    """A stuck sensor: the same value for at least `min_readings` readings and `min_duration_min`."""

    Config = FlatlineConfig

    def __init__(self, config: RuleConfig) -> None:
        super().__init__(config)
        assert isinstance(config, FlatlineConfig)
        self.fc = config
        self.min_duration = timedelta(minutes=config.min_duration_min)
        self.run: dict[SeriesId, Run] = {}

    def observe(self, reading: Reading) -> list[Alert]:
        value = self._value(reading)
        if value is None:
            return []
        key = (reading.org, reading.gateway, reading.sensor)
        run = advance(self.run.get(key), value, reading.ts)
        self.run[key] = run
        return self.judge(reading, key, run, value)

    def judge(self, reading: Reading, key: SeriesId, run: Run, value: float) -> list[Alert]:
        count = run[2]
        if count == 1:
            return self._resolve(reading, key, value, f"{self.cfg.field} moving again ({value:g})")
        if count >= self.fc.min_readings and reading.ts - run[1] >= self.min_duration:
            minutes = (reading.ts - run[1]).total_seconds() / 60
            return self._fire(
                reading,
                key,
                run[1],
                value,
                f"{self.cfg.field} stuck at {value:g} for {count} readings ({minutes:.0f} min)",
                context={"readings": count},
            )
        return []


class SeasonalConfig(FieldRuleConfig):
    rule: Literal["seasonal"] = "seasonal"
    detector: str = "ensemble"
    score_above: float = Field(default=0.8, gt=0, le=1)  # 0.8 = as rare as 1 in 60,000 readings
    clear_below: float = Field(default=0.4, ge=0, lt=1)
    clear_readings: int = Field(default=3, ge=1)

    @model_validator(mode="after")
    def _known_detector(self) -> Self:
        if self.detector not in names():
            raise ValueError(f"detector: {self.detector!r} is not one of {', '.join(names())}")
        if self.clear_below > self.score_above:
            raise ValueError(
                f"clear_below: {self.clear_below} must not exceed score_above ({self.score_above})"
            )
        return self


@register("seasonal")
class Seasonal(FieldRule):
    """Deviation from the series' own ordinary operations, learnt online per series (time-of-day
    and time-of-week profile, level, period), scored as a calibrated rarity (see cloud.rules.detectors)."""

    Config = SeasonalConfig

    def __init__(self, config: RuleConfig) -> None:
        super().__init__(config)
        assert isinstance(config, SeasonalConfig)
        self.sc = config
        self.detector_cls = get(config.detector)
        self.detectors: dict[SeriesId, Detector] = {}
        self.calm: dict[SeriesId, int] = {}

    def observe(self, reading: Reading) -> list[Alert]:
        value = self._value(reading)
        if value is None:
            return []
        key, detector, score = self._series_score(reading, value, self.detectors, self.detector_cls)
        if score >= self.sc.score_above:
            self.calm[key] = 0
            one_in = 1 / max(p_from_score(score), 10**-DECADES)
            return self._fire(
                reading,
                key,
                reading.ts,
                value,
                f"{self.cfg.field} {value:g} departs from its ordinary operations (score {score:.2f}, "
                f"about 1 in {one_in:,.0f} readings)",
                threshold=self.sc.score_above,
                context=self._context(reading, score, detector),
            )
        if key in self.firing and score < self.sc.clear_below:
            calm = self.calm.get(key, 0) + 1
            self.calm[key] = calm
            if calm >= self.sc.clear_readings:
                return self._resolve(reading, key, value, f"{self.cfg.field} back to ordinary ({value:g})")
        return []


class RateOfChangeGroup:
    """Every rate-of-change rule on one (kind, field), sharing one previous value per series:
    a reading whose change is within every rule's limit, for a series none of them has firing,
    costs one division instead of one call per rule."""

    def __init__(self, rules: list[RateOfChange]) -> None:
        self.rules = rules
        self.field = rules[0].cfg.field
        self.needs_vehicles = rules[0].cfg.kind is SensorKind.TRAFFIC and self.field == "speed_kmh"
        self.quiet_per_min = min(r.rc.max_per_min for r in rules)
        self.last: dict[SeriesId, tuple[datetime, float]] = {}
        self.engaged: set[SeriesId] = set()  # series some rule has firing

    def observe(self, reading: Reading) -> list[Alert]:
        raw = reading.fields.get(self.field)
        if raw is None or (self.needs_vehicles and reading.fields.get("vehicles") == 0):
            return []  # see FieldRule._value: no vehicle, no speed
        value = float(raw)
        key = (reading.org, reading.gateway, reading.sensor)
        prev = self.last.get(key)
        self.last[key] = (reading.ts, value)
        if prev is None or reading.ts <= prev[0]:
            return []
        per_min = (value - prev[1]) / ((reading.ts - prev[0]).total_seconds() / 60.0)
        if -self.quiet_per_min <= per_min <= self.quiet_per_min and key not in self.engaged:
            return []
        out: list[Alert] = []
        for r in self.rules:
            out.extend(r.judge(reading, key, prev, value, per_min))
        if any(key in r.firing for r in self.rules):
            self.engaged.add(key)
        else:
            self.engaged.discard(key)
        return out


class FlatlineGroup:
    """Every flatline rule on one (kind, field), sharing one run per series."""

    def __init__(self, rules: list[Flatline]) -> None:
        self.rules = rules
        self.field = rules[0].cfg.field
        self.needs_vehicles = rules[0].cfg.kind is SensorKind.TRAFFIC and self.field == "speed_kmh"
        self.quiet_below = min(r.fc.min_readings for r in rules)
        self.run: dict[SeriesId, Run] = {}
        self.engaged: set[SeriesId] = set()  # series some rule has firing

    def observe(self, reading: Reading) -> list[Alert]:
        raw = reading.fields.get(self.field)
        if raw is None or (self.needs_vehicles and reading.fields.get("vehicles") == 0):
            return []  # see FieldRule._value: no vehicle, no speed
        value = float(raw)
        key = (reading.org, reading.gateway, reading.sensor)
        run = advance(self.run.get(key), value, reading.ts)
        self.run[key] = run
        if run[2] < self.quiet_below and key not in self.engaged:
            return []
        out: list[Alert] = []
        for r in self.rules:
            out.extend(r.judge(reading, key, run, value))
        if any(key in r.firing for r in self.rules):
            self.engaged.add(key)
        else:
            self.engaged.discard(key)
        return out
