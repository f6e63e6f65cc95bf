"""Helpers of the transit tests: the project's Prato feed (and copies broken on purpose), GTFS-Realtime
feeds built with `gtfs-realtime-bindings`, and a local HTTP server that serves them as an operator would:
200 with an ETag and Last-Modified, 304 to a matching `If-None-Match`, and on request a status, a delay
(for timeouts) or any bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.transit import gtfs_realtime_pb2 as rt

from cloud.dev.servers import free_port
from edge.contract.gtfs.static import Area
from edge.simulators.transit import PRATO_BUS_DIR, PRATO_OPERATOR, prato_feed_zip

# ---------------------------------------------------------------------------------------------
# Static feeds.

PRATO_AREA = Area(10.98, 43.78, 11.22, 43.98)  # the Comune di Prato with a margin (worksites' own)
OPERATOR = PRATO_OPERATOR


def text(name: str) -> str:
    return (PRATO_BUS_DIR / name).read_text(encoding="utf-8")


def lines(name: str) -> list[str]:
    """The file's lines without their ends; index i is line i + 1."""
    return text(name).splitlines()


def line_of(name: str, starts: str) -> int:
    """The 1-based number of the first line of `name` starting with `starts`."""
    return next(i for i, line in enumerate(lines(name), 1) if line.startswith(starts))


def edited(name: str, edit: Callable[[list[str]], None], *, encoding: str = "utf-8") -> bytes:
    """The Prato feed with `name`'s lines changed by `edit` (a list, changed in place)."""
    content = lines(name)
    edit(content)
    return prato_feed_zip({name: ("\r\n".join(content) + "\r\n").encode(encoding)})


def replaced_line(name: str, starts: str, new: str) -> bytes:
    def edit(content: list[str]) -> None:
        content[line_of(name, starts) - 1] = new

    return edited(name, edit)


# ---------------------------------------------------------------------------------------------
# GTFS-Realtime.

FULL = rt.FeedHeader.FULL_DATASET
DIFFERENTIAL = rt.FeedHeader.DIFFERENTIAL


def feed(*entities: rt.FeedEntity, ts: int, incrementality: int = FULL) -> bytes:
    message = rt.FeedMessage()
    message.header.gtfs_realtime_version = "2.0"
    message.header.incrementality = incrementality  # type: ignore[assignment]
    message.header.timestamp = ts
    for e in entities:
        message.entity.append(e)
    return message.SerializeToString()


def vehicle(
    vehicle_id: str,
    lat: float = 43.8786,
    lon: float = 11.1050,
    *,
    ts: int | None = None,
    trip: str | None = None,
    route: str | None = None,
    entity_id: str | None = None,
    bearing: float | None = None,
    speed_ms: float | None = None,
    stop: str | None = None,
    status: int | None = None,
    occupancy: int | None = None,
    occupancy_pct: int | None = None,
    with_position: bool = True,
    added: bool = False,
) -> rt.FeedEntity:
    e = rt.FeedEntity(id=entity_id or f"v-{vehicle_id}")
    vp = e.vehicle
    vp.vehicle.id = vehicle_id
    if trip is not None:
        vp.trip.trip_id = trip
    if route is not None:
        vp.trip.route_id = route
    if added:
        vp.trip.schedule_relationship = rt.TripDescriptor.ADDED
    if with_position:
        vp.position.latitude, vp.position.longitude = lat, lon
        if bearing is not None:
            vp.position.bearing = bearing
        if speed_ms is not None:
            vp.position.speed = speed_ms
    if ts is not None:
        vp.timestamp = ts
    if stop is not None:
        vp.stop_id = stop
    if status is not None:
        vp.current_status = status  # type: ignore[assignment]
    if occupancy is not None:
        vp.occupancy_status = occupancy  # type: ignore[assignment]
    if occupancy_pct is not None:
        vp.occupancy_percentage = occupancy_pct
    return e


@dataclass(frozen=True, slots=True)
class Stu:
    """A StopTimeUpdate: by stop_sequence (or stop_id), a delay or an absolute departure time."""

    seq: int | None = None
    stop: str | None = None
    delay: int | None = None
    time: int | None = None
    skipped: bool = False
    no_data: bool = False


def trip_update(  # noqa: PLR0912  (one branch per optional part of the message)
    trip_id: str,
    stus: Sequence[Stu] = (),
    *,
    start_date: date | None = None,
    ts: int | None = None,
    entity_id: str | None = None,
    cancelled: bool = False,
    delay: int | None = None,
    route: str | None = None,
    start_time: str | None = None,
    added: bool = False,
) -> rt.FeedEntity:
    e = rt.FeedEntity(id=entity_id or f"tu-{trip_id}")
    tu = e.trip_update
    tu.trip.trip_id = trip_id
    if route is not None:
        tu.trip.route_id = route
    if start_date is not None:
        tu.trip.start_date = start_date.strftime("%Y%m%d")
    if start_time is not None:
        tu.trip.start_time = start_time
    if cancelled:
        tu.trip.schedule_relationship = rt.TripDescriptor.CANCELED
    if added:
        tu.trip.schedule_relationship = rt.TripDescriptor.ADDED
    if ts is not None:
        tu.timestamp = ts
    if delay is not None:
        tu.delay = delay
    for s in stus:
        u = tu.stop_time_update.add()
        if s.seq is not None:
            u.stop_sequence = s.seq
        if s.stop is not None:
            u.stop_id = s.stop
        if s.skipped:
            u.schedule_relationship = rt.TripUpdate.StopTimeUpdate.SKIPPED
        elif s.no_data:
            u.schedule_relationship = rt.TripUpdate.StopTimeUpdate.NO_DATA
        elif s.time is not None:
            u.departure.time = s.time
        elif s.delay is not None:
            u.departure.delay = s.delay
    return e


def service_alert(
    entity_id: str,
    *,
    routes: Sequence[str] = (),
    stops: Sequence[str] = (),
    trips: Sequence[str] = (),
    periods: Sequence[tuple[int | None, int | None]] = (),
    header: str = "Deviazione",
    description: str = "",
    effect: int = rt.Alert.DETOUR,
    cause: int | None = rt.Alert.CONSTRUCTION,
) -> rt.FeedEntity:
    e = rt.FeedEntity(id=entity_id)
    a = e.alert
    for r in routes:
        a.informed_entity.add(route_id=r)
    for s in stops:
        a.informed_entity.add(stop_id=s)
    for t in trips:
        a.informed_entity.add().trip.trip_id = t
    for start, end in periods:
        p = a.active_period.add()
        if start is not None:
            p.start = start
        if end is not None:
            p.end = end
    a.header_text.translation.add(text=header, language="it")
    a.header_text.translation.add(text=f"EN {header}", language="en")
    if description:
        a.description_text.translation.add(text=description)
    a.effect = effect  # type: ignore[assignment]
    if cause is not None:
        a.cause = cause  # type: ignore[assignment]
    return e


def deleted(entity_id: str) -> rt.FeedEntity:
    return rt.FeedEntity(id=entity_id, is_deleted=True)


def epoch(day: date, hh: int, mm: int = 0, ss: int = 0, tz_hours: int = 1) -> int:
    """Local Prato time (UTC+1 in winter) as epoch seconds."""
    return int(datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=UTC).timestamp()) - tz_hours * 3600


@dataclass
class Served:
    """What the feed server answers, changed by the test between polls."""

    body: bytes = b""
    status: int = 200
    delay_s: float = 0.0
    etag_enabled: bool = True
    requests: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha256(self.body).hexdigest()[:16] + '"'


@contextmanager
def feed_server(served: Served) -> Iterator[str]:
    """A local HTTP server on a free port serving `served`; yields its feed URL."""
    release = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with served.lock:
                served.requests.append(dict(self.headers.items()))
                body, status, delay, etag = served.body, served.status, served.delay_s, served.etag
                use_etag = served.etag_enabled
            if delay:
                release.wait(delay)
            if use_etag and self.headers.get("If-None-Match") == etag and status == 200:
                self.send_response(304)
                self.send_header("ETag", etag)
                self.end_headers()
                return
            self.send_response(status)
            if status == 200:
                if use_etag:
                    self.send_header("ETag", etag)
                self.send_header("Last-Modified", format_datetime(datetime.now(UTC), usegmt=True))
            if status in (429, 503):
                self.send_header("Retry-After", "7")
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the reader gave up
                self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/gtfs-rt/feed.pb"
    finally:
        release.set()
        server.shutdown()
        server.server_close()


__all__ = ["OPERATOR", "PRATO_AREA", "prato_feed_zip"]
