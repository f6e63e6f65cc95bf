"""Public transport: GTFS import rate and GTFS-Realtime decode-to-readings rate, on one core.

1. import: a generated regional-size GTFS feed (4,000 stops, 250 routes, 25,000 trips of 40
   stops: 1,000,000 stop_times) imported by `TransitStore.import_feed` into a fresh SQLite
   database, checks included (target: under 30 s);
2. realtime: feeds built with gtfs-realtime-bindings, taken as the reader takes a body
   (protobuf parse, the entity view, references checked against the imported timetable,
   readings built and encoded as batch JSON): vehicle positions, trip updates of the trips on
   the road at noon, and both in one feed (target: at least 50,000 entities per second of one
   core). The rate is per CPU second of the process, the best of `--repeat` runs: the machine is
   shared, and wall time there measures the neighbours as much as the code.

    .venv/bin/python bench/transit.py [--json FILE] [--stop-times 1000000] [--vehicles 20000]
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import random
import sys
import tempfile
import time
import zipfile
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from google.transit import gtfs_realtime_pb2 as rt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cloud.transit.realtime.delays import DelayReadings
from cloud.transit.realtime.entities import EntityView
from cloud.transit.realtime.timetable import Timetable
from cloud.transit.realtime.vehicles import VehicleReadings
from cloud.transit.store import TransitStore
from edge.contract.gtfs.realtime import parse
from edge.contract.gtfs.static import Area
from edge.contract.gtfs.times import service_day_start

STOPS, ROUTES, STOPS_PER_TRIP = 4000, 250, 40
DAY = date(2026, 11, 24)  # a Tuesday, inside the generated calendar
TZ = ZoneInfo("Europe/Rome")
TUSCANY = Area(9.6, 42.2, 12.5, 44.6)
OPERATOR = "regional"


def say(text: str) -> None:
    print(text, flush=True)


def regional_feed(stop_times: int) -> bytes:
    """A GTFS zip of `stop_times` stop times: trips of 40 stops, 90 s apart, 05:00 to 22:00."""
    rnd = random.Random(1)
    trips = stop_times // STOPS_PER_TRIP
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        z.writestr(
            "agency.txt",
            "agency_id,agency_name,agency_url,agency_timezone\nRT,Regional,https://example.org,Europe/Rome\n",
        )
        stops = ["stop_id,stop_name,stop_lat,stop_lon"]
        stops += [
            f"S{i},Stop {i},{43.2 + rnd.random():.5f},{10.4 + rnd.random() * 1.4:.5f}" for i in range(STOPS)
        ]
        z.writestr("stops.txt", "\n".join(stops) + "\n")
        z.writestr(
            "routes.txt",
            "route_id,agency_id,route_short_name,route_type\n"
            + "".join(f"R{i},RT,{i},3\n" for i in range(ROUTES)),
        )
        z.writestr(
            "calendar.txt",
            "service_id,monday,tuesday,wednesday,thursday,friday,saturday,sunday,start_date,end_date\n"
            "WK,1,1,1,1,1,0,0,20260101,20281231\n",
        )
        trip_rows = ["trip_id,route_id,service_id,direction_id"]
        st = ["trip_id,arrival_time,departure_time,stop_id,stop_sequence"]
        for t in range(trips):
            r = t % ROUTES
            trip_rows.append(f"T{t},R{r},WK,{t % 2}")
            start = 5 * 3600 + (t * 37) % (17 * 3600)
            base = (r * 16) % STOPS
            for k in range(STOPS_PER_TRIP):
                s = start + k * 90
                hms = f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"
                st.append(f"T{t},{hms},{hms},S{(base + k) % STOPS},{k + 1}")
            if t % 5000 == 4999:
                say(f"  generated {t + 1:,} of {trips:,} trips")
        z.writestr("trips.txt", "\n".join(trip_rows) + "\n")
        z.writestr("stop_times.txt", "\n".join(st) + "\n")
    return out.getvalue()


def bench_import(folder: Path, stop_times: int) -> tuple[dict[str, Any], TransitStore]:
    say(f"import: generating a regional feed of {stop_times:,} stop_times ...")
    feed = folder / "regional.zip"
    feed.write_bytes(regional_feed(stop_times))
    say(f"  {feed.stat().st_size / 1e6:.1f} MB zipped; importing into SQLite ...")
    store = TransitStore.open(f"sqlite:///{folder / 'transit.db'}")
    last = [time.monotonic()]

    def progress(table: str, rows: int) -> None:
        if time.monotonic() - last[0] >= 2.0:
            say(f"  {table}: {rows:,} rows")
            last[0] = time.monotonic()

    cpu0 = time.process_time()
    result = store.import_feed(feed, operator=OPERATOR, area=TUSCANY, progress=progress)
    cpu = time.process_time() - cpu0
    rows = sum(result.feed.counts.values())
    figures = {
        "stop_times": result.feed.counts["stop_times"],
        "rows": rows,
        "seconds": round(result.seconds, 2),
        "cpu_seconds": round(cpu, 2),
        "stop_times_per_s": round(result.feed.counts["stop_times"] / result.seconds),
        "target_seconds": 30,
        "meets_target": result.seconds < 30,
    }
    say(f"import: {figures['stop_times']:,} stop_times ({rows:,} rows) in {result.seconds:.1f} s "
        f"({figures['stop_times_per_s']:,}/s, CPU {cpu:.1f} s) — target < 30 s: "
        f"{'met' if figures['meets_target'] else 'MISSED'}")  # fmt: skip
    return figures, store


def header(message: rt.FeedMessage, ts: int) -> None:
    message.header.gtfs_realtime_version = "2.0"
    message.header.incrementality = rt.FeedHeader.FULL_DATASET
    message.header.timestamp = ts


def vehicle_feeds(n: int, trips: int, snapshots: int, t0: int) -> list[bytes]:
    rnd = random.Random(2)
    bodies = []
    for k in range(snapshots):
        ts = t0 + 30 * k
        m = rt.FeedMessage()
        header(m, ts)
        for i in range(n):
            e = m.entity.add(id=f"vp-{i}")
            vp = e.vehicle
            vp.vehicle.id = f"bus-{i}"
            vp.trip.trip_id = f"T{(i * 7) % trips}"
            vp.position.latitude = 43.2 + rnd.random()
            vp.position.longitude = 10.4 + rnd.random()
            vp.position.bearing = rnd.random() * 360
            vp.position.speed = rnd.random() * 15
            vp.current_status = rt.VehiclePosition.IN_TRANSIT_TO
            vp.occupancy_status = rt.VehiclePosition.MANY_SEATS_AVAILABLE
            vp.timestamp = ts
        bodies.append(m.SerializeToString())
    return bodies


def trip_update_feeds(timetable: Timetable, snapshots: int, t0: int) -> list[bytes]:
    """The trips on the road at t0, each with its next stop's delay, over `snapshots` polls."""
    base = int(service_day_start(DAY, TZ).timestamp())
    rnd = random.Random(3)
    running = []
    for trip_id in timetable.trips:
        times = timetable.stop_times(trip_id)
        if base + times[0].departure_s <= t0 + 30 * snapshots and base + times[-1].arrival_s >= t0:
            running.append((trip_id, times, rnd.randint(-60, 400)))
    bodies = []
    for k in range(snapshots):
        now = t0 + 30 * k
        m = rt.FeedMessage()
        header(m, now)
        for trip_id, times, delay in running:
            nxt = next((st for st in times if base + st.departure_s + delay > now), times[-1])
            e = m.entity.add(id=f"tu-{trip_id}")
            tu = e.trip_update
            tu.trip.trip_id = trip_id
            tu.trip.start_date = DAY.strftime("%Y%m%d")
            u = tu.stop_time_update.add(stop_sequence=nxt.stop_sequence)
            u.departure.delay = delay + k
        bodies.append(m.SerializeToString())
    return bodies


def take(bodies: list[bytes], timetable: Timetable) -> tuple[int, int, float, float]:
    """(entities, readings, wall s, cpu s) for the reader's work on these bodies."""
    view = EntityView()
    delays = DelayReadings(lambda: timetable)
    vehicles = VehicleReadings(lambda: timetable, delays.delay_of)
    entities = readings = 0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for body in bodies:
        message = parse(body)
        applied = view.apply(message)
        ts = message.header.timestamp
        updates = [(i, e) for i, e in applied.sent if e.HasField("trip_update")]
        out, _ = delays.update(updates, ts)
        for i, e in applied.sent:
            if e.HasField("vehicle"):
                r = vehicles.convert(i, e, ts)
                if isinstance(r, dict):
                    out.append(r)
        for start in range(0, len(out), 2000):
            orjson.dumps(out[start : start + 2000])
        entities += len(applied.sent)
        readings += len(out)
    return entities, readings, time.perf_counter() - wall0, time.process_time() - cpu0


def mixed_feeds(vp_bodies: list[bytes], tu_bodies: list[bytes]) -> list[bytes]:
    """A full feed as most operators publish it: every vehicle and every trip update in one."""
    out = []
    for vp, tu in zip(vp_bodies, tu_bodies, strict=True):
        m = rt.FeedMessage.FromString(tu)
        m.entity.extend(rt.FeedMessage.FromString(vp).entity)
        out.append(m.SerializeToString())
    return out


def bench_realtime(store: TransitStore, vehicles: int, snapshots: int, repeat: int) -> dict[str, Any]:
    timetable = Timetable.load(store, OPERATOR)
    noon = int(datetime(DAY.year, DAY.month, DAY.day, 12, tzinfo=TZ).astimezone(UTC).timestamp())
    say(f"realtime: building {snapshots} snapshots of {vehicles:,} vehicle positions ...")
    vp_bodies = vehicle_feeds(vehicles, len(timetable.trips), snapshots, noon)
    say("realtime: building trip updates of the trips on the road at noon ...")
    tu_bodies = trip_update_feeds(timetable, snapshots, noon)
    figures: dict[str, Any] = {"target_entities_per_s": 50_000, "repeat": repeat}
    feeds = (
        ("vehicle_positions", vp_bodies),
        ("trip_updates", tu_bodies),
        ("mixed", mixed_feeds(vp_bodies, tu_bodies)),
    )
    for name, bodies in feeds:
        take(bodies[:1], timetable)  # warm-up: the trips' stop times come from the database once
        runs = [take(bodies, timetable) for _ in range(repeat)]
        entities, readings, wall, cpu = min(runs, key=lambda r: r[3])  # the least disturbed run
        per_cpu = entities / cpu
        figures[name] = {
            "snapshots": len(bodies),
            "entities": entities,
            "bytes_per_snapshot": len(bodies[0]),
            "readings": readings,
            "cpu_seconds": round(cpu, 3),
            "wall_seconds": round(wall, 3),
            "entities_per_cpu_s": round(per_cpu),
            "entities_per_wall_s": round(entities / wall),
            "meets_target": per_cpu >= 50_000,
        }
        say(f"realtime {name}: {entities:,} entities -> {readings:,} readings: {per_cpu:,.0f} entities "
            f"per CPU second (wall {entities / wall:,.0f}/s; best CPU of {repeat}) — target >= 50,000: "
            f"{'met' if per_cpu >= 50_000 else 'MISSED'}")  # fmt: skip
    return figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--stop-times", type=int, default=1_000_000)
    ap.add_argument("--vehicles", type=int, default=20_000)
    ap.add_argument("--snapshots", type=int, default=5)
    ap.add_argument(
        "--repeat", type=int, default=3, help="realtime runs per feed; the least disturbed counts"
    )
    args = ap.parse_args()
    say(f"{platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, load average {os.getloadavg()}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="sitroom-bench-transit-") as tmp:
        imported, store = bench_import(Path(tmp), args.stop_times)
        realtime = bench_realtime(store, args.vehicles, args.snapshots, args.repeat)
        store.close()
    figures = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average": os.getloadavg(),
        },
        "import": imported,
        "realtime": realtime,
    }
    if args.json:
        args.json.write_bytes(orjson.dumps(figures, option=orjson.OPT_INDENT_2))
        say(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
