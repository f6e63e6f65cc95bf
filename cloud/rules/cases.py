"""Cases kept beside each rule kind (`cases.yaml`): readings in, alert transitions out.

Each case configures one rule of the kind, feeds it a timeline through the engine, as live, and
lists every alert transition the engine must let out, in order. Times are minutes of event time
after `T0`; each event also arrives then (the engine's wall clock follows the timeline, never
back). A timeline holds:

- a reading: `{at: 15, fields: {occupancy_pct: 97.5}}` (kind, org, gateway, sensor, tags and
  the other fields from the case's `defaults`; any of them can be given on the event);
  `arrived: 10` makes it arrive at another time than its own (a clock ahead, a late reading);
- a series: `{at: 0, until: 20160, every: 10, fields: {occupied: {mean: 250, daily: 200, noise: 5}}}`,
  one reading every `every` minutes from `at` to before `until`, values from `synthetic.Wave`;
- a tick: `{at: 12, tick: true}` (time-driven checks such as staleness, at that event time);
- a gateway status: `{at: 1, status: offline, reason: connection lost}` (retained birth/will);
- a cloud service's health report: `{at: 2, instance: ingest-a, health: {writes: 7}}` (service
  and instance from `defaults` unless given).

An expected alert gives `at` and `state`, and whichever of `entity`, `gateway`, `kind`,
`severity`, `since`, `value`, `threshold`, `message` (or `message_match`, a regular expression)
and `context` (the keys given) it cares about; the others are not compared.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from cloud.core.alerts import Alert
from cloud.core.geo import Geography, GeoJsonWorksites, NoWorksites, Site, WorksiteLookup, load_sites
from cloud.core.transit import ListedNetwork, NoTransit, TransitNetwork
from cloud.rules.base import RuleConfig
from cloud.rules.engine import Engine
from cloud.rules.kinds import folder, get
from cloud.rules.synthetic import Wave, value_at
from edge.contract import KINDS, Reading, SensorKind

T0 = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday, midnight UTC: `at: 0`


def minutes_after_t0(ts: datetime) -> float:
    return round((ts - T0).total_seconds() / 60, 6)


class Defaults(BaseModel):
    """What a case's readings have unless an event says otherwise."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: SensorKind = SensorKind.PARKING
    org: str = "comune-prato"
    gateway: str = "gw-test"
    sensor: str = "p-test"
    fields: dict[str, float | bool | str] = {}
    tags: dict[str, str] = {}
    service: str = "ingest"
    instance: str = "main"


class Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    at: float = Field(ge=0)
    kind: SensorKind | None = None
    org: str | None = None
    gateway: str | None = None
    sensor: str | None = None
    fields: dict[str, float | bool | str | Wave] | None = None
    tags: dict[str, str] | None = None
    until: float | None = None
    every: float | None = Field(default=None, gt=0)
    arrived: float | None = Field(default=None, ge=0)
    tick: bool = False
    status: Literal["online", "offline"] | None = None
    reason: str = ""
    service: str | None = None
    instance: str | None = None
    health: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_thing(self) -> Self:
        given = [
            k
            for k, is_given in (
                ("fields", self.fields is not None),
                ("tick", self.tick),
                ("status", self.status is not None),
                ("health", self.health is not None),
            )
            if is_given
        ]
        if len(given) != 1:
            raise ValueError(
                f"an event is a reading (fields), a tick, a status or a health report: got {given or 'none'}"
            )
        if (self.until is None) != (self.every is None):
            raise ValueError("a series needs both `until` and `every`")
        if self.until is None and any(isinstance(v, Wave) for v in (self.fields or {}).values()):
            raise ValueError("a wave needs a series: give `until` and `every`")
        if self.arrived is not None and (self.fields is None or self.until is not None):
            raise ValueError("`arrived` is for one reading, not a series, tick or status")
        return self


class ExpectedAlert(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    at: float
    state: Literal["firing", "resolved"]
    entity: str | None = None
    gateway: str | None = None
    kind: str | None = None
    severity: str | None = None
    since: float | None = None
    value: float | None = None
    threshold: float | None = None
    message: str | None = None
    message_match: str | None = None
    context: dict[str, Any] | None = None

    def shown(self) -> dict[str, Any]:
        """The keys this expectation gives, as compared."""
        return {k: getattr(self, k) for k in type(self).model_fields if k in self.model_fields_set}


class TransitCase(BaseModel):
    """A bus network for a case (cloud.core.transit.ListedNetwork): routes with their line, stops,
    and trips whose stop times are minutes after `T0`, like the events'."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    operator: str = "autolinee-toscane"
    routes: dict[str, dict[str, Any]] = {}
    stops: dict[str, dict[str, Any]]
    trips: list[dict[str, Any]] = []

    def network(self) -> ListedNetwork:
        trips = [
            t | {"stops": [[stop, T0 + timedelta(minutes=float(minutes))] for stop, minutes in t["stops"]]}
            for t in self.trips
        ]
        return ListedNetwork(self.routes, self.stops, trips, operator=self.operator)


class Case(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str
    rule: dict[str, Any]  # the rule's options; `rule:` (the kind) may be left out
    defaults: Defaults = Defaults()
    seed: int = 0  # of the series' noise
    sites: dict[str, Site] | None = None  # default: cloud/core/sites.yaml
    worksites: list[dict[str, Any]] = []  # GeoJSON features (properties: id, name, starts_at, ...)
    transit: TransitCase | None = None  # the bus network (default: none)
    events: list[Event] = Field(min_length=1)
    alerts: list[ExpectedAlert]


class CasesFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    cases: list[Case] = Field(min_length=1)


def load(path: Path) -> list[Case]:
    return CasesFile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8"))).cases


def cases_of(kind: str) -> list[Case]:
    return load(folder(get(kind)) / "cases.yaml")


def sample_configs(kind: str) -> list[RuleConfig]:
    """The entries of a kind's sample.yaml (a rules file snippet), validated by its Config."""
    cls = get(kind)
    raw = yaml.safe_load((folder(cls) / "sample.yaml").read_text(encoding="utf-8"))
    return [cls.Config.model_validate(e) for e in raw["rules"] if e.get("rule") == kind]


def _reading(defaults: Defaults, e: Event, minutes: float, fields: dict[str, Any]) -> Reading:
    kind = e.kind or defaults.kind
    types = {f.name: f.type for f in KINDS[kind].fields}
    values = {
        name: round(v) if types.get(name) == "int" and isinstance(v, float) else v
        for name, v in (defaults.fields | fields).items()
    }
    return Reading(
        kind=kind,
        org=e.org or defaults.org,
        gateway=e.gateway or defaults.gateway,
        sensor=e.sensor or defaults.sensor,
        ts=T0 + timedelta(minutes=minutes),
        fields=values,
        tags=defaults.tags | (e.tags or {}),
    )


def timeline(case: Case) -> Iterator[tuple[Event, float, Reading | None]]:
    """Every event of the case in order, series expanded into their readings."""
    rnd = random.Random(case.seed)
    for e in case.events:
        if e.fields is None:
            yield e, e.at, None
        elif e.until is None or e.every is None:
            yield e, e.at, _reading(case.defaults, e, e.at, e.fields)
        else:
            minutes = e.at
            while minutes < e.until:
                fields = {
                    name: spec if isinstance(spec, str) else value_at(spec, minutes, rnd)
                    for name, spec in e.fields.items()
                }
                yield e, minutes, _reading(case.defaults, e, minutes, fields)
                minutes += e.every


def geography(case: Case) -> Geography:
    worksites: WorksiteLookup = NoWorksites()
    if case.worksites:
        worksites = GeoJsonWorksites({"type": "FeatureCollection", "features": case.worksites})
    transit: TransitNetwork = case.transit.network() if case.transit is not None else NoTransit()
    return Geography(
        sites=case.sites if case.sites is not None else load_sites(), worksites=worksites, transit=transit
    )


def run(kind: str, case: Case) -> list[Alert]:
    """The alert transitions the engine lets out for the case's timeline, in order."""
    cls = get(kind)
    rule = cls(cls.Config.model_validate({"rule": kind} | case.rule))
    rule.bind(geography(case))
    wall = T0

    def wall_clock() -> datetime:
        return wall

    engine = Engine([rule], wall_clock=wall_clock)
    out: list[Alert] = []
    for e, minutes, reading in timeline(case):
        ts = T0 + timedelta(minutes=minutes)
        wall = max(wall, T0 + timedelta(minutes=e.arrived) if e.arrived is not None else ts)
        if reading is not None:
            # As the rules service hands readings on: a message at a time (`observe_many`).
            out.extend(engine.observe_many([reading]))
        elif e.tick:
            out.extend(engine.tick())
        elif e.health is not None:
            service = e.service or case.defaults.service
            out.extend(engine.service_health(service, e.instance or case.defaults.instance, e.health))
        else:
            gateway = e.gateway or case.defaults.gateway
            org = e.org or case.defaults.org
            out.extend(engine.gateway_status(org, gateway, e.status or "", e.reason, ts))
    return out


def as_expected(alert: Alert, expected: ExpectedAlert | None) -> dict[str, Any]:
    """`alert` with the keys `expected` gives (at and state alone when there is none to match)."""
    actual: dict[str, Any] = {
        "at": minutes_after_t0(alert.ts),
        "state": alert.state,
        "entity": alert.entity,
        "gateway": alert.gateway,
        "kind": alert.kind,
        "severity": alert.severity,
        "since": minutes_after_t0(alert.since),
        "value": alert.value,
        "threshold": alert.threshold,
        "message": alert.message,
    }
    if expected is None:
        return {k: actual[k] for k in ("at", "state", "entity", "message")}
    shown = expected.shown()
    out = {k: actual[k] for k in shown if k in actual}
    if expected.message_match is not None:
        is_match = re.fullmatch(expected.message_match, alert.message) is not None
        out["message_match"] = expected.message_match if is_match else alert.message
    if expected.context is not None:
        context = alert.context or {}
        out["context"] = {k: context.get(k) for k in expected.context}
    return out


def compared(kind: str, case: Case) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(what the rule let out, what the case expects), each alert as the case shows it."""
    got = run(kind, case)
    expected = case.alerts
    shown = [as_expected(a, expected[i] if i < len(expected) else None) for i, a in enumerate(got)]
    return shown, [e.shown() for e in expected]
