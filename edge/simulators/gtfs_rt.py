"""A GTFS-Realtime producer for demos and tests: a GTFS feed played on a clock, served over HTTP.

Every trip the static feed runs at the clock's time (calendar, calendar_dates and frequencies
honoured, times past midnight included) has a vehicle moving between its stops and a
TripUpdate with its delay at the next stop. Delays are deterministic per trip run (seeded): a
run starts some seconds early or late and loses time as it goes. On top of the ordinary:

- **cancelled trips**: the runs named in `Scenario.cancelled`, and a share of the others, are
  CANCELED (a TripUpdate, no vehicle, and an alert informing about the trip);
- **a detour**: one stop of one route is closed (a worksite): the route's trips skip it
  (StopTimeUpdate SKIPPED), their vehicles drive ~100 m off the line around it, and a DETOUR
  alert informs about the route and the stop.

`GtfsRtServer` answers `/gtfs-rt` (everything), `/gtfs-rt/vehicle-positions`,
`/gtfs-rt/trip-updates`, `/gtfs-rt/alerts` (`?debug` for protobuf text) and `/gtfs.zip` (the
static feed), with ETags and 304s as a real producer, and a new snapshot every `refresh_s`.
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from google.protobuf import text_format
from google.transit import gtfs_realtime_pb2 as rt

from edge.contract.gtfs.static import GtfsReader
from edge.contract.gtfs.times import format_date, interpolate, parse_date, service_day_start
from edge.simulators.clock import Clock

log = logging.getLogger(__name__)

EARTH_M_PER_DEG_LAT = 111_132.0
DETOUR_OFFSET_DEG = 0.0009  # ~100 m north of the line, around the closed stop
SHOW_BEFORE_S = 120  # a vehicle waits at its first stop this long before departing
_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True, slots=True)
class TripPlan:
    trip_id: str
    route_id: str
    service_id: str
    stops: tuple[str, ...]
    arrivals: tuple[int, ...]  # seconds of the service day, interpolated where the feed left gaps
    departures: tuple[int, ...]
    frequencies: tuple[tuple[int, int, int], ...] = ()  # (start, end, headway) when frequency-based


@dataclass(slots=True)
class Network:
    """What the simulator needs of a static feed, in memory."""

    tz: ZoneInfo
    stops: dict[str, tuple[float, float]] = field(default_factory=dict)  # (lat, lon)
    trips: dict[str, TripPlan] = field(default_factory=dict)
    calendar: dict[str, tuple[tuple[int, ...], date, date]] = field(default_factory=dict)
    exceptions: dict[tuple[str, date], int] = field(default_factory=dict)

    @classmethod
    def load(cls, source: Path | bytes) -> Network:
        """The feed's network; FeedError (with file and line) when the feed is broken."""
        reader = GtfsReader(source)
        rows: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        for table, chunk in reader.read():
            rows[table.name] += chunk
        if reader.problems:
            raise reader.error()
        net = cls(ZoneInfo(reader.timezone or "UTC"))
        for stop_id, _code, _name, lat, lon, *_ in rows["stops"]:
            if lat is not None and lon is not None:
                net.stops[stop_id] = (lat, lon)
        for service_id, *days, start, end in rows["calendar"]:
            net.calendar[service_id] = (tuple(days), parse_date(start), parse_date(end))
        for service_id, day, kind in rows["calendar_dates"]:
            net.exceptions[(service_id, parse_date(day))] = kind
        times: dict[str, list[tuple[int, str, int | None, int | None]]] = defaultdict(list)
        for trip_id, seq, stop_id, arrival, departure, *_ in rows["stop_times"]:
            times[trip_id].append((seq, stop_id, arrival, departure))
        frequencies: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
        for trip_id, start, end, headway, _exact in rows["frequencies"]:
            frequencies[trip_id].append((start, end, headway))
        for trip_id, route_id, service_id, *_ in rows["trips"]:
            st = sorted(times[trip_id])
            net.trips[trip_id] = TripPlan(
                trip_id,
                route_id,
                service_id,
                tuple(stop for _seq, stop, _a, _d in st),
                tuple(interpolate([a if a is not None else d for _seq, _stop, a, d in st])),
                tuple(interpolate([d if d is not None else a for _seq, _stop, a, d in st])),
                tuple(frequencies.get(trip_id, ())),
            )
        return net

    def runs_service(self, service_id: str, day: date) -> bool:
        exception = self.exceptions.get((service_id, day))
        if exception is not None:
            return exception == 1
        found = self.calendar.get(service_id)
        if found is None:
            return False
        days, start, end = found
        return start <= day <= end and days[day.weekday()] == 1


@dataclass(frozen=True, slots=True)
class Scenario:
    seed: int = 7
    cancelled: tuple[str, ...] = ()  # trip ids whose runs are cancelled
    cancel_share: float = 0.03  # and this share of the others
    detour_route: str | None = "LAM-BLU"  # a stop of this route is closed...
    detour_stop: str | None = "PO-PIAVE"  # ...this one (a worksite in Viale Piave)


@dataclass(frozen=True, slots=True)
class Run:
    """One trip running on one service day (a frequency-based trip runs many times)."""

    plan: TripPlan
    day: date
    offset_s: int  # added to the plan's times (a frequency-based run's start minus the template's)
    base: datetime  # the service day's start, UTC

    @property
    def key(self) -> str:
        return f"{self.plan.trip_id}:{self.day:%Y%m%d}:{self.offset_s}"

    def scheduled(self, i: int) -> datetime:
        return self.base + timedelta(seconds=self.plan.departures[i] + self.offset_s)


class FeedGenerator:
    def __init__(self, network: Network, clock: Clock, scenario: Scenario | None = None) -> None:
        self.network = network
        self.clock = clock
        self.scenario = scenario or Scenario()

    def runs(self, now: datetime) -> Iterator[Run]:
        """Runs of today's and yesterday's services on the road at `now` (or about to leave)."""
        today = now.astimezone(self.network.tz).date()
        for day in (today - timedelta(days=1), today):
            base = service_day_start(day, self.network.tz)
            seconds = (now - base).total_seconds()
            for plan in self.network.trips.values():
                if not self.network.runs_service(plan.service_id, day):
                    continue
                starts = [0]
                if plan.frequencies:
                    starts = [s - plan.departures[0] for a, b, h in plan.frequencies for s in range(a, b, h)]
                for offset in starts:
                    begin = plan.departures[0] + offset - SHOW_BEFORE_S
                    end = plan.arrivals[-1] + offset + 1800  # room for a late run
                    if begin <= seconds <= end:
                        yield Run(plan, day, offset, base)

    def delays(self, run: Run) -> list[int]:
        """Seconds late at each stop (negative: early), deterministic per run."""
        rnd = random.Random(f"{self.scenario.seed}:{run.key}")
        start = rnd.choice((-45, 0, 0, 30, 60, 90, 150, 300))
        loss = rnd.uniform(0, 360)
        n = len(run.plan.stops)
        return [round(start + loss * i / max(n - 1, 1)) for i in range(n)]

    def is_cancelled(self, run: Run) -> bool:
        if run.plan.trip_id in self.scenario.cancelled:
            return True
        digest = hashlib.sha256(f"{self.scenario.seed}:{run.key}".encode()).digest()
        return digest[0] / 256 < self.scenario.cancel_share

    def snapshot(self, now: datetime | None = None) -> rt.FeedMessage:
        now = now or self.clock.now()
        message = rt.FeedMessage()
        message.header.gtfs_realtime_version = "2.0"
        message.header.incrementality = rt.FeedHeader.FULL_DATASET
        message.header.timestamp = int(now.timestamp())
        used: set[str] = set()
        for run in self.runs(now):
            if self.is_cancelled(run):
                self._cancelled(message, run, now)
                continue
            delays = self.delays(run)
            vehicle_id = self._vehicle_id(run, used)
            moving = self._position(run, delays, now)
            if moving is None:
                continue  # not left yet, or arrived
            self._trip_update(message, run, delays, moving[0], vehicle_id, now)
            self._vehicle(message, run, moving, vehicle_id, now)
        if self.scenario.detour_route and self.scenario.detour_stop:
            self._detour_alert(message, now)
        return message

    # -- entities ----------------------------------------------------------------------------

    def _vehicle_id(self, run: Run, used: set[str]) -> str:
        number = int(hashlib.sha256(run.key.encode()).hexdigest(), 16) % 9000 + 1000
        while f"bus-{number}" in used:
            number += 1
        used.add(f"bus-{number}")
        return f"bus-{number}"

    def _descriptor(self, trip: rt.TripDescriptor, run: Run) -> None:
        trip.trip_id = run.plan.trip_id
        trip.route_id = run.plan.route_id
        trip.start_date = format_date(run.day)
        if run.plan.frequencies:
            start = run.plan.departures[0] + run.offset_s
            trip.start_time = f"{start // 3600:02d}:{start % 3600 // 60:02d}:{start % 60:02d}"

    def _position(
        self, run: Run, delays: list[int], now: datetime
    ) -> tuple[int, float, float, float, float] | None:
        """(next stop index, lat, lon, bearing, speed m/s) at `now`, None when not on the road."""
        plan = run.plan
        t = (now - run.base).total_seconds() - run.offset_s
        departs = [plan.departures[i] + delays[i] for i in range(len(plan.stops))]
        arrives = [plan.arrivals[i] + delays[i] for i in range(len(plan.stops))]
        if t < plan.departures[0] - SHOW_BEFORE_S or t > arrives[-1]:
            return None
        for i in range(len(plan.stops) - 1):
            if t <= departs[i]:
                lat, lon = self.network.stops[plan.stops[i]]
                return i, lat, lon, 0.0, 0.0  # at the stop (or waiting at the first)
            if t < arrives[i + 1]:
                a, b = self.network.stops[plan.stops[i]], self.network.stops[plan.stops[i + 1]]
                frac = (t - departs[i]) / max(arrives[i + 1] - departs[i], 1)
                lat, lon = a[0] + (b[0] - a[0]) * frac, a[1] + (b[1] - a[1]) * frac
                if self._is_detoured(run, i):
                    lat += DETOUR_OFFSET_DEG * math.sin(math.pi * frac)
                return (
                    i + 1,
                    lat,
                    lon,
                    _bearing(a, b),
                    _distance_m(a, b) / max(arrives[i + 1] - departs[i], 1),
                )
        lat, lon = self.network.stops[plan.stops[-1]]
        return len(plan.stops) - 1, lat, lon, 0.0, 0.0

    def _is_detoured(self, run: Run, segment: int) -> bool:
        s = self.scenario
        if run.plan.route_id != s.detour_route or s.detour_stop not in run.plan.stops:
            return False
        closed = run.plan.stops.index(s.detour_stop)
        return segment in (closed - 1, closed)

    def _trip_update(
        self, message: rt.FeedMessage, run: Run, delays: list[int], nxt: int, vehicle_id: str, now: datetime
    ) -> None:
        e = message.entity.add(id=f"tu-{run.key}")
        tu = e.trip_update
        self._descriptor(tu.trip, run)
        tu.vehicle.id = vehicle_id
        tu.timestamp = int(now.timestamp())
        stu = tu.stop_time_update.add(stop_sequence=nxt + 1, stop_id=run.plan.stops[nxt])
        stu.arrival.delay = delays[nxt]
        stu.departure.delay = delays[nxt]
        s = self.scenario
        if run.plan.route_id == s.detour_route and s.detour_stop in run.plan.stops:
            closed = run.plan.stops.index(s.detour_stop)
            if closed > nxt:
                skip = tu.stop_time_update.add(stop_sequence=closed + 1, stop_id=s.detour_stop)
                skip.schedule_relationship = rt.TripUpdate.StopTimeUpdate.SKIPPED
                after = tu.stop_time_update.add(stop_sequence=closed + 2, stop_id=run.plan.stops[closed + 1])
                after.departure.delay = delays[closed + 1]
            elif closed == nxt:
                stu.schedule_relationship = rt.TripUpdate.StopTimeUpdate.SKIPPED
                stu.ClearField("arrival")
                stu.ClearField("departure")

    def _vehicle(
        self,
        message: rt.FeedMessage,
        run: Run,
        moving: tuple[int, float, float, float, float],
        vehicle_id: str,
        now: datetime,
    ) -> None:
        nxt, lat, lon, bearing, speed = moving
        e = message.entity.add(id=f"vp-{vehicle_id}")
        vp = e.vehicle
        self._descriptor(vp.trip, run)
        vp.vehicle.id = vehicle_id
        vp.vehicle.label = vehicle_id.upper()
        vp.position.latitude, vp.position.longitude = lat, lon
        if speed > 0:
            vp.position.bearing, vp.position.speed = bearing, speed
        vp.stop_id = run.plan.stops[nxt]
        vp.current_stop_sequence = nxt + 1
        vp.current_status = rt.VehiclePosition.IN_TRANSIT_TO if speed > 0 else rt.VehiclePosition.STOPPED_AT
        vp.timestamp = int(now.timestamp())
        rnd = random.Random(f"{self.scenario.seed}:{run.key}:load")
        pct = max(0, min(120, round(rnd.gauss(45, 25))))
        vp.occupancy_percentage = pct
        vp.occupancy_status = (
            rt.VehiclePosition.MANY_SEATS_AVAILABLE
            if pct < 50
            else rt.VehiclePosition.FEW_SEATS_AVAILABLE
            if pct < 80
            else rt.VehiclePosition.STANDING_ROOM_ONLY
            if pct < 100
            else rt.VehiclePosition.CRUSHED_STANDING_ROOM_ONLY
        )

    def _cancelled(self, message: rt.FeedMessage, run: Run, now: datetime) -> None:
        e = message.entity.add(id=f"tu-{run.key}")
        self._descriptor(e.trip_update.trip, run)
        e.trip_update.trip.schedule_relationship = rt.TripDescriptor.CANCELED
        e.trip_update.timestamp = int(now.timestamp())
        a = message.entity.add(id=f"alert-cancelled-{run.key}").alert
        self._descriptor(a.informed_entity.add().trip, run)
        a.effect = rt.Alert.NO_SERVICE
        a.cause = rt.Alert.TECHNICAL_PROBLEM
        start = run.scheduled(0)
        a.active_period.add(start=int(start.timestamp()) - 3600, end=int(run.scheduled(-1).timestamp()) + 600)
        local = start.astimezone(self.network.tz)
        a.header_text.translation.add(text=f"Corsa delle {local:%H:%M} soppressa", language="it")
        a.header_text.translation.add(text=f"The {local:%H:%M} run is cancelled", language="en")

    def _detour_alert(self, message: rt.FeedMessage, now: datetime) -> None:
        s = self.scenario
        assert s.detour_route is not None
        assert s.detour_stop is not None
        a = message.entity.add(id=f"detour-{s.detour_route}-{s.detour_stop}").alert
        a.informed_entity.add(route_id=s.detour_route)
        a.informed_entity.add(stop_id=s.detour_stop)
        a.cause = rt.Alert.CONSTRUCTION
        a.effect = rt.Alert.DETOUR
        a.severity_level = rt.Alert.WARNING
        day = service_day_start(now.astimezone(self.network.tz).date(), self.network.tz)
        a.active_period.add(start=int(day.timestamp()), end=int((day + timedelta(days=1)).timestamp()))
        it = f"Linea {s.detour_route} deviata: fermata {s.detour_stop} sospesa per cantiere"
        en = f"Route {s.detour_route} detoured: stop {s.detour_stop} closed (roadworks)"
        a.header_text.translation.add(text=it, language="it")
        a.header_text.translation.add(text=en, language="en")


def _distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    dy = (b[0] - a[0]) * EARTH_M_PER_DEG_LAT
    dx = (b[1] - a[1]) * EARTH_M_PER_DEG_LAT * math.cos(math.radians((a[0] + b[0]) / 2))
    return math.hypot(dx, dy)


def _bearing(a: tuple[float, float], b: tuple[float, float]) -> float:
    dy = b[0] - a[0]
    dx = (b[1] - a[1]) * math.cos(math.radians((a[0] + b[0]) / 2))
    return round(math.degrees(math.atan2(dx, dy)) % 360, 1)


# ---------------------------------------------------------------------------------------------
# HTTP.

PATHS = {
    "/gtfs-rt": None,
    "/gtfs-rt/vehicle-positions": "vehicle",
    "/gtfs-rt/trip-updates": "trip_update",
    "/gtfs-rt/alerts": "alert",
}


class GtfsRtServer:
    """Serves the generator's snapshots; a new one every `refresh_s` real seconds."""

    def __init__(
        self,
        generator: FeedGenerator,
        *,
        host: str = "127.0.0.1",
        port: int = 8088,
        refresh_s: float = 10.0,
        static_zip: bytes | None = None,
    ) -> None:
        self.generator = generator
        self.refresh_s = refresh_s
        self.static_zip = static_zip
        self._lock = threading.Lock()
        self._bodies: dict[str | None, bytes] = {}
        self._made_at = -math.inf
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.answer(self)

            def log_message(self, *_: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> GtfsRtServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def body(self, kind: str | None, monotonic: float) -> bytes:
        with self._lock:
            if monotonic - self._made_at >= self.refresh_s:
                snapshot = self.generator.snapshot()
                self._bodies = {None: snapshot.SerializeToString()}
                for name in ("vehicle", "trip_update", "alert"):
                    part = rt.FeedMessage()
                    part.header.CopyFrom(snapshot.header)
                    part.entity.extend(e for e in snapshot.entity if e.HasField(name))
                    self._bodies[name] = part.SerializeToString()
                self._made_at = monotonic
            return self._bodies[kind]

    def answer(self, request: BaseHTTPRequestHandler) -> None:
        self.requests += 1
        parts = urlsplit(request.path)
        if parts.path == "/gtfs.zip" and self.static_zip is not None:
            self._send(request, 200, self.static_zip, "application/zip")
            return
        if parts.path not in PATHS:
            self._send(request, 404, b"not found: try /gtfs-rt or /gtfs.zip\n", "text/plain")
            return
        body = self.body(PATHS[parts.path], time.monotonic())
        if "debug" in parts.query:
            text = text_format.MessageToString(rt.FeedMessage.FromString(body), as_utf8=True).encode()
            self._send(request, 200, text, "text/plain; charset=utf-8")
            return
        etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        if request.headers.get("If-None-Match") == etag:
            request.send_response(304)
            request.send_header("ETag", etag)
            request.end_headers()
            return
        self._send(request, 200, body, "application/x-protobuf", etag)

    @staticmethod
    def _send(
        request: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str, etag: str = ""
    ) -> None:
        request.send_response(status)
        request.send_header("Content-Type", content_type)
        request.send_header("Content-Length", str(len(body)))
        if etag:
            request.send_header("ETag", etag)
        request.end_headers()
        request.wfile.write(body)
