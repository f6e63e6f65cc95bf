"""Intermodality: park-and-ride car parks, the stops within walking distance of each, and the next
buses from them toward a full central car park.

`park_and_rides` is pure: the sites (`park_and_ride: true` in cloud/core/sites.yaml), the bus
network, the latest car-park readings and the latest trip delays go in; each park-and-ride with
its free spaces, its stops and the next departures toward the destination (timetable moved by
real-time delay) comes out. Around it: what InfluxDB holds now (`latest_parking`,
`latest_delays`) for the public route `GET /intermodality/park-and-ride`, and the
`park_and_ride` points the rules service writes for Grafana (`IntermodalSnapshots`, from the
readings it sees on the stream).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from sqlalchemy.exc import SQLAlchemyError

from cloud.core.geo import Site, load_sites
from cloud.core.transit import DEFAULT_WALK_M, DelayBook, Departure, StopRef, TransitNetwork
from cloud.io.http import refusals
from cloud.io.influx.client import InfluxClient, InfluxError
from cloud.io.influx.lineprotocol import FieldValue, LineProtocolError, line
from edge.contract import Reading, SensorKind

log = logging.getLogger(__name__)

MEASUREMENT = "park_and_ride"
DURATION = re.compile(r"[1-9][0-9]{0,5}(m|h|d|w)")


@dataclass(frozen=True, slots=True)
class CarPark:
    """A car park's latest reading."""

    occupancy_pct: float
    free: int
    capacity: int
    ts: datetime


@dataclass(frozen=True, slots=True)
class ParkAndRide:
    sensor: str
    site: Site
    latest: CarPark | None
    stops: tuple[StopRef, ...]
    departures: tuple[Departure, ...]

    def to_dict(self) -> dict[str, Any]:
        latest = self.latest
        return {
            "sensor": self.sensor,
            "name": self.site.name,
            "lat": self.site.lat,
            "lon": self.site.lon,
            "capacity": latest.capacity if latest else self.site.capacity,
            "free": latest.free if latest else None,
            "occupancy_pct": latest.occupancy_pct if latest else None,
            "updated_at": latest.ts.isoformat() if latest else None,
            "stops": [s.to_dict() for s in self.stops],
            "departures": [d.to_dict() for d in self.departures],
        }


def destination(sites: Mapping[str, Site], latest: Mapping[str, CarPark], toward: str | None) -> str | None:
    """The car park named, or else the fullest car park now that is not a park-and-ride."""
    if toward is not None:
        return toward if toward in sites else None
    central = [(p.occupancy_pct, s) for s, p in latest.items() if s in sites and not sites[s].park_and_ride]
    return max(central)[1] if central else None


def park_and_rides(
    sites: Mapping[str, Site],
    network: TransitNetwork,
    *,
    toward: Site,
    at: datetime,
    latest: Mapping[str, CarPark],
    delays: DelayBook,
    walk_m: float = DEFAULT_WALK_M,
    departures: int = 3,
    horizon: timedelta = timedelta(hours=1),
) -> list[ParkAndRide]:
    """Every park-and-ride, most free spaces first (unknown last), with its stops within
    `walk_m` and its next `departures` toward `toward`, with their real-time delays."""
    out = []
    for sensor, site in sites.items():
        if not site.park_and_ride:
            continue
        stops = network.stops_near(site.lat, site.lon, walk_m)
        found = (
            network.departures(
                stops, at, toward=(toward.lat, toward.lon), walk_m=walk_m, horizon=horizon, limit=departures
            )
            if stops and departures > 0
            else []
        )
        timed = tuple(delays.apply(found, at))
        out.append(ParkAndRide(sensor, site, latest.get(sensor), tuple(stops), timed))
    out.sort(key=lambda p: (p.latest is None, -(p.latest.free if p.latest else 0), p.sensor))
    return out


# -- what InfluxDB holds now --------------------------------------------------------------------


def _rows(influx: InfluxClient, query: str) -> list[tuple[dict[str, str], dict[str, Any]]]:
    out = []
    for s in influx.series(query):
        for values in s.get("values", []):
            out.append((s.get("tags", {}), dict(zip(s["columns"], values, strict=True))))
    return out


def _ts(value: Any) -> datetime:
    """A time column as `InfluxClient.series` gives it: epoch milliseconds."""
    return datetime.fromtimestamp(int(value) / 1000, UTC)


def latest_parking(influx: InfluxClient, lookback: str = "1h") -> dict[str, CarPark]:
    """Each car park's latest reading within `lookback` (an InfluxQL duration)."""
    if not DURATION.fullmatch(lookback):
        raise ValueError(f"lookback {lookback!r} is not an InfluxQL duration like 1h or 30m")
    out = {}
    for tags, row in _rows(
        influx,
        'SELECT last("occupancy_pct") AS "pct", last("occupied") AS "occupied", '  # noqa: S608  (checked duration)
        f'last("capacity") AS "capacity" FROM "parking" WHERE time > now() - {lookback} GROUP BY "sensor"',
    ):
        if row.get("pct") is None or row.get("capacity") is None or row.get("occupied") is None:
            continue
        free = max(int(row["capacity"]) - int(row["occupied"]), 0)
        out[tags["sensor"]] = CarPark(float(row["pct"]), free, int(row["capacity"]), _ts(row["time"]))
    return out


def latest_delays(influx: InfluxClient, book: DelayBook, lookback: str = "30m") -> DelayBook:
    """`book` with the trips' latest delays: each vehicle's, and each stop's last passing."""
    if not DURATION.fullmatch(lookback):
        raise ValueError(f"lookback {lookback!r} is not an InfluxQL duration like 1h or 30m")
    for measurement in ("transit_vehicle", "transit_delay"):
        for tags, row in _rows(
            influx,
            f'SELECT last("delay_s") AS "delay_s", last("trip") AS "trip" FROM "{measurement}" '  # noqa: S608  (fixed names, checked duration)
            f'WHERE time > now() - {lookback} GROUP BY "org", "sensor"',
        ):
            if isinstance(row.get("trip"), str) and isinstance(row.get("delay_s"), int | float):
                book.note(tags.get("org", ""), row["trip"], int(row["delay_s"]), _ts(row["time"]))
    return book


# -- the API ------------------------------------------------------------------------------------


def intermodality_router(
    network: TransitNetwork,
    influx: InfluxClient | None = None,
    *,
    sites: Mapping[str, Site] | None = None,
    parking_lookback: str = "1h",
) -> APIRouter:
    """`GET /intermodality/park-and-ride`, public like the map feeds."""
    places = dict(sites if sites is not None else load_sites())
    router = APIRouter(prefix="/intermodality", tags=["feeds"])

    @router.get(
        "/park-and-ride",
        summary="Park-and-ride car parks: free spaces, stops near, next buses toward a car park",
        responses=refusals(404),
    )
    def park_and_ride(
        toward: Annotated[
            str | None,
            Query(
                max_length=64,
                description="The car park to reach (a sensor id of the sites); default: the fullest one now",
            ),
        ] = None,
        walk_m: Annotated[
            float, Query(gt=0, le=2000, description="Walking distance to a stop")
        ] = DEFAULT_WALK_M,
        departures: Annotated[int, Query(ge=0, le=10, description="Next departures per car park")] = 3,
        horizon_min: Annotated[float, Query(gt=0, le=360, description="Departures within")] = 60.0,
    ) -> dict[str, Any]:
        at = datetime.now(UTC)
        latest: dict[str, CarPark] = {}
        book = DelayBook()
        if influx is not None:
            try:
                latest = latest_parking(influx, parking_lookback)
                latest_delays(influx, book)
            except InfluxError as exc:  # the timetable still answers without real-time data
                log.warning("intermodality: InfluxDB unreadable, timetable only: %s", exc)
        target = destination(places, latest, toward)
        if target is None:
            known = ", ".join(sorted(s for s, site in places.items() if site.capacity))
            raise HTTPException(
                404,
                f"toward: {toward!r} is not a car park of the sites (known: {known})"
                if toward is not None
                else "toward: no car park reading yet to choose the fullest; name one",
            )
        found = park_and_rides(
            places,
            network,
            toward=places[target],
            at=at,
            latest=latest,
            delays=book,
            walk_m=walk_m,
            departures=departures,
            horizon=timedelta(minutes=horizon_min),
        )
        site = places[target]
        goal = latest.get(target)
        return {
            "at": at.isoformat(),
            "toward": {
                "sensor": target,
                "name": site.name,
                "lat": site.lat,
                "lon": site.lon,
                "occupancy_pct": goal.occupancy_pct if goal else None,
                "free": goal.free if goal else None,
            },
            "park_and_ride": [p.to_dict() for p in found],
        }

    return router


# -- for Grafana ----------------------------------------------------------------------------------


def _said(d: Departure) -> str:
    late = "" if d.delay_s is None else f" ({round(d.delay_s / 60):+d} min)"
    return f"{d.route_name} {d.expected.astimezone(UTC):%H:%MZ}{late} to {d.alight_stop_name}"


def snapshot_lines(found: list[ParkAndRide], toward: str, at: datetime) -> list[str]:
    """One `park_and_ride` point per park-and-ride: free spaces, its stops, the next departures."""
    lines = []
    for p in found:
        fields: dict[str, FieldValue] = {
            "name": p.site.name,
            "stops": ", ".join(s.name for s in p.stops),
            "next_departures": "; ".join(_said(d) for d in p.departures),
        }
        if p.latest is not None:
            fields["free"] = p.latest.free
            fields["occupancy_pct"] = p.latest.occupancy_pct
        if p.departures:
            fields["wait_min"] = round(max((p.departures[0].expected - at).total_seconds(), 0.0) / 60, 1)
        lines.append(line(MEASUREMENT, {"sensor": p.sensor, "toward": toward}, fields, at))
    return lines


class IntermodalSnapshots:
    """The park-and-ride picture as InfluxDB points, every `interval_s` (a rules service's
    `Periodic`): toward the fullest central car park at that moment.

    It learns the car parks' occupancy and the trips' delays from the stream the rules service
    hands it (`observe`), never by reading InfluxDB: the service writes as the write-only user
    (docker-compose.yml), which may not read."""

    def __init__(
        self,
        network: TransitNetwork,
        *,
        sites: Mapping[str, Site] | None = None,
        interval_s: float = 60.0,
        parking_max_age: timedelta = timedelta(hours=1),
        walk_m: float = DEFAULT_WALK_M,
    ) -> None:
        self.network = network
        self.sites = dict(sites if sites is not None else load_sites())
        self.interval_s = interval_s
        self.parking_max_age = parking_max_age
        self.walk_m = walk_m
        self.latest: dict[str, CarPark] = {}
        self.delays = DelayBook()
        self._period: int | None = None
        self.points_written = 0

    def observe(self, reading: Reading) -> None:
        """A car park's occupancy or a trip's delay, from the admitted stream."""
        if self.delays.observe(reading) or reading.kind is not SensorKind.PARKING:
            return
        pct, occupied, capacity = (reading.fields.get(k) for k in ("occupancy_pct", "occupied", "capacity"))
        if not (isinstance(pct, int | float) and isinstance(occupied, int) and isinstance(capacity, int)):
            return
        seen = self.latest.get(reading.sensor)
        if seen is None or reading.ts >= seen.ts:
            self.latest[reading.sensor] = CarPark(
                float(pct), max(capacity - occupied, 0), capacity, reading.ts
            )

    def tick(self, influx: InfluxClient, now: datetime | None = None) -> int:
        now = now or datetime.now(UTC)
        period = math.floor(now.timestamp() / self.interval_s)
        if period == self._period:
            return 0
        at = datetime.fromtimestamp(period * self.interval_s, UTC)
        latest = {s: c for s, c in self.latest.items() if c.ts >= now - self.parking_max_age}
        target = destination(self.sites, latest, None)
        if target is None:
            return 0  # no car park reading yet: nothing to head for
        # Once per interval, written or not: InfluxDB or the transit store away for a while is
        # tried again at the next one (one warning per interval, not per second).
        self._period = period
        self.delays.forget_before(now)
        try:
            found = park_and_rides(
                self.sites, self.network, toward=self.sites[target], at=at, latest=latest,
                delays=self.delays, walk_m=self.walk_m,
            )  # fmt: skip
            lines = snapshot_lines(found, target, at)
            if lines:
                influx.write(lines)
        except (InfluxError, LineProtocolError, SQLAlchemyError) as exc:
            log.warning("park-and-ride points not written: %s", exc)
            return 0
        self.points_written += len(lines)
        return len(lines)

    def close(self) -> None:
        """Nothing of its own to close: the network belongs to the wiring."""
