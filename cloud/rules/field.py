"""Rules on one field of one sensor kind, and those among them that score it with a detector.

Each keeps its per-series state keyed by (org, gateway, sensor) and declares the sensor kind it
watches, so the engine hands it only the readings of that kind.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Self, TypeVar

from pydantic import Field, model_validator

from cloud.core.alerts import Alert
from cloud.core.geo import Geography, Site
from cloud.rules.base import Rule, RuleConfig
from cloud.rules.detectors import ALIAS, Detector, get, names, p_from_score, score_from_p
from cloud.rules.detectors.registry import number
from cloud.rules.group import RuleGroup
from cloud.rules.hysteresis import Hysteresis, SeriesId, Transition
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
    # A departure this rare (rarity), reading after reading, fires too once it has lasted
    # `sustained_readings` (0: never): a loop that counts nothing for an hour is an anomaly even
    # when no single reading of it is as rare as `score_above`.
    sustained_above: float = Field(default=0.5, gt=0, le=1)  # 0.5 = as rare as 1 in 1,000
    sustained_readings: int = Field(default=6, ge=0)

    @model_validator(mode="after")
    def _known_detector(self) -> Self:
        if self.detector != ALIAS and self.detector not in names():
            known = ", ".join([ALIAS, *names()])
            raise ValueError(f"detector: {self.detector!r} is not one of {known}")
        if self.clear_below > self.score_above:
            raise ValueError(
                f"clear_below: {self.clear_below} must not exceed score_above ({self.score_above})"
            )
        if self.sustained_above > self.score_above:
            raise ValueError(
                f"sustained_above: {self.sustained_above} must not exceed score_above ({self.score_above})"
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
    at a score of `score_above` and resolves after `clear_readings` readings under `clear_below`.

    Fires on the detector's p-value, clears on its *rarity*: a detector that reports a departure
    at its onset only (`onset`: p = 1 while the departure lasts) still tells how rare each reading
    is, and an alert must not resolve while the departure goes on. Scores are compared as
    p-values (`score >= s` is `p <= 10^(-6 s)`), so an ordinary reading costs no logarithm."""

    def __init__(self, config: ScoredConfigT) -> None:
        super().__init__(config)
        self.detector_cls = get(config.detector)
        self.reports_onsets = self.detector_cls.reports_onsets
        self.detectors: dict[SeriesId, Detector] = {}
        self.hysteresis = Hysteresis(clear_readings=config.clear_readings)
        self.p_above = p_from_score(config.score_above)
        self.p_clear = p_from_score(config.clear_below)
        self.p_sustained = p_from_score(config.sustained_above)
        self.sustained_readings = config.sustained_readings
        # Per series: readings in a row at least as rare as `sustained_above`, since when.
        self.sustained: dict[SeriesId, tuple[int, datetime]] = {}
        # The series whose state changed since the last checkpoint (cloud/rules/checkpoint.py).
        self.dirty: set[SeriesId] = set()

    def _judge(self, reading: Reading) -> Scored | None:
        """Score the reading with its series' own detector (made on first sight) and step the
        series' hysteresis; None when the reading does not measure the field or changes nothing."""
        value = self._value(reading)
        if value is None:
            return None
        key = (reading.org, reading.gateway, reading.sensor)
        detector = self.detectors.get(key)
        if detector is None:
            detector = self.detectors[key] = self.detector_cls()
        self.dirty.add(key)
        p = detector.pvalue(reading.ts.timestamp(), value)
        rarity = detector.rarity if self.reports_onsets else p
        return self._step(key, reading.ts, value, p, rarity, detector)

    def _step(
        self, key: SeriesId, ts: datetime, value: float, p: float, rarity: float, detector: Detector
    ) -> Scored | None:
        """The series' hysteresis after a reading at `ts` scored `p` (`rarity` unfiltered)."""
        h = self.hysteresis
        is_beyond = p <= self.p_above
        since = ts
        if rarity <= self.p_sustained:
            count, began = self.sustained.get(key, (0, ts))
            self.sustained[key] = (count + 1, began)
            if 0 < self.sustained_readings <= count + 1 and not is_beyond:
                is_beyond, since = True, began
        elif key in self.sustained:
            del self.sustained[key]
        if not is_beyond and key not in h.firing and key not in h.beyond_since:
            return None  # the common case: an ordinary reading of a quiet series
        if rarity <= self.p_above and key in h.firing:
            is_beyond = True  # the departure goes on: the calm count starts again
        t = h.step(key, ts, is_beyond=is_beyond, is_cleared=rarity > self.p_clear, since=since)
        return None if t is None else Scored(t, value, score_from_p(rarity if is_beyond else p), detector)

    def alerts_of(self, reading: Reading, judged: Scored) -> list[Alert]:
        """The alert transition of a reading that changed its series' alert, as the kind says it."""
        raise NotImplementedError

    def observe(self, reading: Reading) -> list[Alert]:
        judged = self._judge(reading)
        return [] if judged is None else self.alerts_of(reading, judged)

    def observe_many(self, readings: Sequence[Reading], keys: Sequence[SeriesId]) -> list[tuple[int, Alert]]:
        """The readings of one message: their series' detectors judge them in one call
        (`Detector.pvalues`), then each series' hysteresis steps as `observe` would step it. A
        series that is twice in the message is judged in two rounds, in order."""
        field, make = self.config.field, self.detector_cls
        raws: list[Any] = [r.fields.get(field) for r in readings]
        if self.is_traffic_speed:  # measured(): no speed without a vehicle
            raws = [
                None if r.fields.get("vehicles") == 0 else raw for r, raw in zip(readings, raws, strict=True)
            ]
        index = [i for i, raw in enumerate(raws) if raw is not None]
        if not index:
            return []
        if len(index) == len(raws):  # the usual message: every reading measures the field
            judged_keys = list(keys)
            measured_readings = readings
            values = [float(raw) for raw in raws]
        else:
            judged_keys = [keys[i] for i in index]
            measured_readings = [readings[i] for i in index]
            values = [float(raws[i]) for i in index]
        ts = [r.ts.timestamp() for r in measured_readings]
        detectors = self.detectors
        # A series seen for the first time gets its detector.
        judged = [detectors.get(key) or detectors.setdefault(key, make()) for key in judged_keys]
        self.dirty.update(judged_keys)
        out: list[tuple[int, Alert]] = []
        for chosen in _rounds(judged_keys):
            if chosen is None:  # every series once: the usual message
                ps = make.pvalues(judged, ts, values)
                self._step_all(readings, index, judged_keys, judged, values, ps, out)
            else:
                ps = make.pvalues(
                    [judged[j] for j in chosen], [ts[j] for j in chosen], [values[j] for j in chosen]
                )
                self._step_all(
                    readings,
                    [index[j] for j in chosen],
                    [judged_keys[j] for j in chosen],
                    [judged[j] for j in chosen],
                    [values[j] for j in chosen],
                    ps,
                    out,
                )
        return out

    def _step_all(
        self,
        readings: Sequence[Reading],
        index: list[int],
        keys: list[SeriesId],
        judged: list[Detector],
        values: list[float],
        ps: list[float],
        out: list[tuple[int, Alert]],
    ) -> None:
        """Each judged reading's step (`_step`), with the common case inlined: an ordinary
        reading of a series with no alert, no hold and no sustained run changes nothing."""
        h = self.hysteresis
        firing, beyond_since, sustained = h.firing, h.beyond_since, self.sustained
        p_above, p_sustained, onsets = self.p_above, self.p_sustained, self.reports_onsets
        for j, p in enumerate(ps):
            detector = judged[j]
            rarity = detector.rarity if onsets else p
            key = keys[j]
            if (
                p > p_above
                and rarity > p_sustained
                and not (sustained and key in sustained)
                and not (firing and key in firing)
                and not (beyond_since and key in beyond_since)
            ):
                continue
            reading = readings[index[j]]
            scored = self._step(key, reading.ts, values[j], p, rarity, detector)
            if scored is not None:
                out.extend([(index[j], a) for a in self.alerts_of(reading, scored)])

    def series_state(self, key: SeriesId) -> dict[str, Any]:
        """What this rule has learnt of one series: its detector, and where its alert stands."""
        h = self.hysteresis
        return {
            "detector": self.detectors[key].state(),
            "beyond_since": _iso(h.beyond_since.get(key)),
            "firing": _iso(h.firing.get(key)),
            "calm": h.calm.get(key, 0),
            "sustained": None
            if key not in self.sustained
            else [self.sustained[key][0], _iso(self.sustained[key][1])],
        }

    def restore_series(self, key: SeriesId, state: dict[str, Any]) -> None:
        """The series as `series_state` left it (raises StateError or ValueError for another
        detector, or another version of its code)."""
        self.detectors[key] = self.detector_cls.from_state(state["detector"])
        h = self.hysteresis
        for name, slot in (("beyond_since", h.beyond_since), ("firing", h.firing)):
            if state[name] is not None:
                slot[key] = datetime.fromisoformat(state[name])
        if state["calm"]:
            h.calm[key] = int(state["calm"])
        if state["sustained"] is not None:
            count, began = state["sustained"]
            self.sustained[key] = (int(count), datetime.fromisoformat(began))

    def explain(self, r: Reading, value: float, since: datetime, detector: Detector) -> str:
        """`t-declassata-in: 12 vehicles, expected 210-270 for Tue 08:00 (hour-of-week baseline,
        6 weeks); since 07:40 UTC`: what was read, what the series' own history expected, and
        since when."""
        said = f"{r.sensor}: {self.config.field} {number(value)}{self.unit}"
        expected = detector.expectation()
        where = f", {expected.describe(r.ts)}" if expected is not None else ""
        return f"{said}{where}; since {since:%H:%M} UTC"

    def _context(self, r: Reading, score: float, detector: Detector) -> dict[str, Any]:
        """Score, baseline and band (what the series usually reads now) and where the sensor is."""
        out: dict[str, Any] = {"score": round(score, 4)}
        if detector.baseline is not None:
            out["baseline"] = round(detector.baseline, 3)
        expected = detector.expectation()
        if expected is not None:
            out["expected"] = {
                "low": round(expected.low, 3),
                "high": round(expected.high, 3),
                "basis": expected.basis,
                "history": expected.history,
            }
        site = self.sites.get(r.sensor)
        if site is not None:
            out["where"] = {"name": site.name, "lat": site.lat, "lon": site.lon}
        return out

    @property
    def unit(self) -> str:
        """` spaces` after a value of `occupied`; nothing where the field's name says it
        (`vehicles`, `speed_kmh`)."""
        field = self.config.field
        unit = KINDS[self.config.kind].by_name[field].unit
        if not unit or unit == field or field.endswith(("_kmh", "_pct", "_s", "_deg")):
            return ""
        return f" {unit}"


def _iso(ts: datetime | None) -> str | None:
    return None if ts is None else ts.isoformat()


def _rounds(keys: list[SeriesId]) -> list[list[int] | None]:
    """The positions of `keys` in rounds where no key repeats, in order: `[None]` (one round of
    all) when none repeats."""
    if len(set(keys)) == len(keys):
        return [None]
    seen: dict[SeriesId, int] = {}
    rounds: list[list[int] | None] = []
    for j, key in enumerate(keys):
        k = seen.get(key, 0)
        seen[key] = k + 1
        if k == len(rounds):
            rounds.append([])
        chosen = rounds[k]
        assert chosen is not None
        chosen.append(j)
    return rounds
