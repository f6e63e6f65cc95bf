"""Rules on one field of one sensor kind, and those among them that score it with a detector.

Each keeps its per-series state keyed by (org, gateway, sensor) and declares the sensor kind it
watches, so the engine hands it only the readings of that kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self, TypeVar

from pydantic import Field, model_validator

from cloud.core.geo import Geography, Site
from cloud.rules.base import Rule, RuleConfig
from cloud.rules.detectors import ALIAS, Detector, get, names, score_from_p
from cloud.rules.group import RuleGroup
from cloud.rules.hysteresis import Hysteresis, SeriesId, Transition, series_of
from edge.contract import KINDS, Reading, SensorKind


class FieldRuleConfig(RuleConfig):
    kind: SensorKind
    field: str

    @model_validator(mode="after")
    def _field_of_kind(self) -> Self:
        if self.field not in KINDS[self.kind].by_name:
            known = ", ".join(KINDS[self.kind].by_name)
            raise ValueError(f"field: {self.field!r} is not a field of {self.kind.value} (known: {known})")
        return self


FieldConfigT = TypeVar("FieldConfigT", bound=FieldRuleConfig)


def is_traffic_speed(kind: SensorKind, field: str) -> bool:
    """A traffic counter that saw no vehicle in its interval reports speed 0, which is no speed
    at all: rules on this field skip the readings with `vehicles` 0."""
    return kind is SensorKind.TRAFFIC and field == "speed_kmh"


def measured(r: Reading, field: str, is_traffic_speed: bool) -> float | None:
    """The field's value, or None when the reading does not measure it (see `is_traffic_speed`)."""
    raw = r.fields.get(field)
    if raw is None or (is_traffic_speed and r.fields.get("vehicles") == 0):
        return None
    return float(raw)


class FieldRule(Rule[FieldConfigT]):
    """A rule on `config.field` of readings of `config.kind`, with its per-series hysteresis."""

    def __init__(self, config: FieldConfigT) -> None:
        super().__init__(config)
        self.watches = frozenset({config.kind})
        self.hysteresis = Hysteresis()
        self.sites: dict[str, Site] = {}
        self.is_traffic_speed = is_traffic_speed(config.kind, config.field)

    def group_key(self) -> str | None:
        return self.config.field

    def bind(self, geography: Geography) -> None:
        self.sites = geography.sites

    def _value(self, r: Reading) -> float | None:
        return measured(r, self.config.field, self.is_traffic_speed)


AnyFieldRule = TypeVar("AnyFieldRule", bound=FieldRule[Any])


class FieldRuleGroup(RuleGroup[AnyFieldRule]):
    """Rules of one class on one field judged together."""

    def __init__(self, rules: list[AnyFieldRule]) -> None:
        super().__init__(rules)
        self.field: str = rules[0].config.field
        self.is_traffic_speed = is_traffic_speed(rules[0].config.kind, self.field)


class ScoredFieldRuleConfig(FieldRuleConfig):
    """Options of the rules that judge a field by a detector's calibrated score."""

    detector: str = ALIAS  # `default`: whatever the default rules use (detectors.DEFAULT)
    score_above: float = Field(default=0.8, gt=0, le=1)  # 0.8 = as rare as 1 in 60,000 readings
    clear_below: float = Field(default=0.4, ge=0, lt=1)
    clear_readings: int = Field(default=3, ge=1)

    @model_validator(mode="after")
    def _known_detector(self) -> Self:
        if self.detector != ALIAS and self.detector not in names():
            known = ", ".join([ALIAS, *names()])
            raise ValueError(f"detector: {self.detector!r} is not one of {known}")
        if self.clear_below > self.score_above:
            raise ValueError(
                f"clear_below: {self.clear_below} must not exceed score_above ({self.score_above})"
            )
        return self


ScoredConfigT = TypeVar("ScoredConfigT", bound=ScoredFieldRuleConfig)


@dataclass(frozen=True, slots=True)
class Scored:
    """A reading that changed its series' alert: the transition, the value, its score, the detector."""

    transition: Transition
    value: float
    score: float
    detector: Detector


class ScoredFieldRule(FieldRule[ScoredConfigT]):
    """A field rule that learns each series' ordinary operations with its own detector: it fires
    at a score of `score_above` and resolves after `clear_readings` readings under `clear_below`."""

    def __init__(self, config: ScoredConfigT) -> None:
        super().__init__(config)
        self.detector_cls = get(config.detector)
        self.detectors: dict[SeriesId, Detector] = {}
        self.hysteresis = Hysteresis(clear_readings=config.clear_readings)

    def _judge(self, reading: Reading) -> Scored | None:
        """Score the reading with its series' own detector (made on first sight) and step the
        series' hysteresis; None when the reading does not measure the field or changes nothing."""
        value = self._value(reading)
        if value is None:
            return None
        key = series_of(reading)
        detector = self.detectors.get(key)
        if detector is None:
            detector = self.detectors[key] = self.detector_cls()
        score = score_from_p(detector.pvalue(reading.ts.timestamp(), value))
        t = self.hysteresis.step(
            key,
            reading.ts,
            is_beyond=score >= self.config.score_above,
            is_cleared=score < self.config.clear_below,
            since=reading.ts,
        )
        return None if t is None else Scored(t, value, score, detector)

    def _context(self, r: Reading, score: float, detector: Detector) -> dict[str, Any]:
        """Score, baseline (what the series usually reads now) and where the sensor is."""
        out: dict[str, Any] = {"score": round(score, 4)}
        if detector.baseline is not None:
            out["baseline"] = round(detector.baseline, 3)
        site = self.sites.get(r.sensor)
        if site is not None:
            out["where"] = {"name": site.name, "lat": site.lat, "lon": site.lon}
        return out
