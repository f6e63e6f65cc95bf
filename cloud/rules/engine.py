"""The rules engine: feeds readings and gateway status to every rule, keeps open alerts.

It de-duplicates by (rule, org, entity): a rule that fires again for an open alert is silent,
and a resolution without an open alert is dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from cloud.core.alerts import Alert, AlertKey
from cloud.core.geo import (
    Geography,
    GeoJsonWorksites,
    NoWorksites,
    WorksiteLookup,
    load_sites,
)
from cloud.core.transit import NoTransit, TransitNetwork
from cloud.rules.base import Clocks, Evaluator, Rule
from cloud.rules.hysteresis import SeriesId
from cloud.rules.kinds import UnknownRuleError, get
from cloud.rules.watermark import SourceTime, Watermark, group_time
from edge.contract import Reading

DEFAULT_RULES = Path(__file__).with_name("default.yaml")


class RulesFileError(ValueError):
    pass


class RulesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rules: list[dict[str, Any]]
    # Where sensors are (default: cloud/core/sites.yaml), relative to the rules file.
    sites: str | None = None
    # Worksites as a GeoJSON FeatureCollection: a file (relative to the rules file) or a URL.
    worksites: str | None = None
    # Channels and routes (cloud.notify.NotificationsConfig); validated by the service.
    notifications: dict[str, Any] | None = None


def read_rules_file(path: Path) -> RulesFile:
    try:
        return RulesFile.model_validate(yaml.safe_load(path.read_text()))
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise RulesFileError(f"{path}: {exc}") from None


# Opens `registry:URL` worksite sources (the worksite registry itself). The rules feature does not
# know the registry: the process's wiring hands the opener over (cloud/apps/rules.py).
RegistryOpener = Callable[[str], WorksiteLookup]


def geography(
    path: Path,
    raw: RulesFile,
    open_registry: RegistryOpener | None = None,
    default_worksites: str | None = None,
    *,
    transit: TransitNetwork | None = None,
) -> Geography:
    """Sensor sites, worksites and the bus network of a rules file; `default_worksites` is the
    worksite source when the file names none (the service's own registry, from its settings),
    `transit` the network the process's wiring opened, if any."""
    if raw.worksites is None and default_worksites is not None:
        raw = raw.model_copy(update={"worksites": default_worksites})
    try:
        sites = load_sites(path.parent / raw.sites) if raw.sites else load_sites()
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise RulesFileError(f"{path}: sites: {exc}") from None
    worksites: WorksiteLookup = NoWorksites()
    network = transit or NoTransit()
    if raw.worksites and raw.worksites.startswith("registry:"):
        # `registry:sqlite:///PATH` or `registry:postgresql://...`: the worksite registry itself.
        if open_registry is None:
            raise RulesFileError(
                f"{path}: worksites: {raw.worksites}: the worksite registry is read by the rules "
                "service only; here give a GeoJSON file or URL"
            )
        try:
            lookup = open_registry(raw.worksites.removeprefix("registry:"))
            return Geography(sites=sites, worksites=lookup, transit=network)
        except (ValueError, sa.exc.SQLAlchemyError) as exc:
            raise RulesFileError(f"{path}: worksites: {raw.worksites}: {exc}") from None
    if raw.worksites:
        source = raw.worksites if "://" in raw.worksites else path.parent / raw.worksites
        try:
            worksites = GeoJsonWorksites.load(source)
        except (OSError, ValueError, KeyError, httpx.HTTPError) as exc:
            raise RulesFileError(f"{path}: worksites: {source}: {exc}") from None
    return Geography(sites=sites, worksites=worksites, transit=network)


def load_rules(
    path: Path = DEFAULT_RULES,
    open_registry: RegistryOpener | None = None,
    default_worksites: str | None = None,
    *,
    transit: TransitNetwork | None = None,
) -> list[Rule[Any]]:
    """Rules from YAML, bound to their geography (sites, worksites, and the transit network
    the process's wiring opened, if any); errors name the file, the rule's index and the field."""
    raw = read_rules_file(path)
    geo = geography(path, raw, open_registry, default_worksites, transit=transit)
    rules: list[Rule[Any]] = []
    names: set[str] = set()
    for i, entry in enumerate(raw.rules):
        try:
            cls = get(str(entry.get("rule")))
            config = cls.Config.model_validate(entry)
        except UnknownRuleError as exc:
            raise RulesFileError(f"{path}: rules[{i}].rule: {exc.args[0]}") from None
        except ValidationError as exc:
            problems = "; ".join(
                # A rule-level check (model validator) has an empty loc: no dangling dot then.
                f"rules[{i}]{''.join(f'.{part}' for part in e['loc'])}: {e['msg']} (got {e.get('input')!r})"
                for e in exc.errors(include_url=False)
            )
            raise RulesFileError(f"{path}: {problems}") from None
        if config.name in names:
            raise RulesFileError(f"{path}: rules[{i}].name: {config.name!r} is used twice")
        names.add(config.name)
        rule = cls(config)
        rule.bind(geo)
        rules.append(rule)
    return rules


def evaluators(rules: list[Rule[Any]]) -> list[Evaluator]:
    """The rules one kind's readings go to, with same-class rules on one field grouped (each
    class says how, `Rule.Group`) so that an ordinary reading costs one check per group rather
    than one call per rule."""
    grouped: dict[tuple[type[Rule[Any]], str], list[Rule[Any]]] = {}
    out: list[Evaluator] = []
    for r in rules:
        key = r.group_key() if type(r).Group is not None else None
        if key is not None:
            grouped.setdefault((type(r), key), []).append(r)
        else:
            out.append(r)
    for (cls, _), members in grouped.items():
        assert cls.Group is not None  # only classes with a Group were grouped
        out.append(cls.Group(members))
    return out


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class GatewayTime:
    """One gateway's event time: its sensors' watermark, as of the gateway's latest arrival."""

    last_arrival: datetime
    sensors: Watermark[str] = field(default_factory=Watermark)
    clock: datetime | None = None  # the watermark at `last_arrival`; None until computed again

    def time(self) -> datetime | None:
        if self.clock is None:
            self.clock = self.sensors.at(self.last_arrival)
        return self.clock


class Engine:
    """`wall_clock` says when a reading arrives and when a tick runs (tests and the rule kinds'
    cases give their own, so that a timeline arrives as it would live)."""

    def __init__(self, rules: list[Rule[Any]], *, wall_clock: Callable[[], datetime] = _utcnow) -> None:
        self.rules = rules
        self._by_kind: dict[str, list[Evaluator]] = {}
        self._for_all = [r for r in rules if r.watches is None]
        self.open: dict[AlertKey, Alert] = {}
        self.clocks = Clocks()
        self.wall_clock = wall_clock
        # Event time per gateway (over its sensors) and, from those, overall (cloud/rules/watermark.py).
        self.gateway_times: dict[tuple[str, str], GatewayTime] = {}
        self.raised = 0
        self.resolved = 0
        # One tuple per series, handed to the rules as the key of their per-series state: a dict
        # finds a key it holds by identity, without reading the stored key's strings (with
        # thousands of series those are cache misses, several per reading and rule).
        self.series: dict[SeriesId, SeriesId] = {}

    def replace_rules(self, rules: list[Rule[Any]]) -> None:
        """New rules (hot reload); a rule whose name and config are unchanged keeps its state."""
        old = {r.name: r for r in self.rules}
        kept = [old[r.name] if r.name in old and old[r.name].config == r.config else r for r in rules]
        names = {r.name for r in kept}
        self.open = {k: a for k, a in self.open.items() if a.rule in names}
        self.rules = kept
        self._by_kind = {}
        self._for_all = [r for r in kept if r.watches is None]

    def _filter(self, alerts: list[Alert]) -> list[Alert]:
        out = []
        for a in alerts:
            if a.state == "firing":
                if a.key in self.open:
                    continue
                self.open[a.key] = a
                self.raised += 1
            else:
                if self.open.pop(a.key, None) is None:
                    continue
                self.resolved += 1
            out.append(a)
        return out

    def observe(self, reading: Reading, arrived: datetime | None = None) -> list[Alert]:
        """Hand a reading to the rules watching its kind; `arrived` (default: now) is when its
        message arrived: the service reads the clock once per message."""
        if arrived is None:
            arrived = self.wall_clock()
        gw = self.gateway_times.get((reading.org, reading.gateway))
        if gw is None:
            gw = self.gateway_times[(reading.org, reading.gateway)] = GatewayTime(arrived)
        gw.sensors.see(reading.sensor, reading.ts, arrived)
        gw.last_arrival, gw.clock = arrived, None
        applicable = self._by_kind.get(reading.kind)
        if applicable is None:
            applicable = self._applicable(reading.kind)
        out: list[Alert] = []
        for rule in applicable:
            found = rule.observe(reading)
            if found:
                out.extend(found)
        return self._filter(out) if out else out

    def observe_many(self, readings: Sequence[Reading], arrived: datetime | None = None) -> list[Alert]:
        """The readings of one message, as `observe` each in turn would: the same alerts, in the
        same order. Each rule gets the readings of a kind in one call (`observe_many`), so a rule
        that scores a series per reading pays its own overhead once per message, and a detector
        can judge the message's series together (`Detector.pvalues`)."""
        if arrived is None:
            arrived = self.wall_clock()
        series = self.series
        keys: list[SeriesId] = []
        gw: GatewayTime | None = None
        gw_key: tuple[str, str] | None = None
        for r in readings:
            key = (r.org, r.gateway, r.sensor)
            key = series.setdefault(key, key)
            keys.append(key)
            if gw_key is None or key[1] != gw_key[1] or key[0] != gw_key[0]:
                gw_key = (key[0], key[1])
                gw = self.gateway_times.get(gw_key)
                if gw is None:
                    gw = self.gateway_times[gw_key] = GatewayTime(arrived)
                gw.last_arrival, gw.clock = arrived, None
            assert gw is not None
            gw.sensors.see(key[2], r.ts, arrived)
        out: list[tuple[int, Alert]] = []
        start, n = 0, len(readings)
        while start < n:
            kind = readings[start].kind
            end = start + 1
            while end < n and readings[end].kind is kind:
                end += 1
            whole = start == 0 and end == n
            same_kind = readings if whole else readings[start:end]
            same_keys = keys if whole else keys[start:end]
            for rule in self._applicable(kind):
                found = rule.observe_many(same_kind, same_keys)
                if found:
                    out.extend([(start + i, a) for i, a in found] if start else found)
            start = end
        if not out:
            return []
        # Per reading, then in the rules' order: what `observe` reading by reading lets out.
        out.sort(key=itemgetter(0))
        return self._filter([a for _, a in out])

    def series_id(self, org: str, gateway: str, sensor: str) -> SeriesId:
        """The engine's own tuple for a series (see `series`)."""
        key = (org, gateway, sensor)
        return self.series.setdefault(key, key)

    def _applicable(self, kind: str) -> list[Evaluator]:
        applicable = self._by_kind.get(kind)
        if applicable is None:
            applicable = self._by_kind[kind] = evaluators(
                [
                    *self._for_all,
                    *(r for r in self.rules if r.watches is not None and kind in r.watches),
                ]
            )
        return applicable

    def tick(self, now: datetime | None = None) -> list[Alert]:
        """Time-driven checks (staleness) at event time `now`; by default the gateways' watermark:
        each gateway's time carried forward by the wall time since it was heard (event time goes
        on when nothing arrives, so total silence is noticed too), and no one gateway's reading
        stamped ahead moves it (cloud/rules/watermark.py)."""
        wall = self.wall_clock()
        gateways: dict[tuple[str, str], datetime] = {}
        heard: list[SourceTime] = []
        for key, gw in self.gateway_times.items():
            clock = gw.time()
            if clock is not None:
                gateways[key] = clock
                heard.append(SourceTime(clock, gw.last_arrival))
        self.clocks.gateways = gateways
        self.clocks.wall = wall
        # None before any reading: event-time checks wait, wall-time ones (a watchdog) go on.
        self.clocks.now = now if now is not None else group_time(heard, wall)
        out: list[Alert] = []
        for rule in self.rules:
            out.extend(rule.tick(self.clocks))
        return self._filter(out)

    def gateway_status(self, org: str, gateway: str, state: str, reason: str, ts: datetime) -> list[Alert]:
        out: list[Alert] = []
        for rule in self.rules:
            out.extend(rule.gateway_status(org, gateway, state, reason, ts))
        return self._filter(out)

    def service_health(self, service: str, instance: str, report: Mapping[str, Any]) -> list[Alert]:
        """A cloud service's health report, as it arrives now (wall time)."""
        received = self.wall_clock()
        out: list[Alert] = []
        for rule in self.rules:
            out.extend(rule.service_health(service, instance, report, received))
        return self._filter(out)
