"""The worksite registry's state as InfluxDB points (`worksite`), for Grafana's Worksites dashboard.

Worksites live in the relational registry; Grafana reads InfluxDB. So the rules service copies
the registry's state over: one point per worksite near now (ended within `lookback`, or
starting within `horizon`), at start, at every `interval_s` boundary and within `poll_s` of a
change. A change is anything that moves a worksite's phase or version: an edit through the
API, the console or `sitroom worksites`, an import, or the clock passing a planned start.

    worksite,id=…,org=publiacqua,street=Via\\ Pistoiese,work_type=water
        state="active",title="…",active=1i,planned=0i,lanes_closed=1i,road_closed=0i,
        parking_spaces_removed=22i,bus_lines=0i,days_to_start=-10.4,days_to_end=20.2  <ts>

Tags are what a worksite *is* (id, owner, street, kind of work): one series per worksite,
a few hundred a year in a city like Prato. Its phase is a field, not a tag, so that a worksite
stays one series on the timeline as it goes planned → active → ended (a `state` tag would split
it in three, and `last()` could no longer tell its current phase).

Beside each worksite that is not over, one `worksite_sensor` point per sensor within
`radius_m` of its geometry (the sensor sites of cloud/core/sites.yaml, the same radius as the
worksite-impact rule), so that Grafana can chain a worksite to the counters and car parks
around it (InfluxQL has no spatial join):

    worksite_sensor,id=…,org=publiacqua,sensor=t-pistoiese-in distance_m=120.5,active=1i  <ts>

Timestamps are whole multiples of `interval_s` for the periodic points and whole seconds for
the others: two rules instances, or a restart, write the same series and timestamp, which
InfluxDB keeps once. A row that no longer reads as a worksite, or cannot be written as line
protocol, is counted and logged once, and the others are written.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy.exc import SQLAlchemyError

from cloud.core.geo import Site, load_sites, parse_geojson, sites_near
from cloud.io.influx.client import InfluxClient, InfluxError
from cloud.io.influx.lineprotocol import FieldValue, LineProtocolError, line
from cloud.worksites.models import Status, Worksite
from cloud.worksites.store import Query, UnreadableRow, WorksiteStore

log = logging.getLogger(__name__)

MEASUREMENT = "worksite"
NEAR_MEASUREMENT = "worksite_sensor"
DEFAULT_RADIUS_M = 400.0  # as the worksite-impact rule's default (cloud/rules/kinds/worksite_impact/)
Phase = Literal["planned", "active", "suspended", "ended"]
DEFAULT_LOOKBACK = timedelta(days=7)  # an ended worksite stays on the timeline for a week
DEFAULT_HORIZON = timedelta(days=30)  # as the API's /feeds/planned.geojson
_DAY_S = 86_400.0


def phase(ws: Worksite, now: datetime) -> Phase:
    """Where a worksite is at `now`. The registry's status says what people declared; a planned
    worksite whose window has come is shown active (as on the live map), one whose window has
    passed ended. Completed and cancelled worksites have ended."""
    if ws.status in (Status.COMPLETED, Status.CANCELLED):
        return "ended"
    if ws.status is Status.SUSPENDED:
        return "suspended"
    if ws.status is Status.ACTIVE:
        return "active"
    if now < ws.start:
        return "planned"
    return "active" if now < ws.end else "ended"


def worksite_line(ws: Worksite, at: datetime) -> str:
    """One worksite's point at `at`. Raises LineProtocolError for a tag line protocol cannot hold."""
    state = phase(ws, at)
    impact = ws.impact
    fields: dict[str, FieldValue] = {
        "state": state,
        "title": ws.title,
        "active": int(state == "active"),
        "planned": int(state == "planned"),
        "lanes_closed": impact.lanes_closed,
        "road_closed": int(impact.road_closed),
        "parking_spaces_removed": impact.parking_spaces_removed,
        "bus_lines": len(impact.bus_lines),
        "days_to_start": round((ws.start - at).total_seconds() / _DAY_S, 3),
        "days_to_end": round((ws.end - at).total_seconds() / _DAY_S, 3),
    }
    tags = {"id": ws.id, "org": ws.owner, "street": ws.street, "work_type": ws.work_type.value}
    return line(MEASUREMENT, tags, fields, at)


def near_lines(ws: Worksite, at: datetime, sites: dict[str, Site], radius_m: float) -> list[str]:
    """The sensors around a worksite that is not over, one point each; none for one that is."""
    state = phase(ws, at)
    if state == "ended":
        return []
    active = int(state == "active")
    return [
        line(
            NEAR_MEASUREMENT,
            {"id": ws.id, "org": ws.owner, "sensor": sensor},
            {"distance_m": d, "active": active},
            at,
        )
        for sensor, d in sites_near(parse_geojson(ws.geometry), sites, radius_m)
    ]


@dataclass(frozen=True, slots=True)
class Snapshot:
    lines: list[str]
    signature: frozenset[tuple[str, int, str]]  # (id, version, phase): what a change changes
    unreadable: list[UnreadableRow]
    worksites: list[Worksite]  # those whose point is in `lines`


def take(store: WorksiteStore, at: datetime, *, lookback: timedelta, horizon: timedelta) -> Snapshot:
    found, unreadable = store.search_readable(Query(start=at - lookback, end=at + horizon, limit=10**9))
    lines: list[str] = []
    written: list[Worksite] = []
    signature: set[tuple[str, int, str]] = set()
    for ws in found:
        try:
            lines.append(worksite_line(ws, at))
        except LineProtocolError as exc:
            unreadable.append(UnreadableRow(ws.id, str(exc)))
            continue
        written.append(ws)
        signature.add((ws.id, ws.version, phase(ws, at)))
    signature |= {(bad.id, -1, "unreadable") for bad in unreadable}
    return Snapshot(lines, frozenset(signature), unreadable, written)


class WorksiteSnapshots:
    """Writes the registry's state to InfluxDB: call `tick()` often (the rules service does every
    second); it looks at the registry every `poll_s` and writes when due."""

    def __init__(
        self,
        store: WorksiteStore,
        *,
        interval_s: float = 60.0,
        poll_s: float = 5.0,
        lookback: timedelta = DEFAULT_LOOKBACK,
        horizon: timedelta = DEFAULT_HORIZON,
        sites: dict[str, Site] | None = None,
        radius_m: float = DEFAULT_RADIUS_M,
    ) -> None:
        self.store = store
        # Where the sensors are; by default the sites the rules use (cloud/core/sites.yaml).
        self.sites = load_sites() if sites is None else sites
        self.radius_m = radius_m
        self.interval_s = interval_s
        self.poll_s = poll_s
        self.lookback = lookback
        self.horizon = horizon
        self.points_written = 0
        self.writes = 0
        self.unreadable = 0  # rows left out at the last look
        self._period: int | None = None  # the interval whose periodic point is written
        self._signature: frozenset[tuple[str, int, str]] | None = None
        self._reported: set[tuple[str, str]] = set()
        self._next_poll = 0.0

    def close(self) -> None:
        self.store.close()

    def tick(self, influx: InfluxClient, now: datetime | None = None) -> int:
        """Poll if `poll_s` has passed since the last look; points written."""
        if time.monotonic() < self._next_poll:
            return 0
        self._next_poll = time.monotonic() + self.poll_s
        return self.poll(influx, now)

    def poll(self, influx: InfluxClient, now: datetime | None = None) -> int:
        """Look at the registry now; write a periodic point when a new interval has begun, and
        a point at `now` when something changed since the last write. Points written."""
        now = now or datetime.now(UTC)
        period = math.floor(now.timestamp() / self.interval_s)
        if period != self._period:
            self._reported.clear()  # each cause is logged once per interval
            at = datetime.fromtimestamp(period * self.interval_s, UTC)
        else:
            at = now.replace(microsecond=0)
        try:
            snap = take(self.store, at, lookback=self.lookback, horizon=self.horizon)
        except SQLAlchemyError as exc:
            # The registry may not exist yet (the API creates it) or be unreachable: next poll.
            self._report(("registry", type(exc).__name__), "worksite registry unreadable: %s", exc)
            return 0
        self.unreadable = len(snap.unreadable)
        for bad in snap.unreadable:
            self._report((bad.id, bad.reason), "worksite %s left out: %s", bad.id, bad.reason)
        if period == self._period and snap.signature == self._signature:
            return 0
        # The sensors around each worksite: geometry work, so only when the points are written.
        lines = snap.lines + self._surroundings(snap.worksites, at)
        if lines:
            try:
                influx.write(lines)
            except InfluxError as exc:
                log.warning("could not write %d worksite points to InfluxDB: %s", len(lines), exc)
                return 0
        self._period, self._signature = period, snap.signature
        self.points_written += len(lines)
        self.writes += 1
        return len(lines)

    def _surroundings(self, worksites: list[Worksite], at: datetime) -> list[str]:
        lines: list[str] = []
        for ws in worksites:
            try:
                lines += near_lines(ws, at, self.sites, self.radius_m)
            except LineProtocolError as exc:  # a sensor name line protocol cannot hold
                self._report((ws.id, str(exc)), "sensors near worksite %s left out: %s", ws.id, exc)
        return lines

    def _report(self, cause: tuple[str, str], message: str, *args: object) -> None:
        # Once per cause and interval, not once per poll.
        if cause not in self._reported:
            self._reported.add(cause)
            log.warning(message, *args)
