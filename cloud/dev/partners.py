"""The demo's partners, each a process of its own, sending their data the way they would for real.

    python -m cloud.dev.partners parking --broker URL [--org ORG] [--interval-s 2] [--status FILE]
    python -m cloud.dev.partners fleet --api URL --org ORG --token-file FILE [--interval-s 2] [--status FILE]

- `parking`: a neighbouring municipality's platform (Calenzano, east of Prato) keeps its car
  parks' occupancy in its own NGSI-LD context broker: every interval it upserts them
  (`OffStreetParking`, normalized, the Smart Data Models' context), and the broker notifies
  whoever subscribed — the Situation Room, which `sitroom exchange subscribe` registered.
- `fleet`: a utility's fleet-management platform (Open Fiber's vans on their FTTH routes in
  Prato) posts its vehicles' positions to the push API as GeoJSON every interval, each batch
  with its own id, sending the same batch again on 429, 503 or a lost answer until it is
  answered, as docs/push-api.md asks of an integrator.

Each writes a status file (JSON, replaced whole after every send, `final: true` once stopped by
SIGTERM or SIGINT) with what it has sent and had acknowledged: the broker's 201/204 for the car
parks, the push API's answer for the positions. The demo counts those as published, beside what
the gateways published, and checks them against what InfluxDB stored.

The places are approximate (read off a map to within a hundred metres); occupancies and routes
are simulated. This is demo tooling: only `cloud/apps/demo*.py` start it, as a process.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import orjson

from cloud.core.geo import distance_m
from cloud.exchange.broker import BrokerError, ContextBroker
from cloud.exchange.entities import Place, Thing, off_street_parking
from cloud.ingest.push import PREFIX
from edge.contract import Reading, SensorKind, format_ts

PARTNER_ORG = "comune-calenzano"
UTILITY_ORG = "open-fiber"


@dataclass(frozen=True, slots=True)
class CarPark:
    sensor: str
    name: str
    lat: float
    lon: float
    capacity: int
    zone: str = "calenzano"


CAR_PARKS = (
    CarPark("p-cz-stazione", "Parcheggio Stazione di Calenzano", 43.8566, 11.1611, 160),
    CarPark("p-cz-centro", "Parcheggio Piazza Vittorio Veneto", 43.8650, 11.1640, 120),
    CarPark("p-cz-castello", "Parcheggio Calenzano Alto", 43.8705, 11.1598, 60),
)


@dataclass(frozen=True, slots=True)
class Van:
    sensor: str
    route: str
    waypoints: tuple[tuple[float, float], ...]  # (lat, lon), driven in a loop back to the first
    speed_kmh: float = 25.0


VANS = (
    Van("v-of-01", "ftth-pistoiese", ((43.8850, 11.0820), (43.8829, 11.0905), (43.8808, 11.0960))),
    Van("v-of-02", "ftth-roma", ((43.8710, 11.0930), (43.8680, 11.0985), (43.8650, 11.1040))),
    Van("v-of-03", "ftth-galilei", ((43.8888, 11.1003), (43.8860, 11.1060), (43.8830, 11.1110))),
)  # fmt: skip


@dataclass(slots=True)
class Status:
    """What a partner process has sent and had acknowledged, for the demo's accounting."""

    path: Path | None
    sent: int = 0  # readings (entity states) in requests that were answered
    accepted: int = 0
    refused: int = 0
    requests: int = 0
    failures: int = 0  # requests that were not answered (and sent again)
    last_error: str = ""
    final: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def write(self) -> None:
        if self.path is None:
            return
        body = {k: getattr(self, k) for k in ("sent", "accepted", "refused", "requests", "failures", "final")}
        body["last_error"] = self.last_error
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(body | self.extra))
        tmp.replace(self.path)


# -- a neighbouring city's car parks, in its context broker -----------------------------------------


class CarParkStates:
    """The partner's car parks, their occupancy drifting a little at each step."""

    def __init__(self, org: str, seed: int = 0) -> None:
        self.org = org
        self.rng = random.Random(seed)
        self.occupied = {p.sensor: p.capacity // 2 for p in CAR_PARKS}

    def entities(self, now: datetime) -> list[dict[str, Any]]:
        """Every car park as a normalized OffStreetParking entity observed at `now`."""
        out = []
        for park in CAR_PARKS:
            step = self.rng.randint(-6, 6)
            self.occupied[park.sensor] = min(park.capacity, max(0, self.occupied[park.sensor] + step))
            occupied = self.occupied[park.sensor]
            reading = Reading(
                kind=SensorKind.PARKING,
                org=self.org,
                gateway="platform",
                sensor=park.sensor,
                ts=now,
                fields={
                    "occupied": occupied,
                    "capacity": park.capacity,
                    "occupancy_pct": occupied / park.capacity * 100,
                },
                tags={"zone": park.zone},
            )
            place = Place(park.lat, park.lon, park.name, park.capacity)
            thing = Thing(
                self.org, "platform", park.sensor, SensorKind.PARKING, place, reading, {"zone": park.zone}
            )
            out.append(off_street_parking(thing).normalized())
        return out


class ParkingPlatform:
    def __init__(self, broker: ContextBroker, parks: CarParkStates, status: Status) -> None:
        self.broker = broker
        self.parks = parks
        self.status = status

    def send(self) -> None:
        documents = self.parks.entities(_now_ms())
        try:
            result = self.broker.upsert(documents)
        except BrokerError as exc:
            self.status.failures += 1
            self.status.last_error = str(exc)
        else:
            self.status.requests += 1
            self.status.sent += len(documents)
            self.status.accepted += len(result.succeeded)
            self.status.refused += len(result.failed)
        self.status.write()


# -- a utility's fleet platform, posting to the push API ---------------------------------------------


def _heading(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Degrees clockwise from north, from a to b ((lat, lon), a local flat approximation)."""
    d_lat = b[0] - a[0]
    d_lon = (b[1] - a[1]) * math.cos(math.radians(a[0]))
    return round(math.degrees(math.atan2(d_lon, d_lat)) % 360, 1)


def position(van: Van, elapsed_s: float) -> tuple[float, float, float]:
    """(lat, lon, heading) of `van` after `elapsed_s` driving its loop at its speed."""
    loop = (*van.waypoints, van.waypoints[0])
    legs = list(itertools.pairwise(loop))
    lengths = [distance_m(a[0], a[1], b[0], b[1]) for a, b in legs]
    travelled = (elapsed_s * van.speed_kmh / 3.6) % sum(lengths)
    for (a, b), length in zip(legs, lengths, strict=True):
        if travelled <= length:
            f = travelled / length
            return a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, _heading(a, b)
        travelled -= length
    a, b = legs[-1]
    return b[0], b[1], _heading(a, b)


def van_positions(elapsed_s: float, now: datetime) -> dict[str, Any]:
    """Every van where it is after `elapsed_s` on its loop, as a GeoJSON FeatureCollection."""
    features = []
    for van in VANS:
        lat, lon, heading = position(van, elapsed_s)
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [round(lon, 6), round(lat, 6)]},
                "properties": {"vehicle": van.sensor, "ts": format_ts(now), "speed_kmh": van.speed_kmh,
                               "heading_deg": heading, "route": van.route, "vehicle_type": "telecom"},
            }
        )  # fmt: skip
    return {"type": "FeatureCollection", "features": features}


class FleetPlatform:
    def __init__(
        self,
        api: httpx.Client,
        org: str,
        status: Status,
        *,
        clock: Callable[[], float] = time.monotonic,
        retry_s: float = 1.0,
    ) -> None:
        self.api = api
        self.org = org
        self.status = status
        self.clock = clock
        self.retry_s = retry_s
        self.started = clock()
        self.batches = 0

    def send(self, stop: threading.Event) -> None:
        """Post one batch, the same again until answered (or stopped, leaving it unsent)."""
        self.batches += 1
        batch_id = f"{self.org}-{os.getpid()}-{self.batches}"
        body = orjson.dumps(van_positions(self.clock() - self.started, _now_ms()))
        headers = {"Idempotency-Key": batch_id, "Content-Type": "application/geo+json"}
        while not stop.is_set():
            try:
                response = self.api.post(f"{PREFIX}/positions", content=body, headers=headers)
            except httpx.HTTPError as exc:
                self._failed(f"push API unreachable: {exc!r}")
            else:
                if response.status_code == 200:
                    answer = response.json()
                    self.status.requests += 1
                    self.status.sent += int(answer["readings"])
                    self.status.accepted += int(answer["accepted"])
                    self.status.refused += int(answer["refused"])
                    self.status.write()
                    return
                if response.status_code not in (429, 503):
                    # A refusal of the whole batch is a bug of this platform: say so, do not loop.
                    self._failed(f"push API {response.status_code}: {response.text[:300]}")
                    return
                self._failed(f"push API {response.status_code}")
            stop.wait(self.retry_s)

    def _failed(self, why: str) -> None:
        self.status.failures += 1
        self.status.last_error = why
        self.status.write()


# -- the processes -----------------------------------------------------------------------------------


def _now_ms() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _run(every_s: float, send: Callable[[threading.Event], None], status: Status) -> None:
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    status.write()
    while not stop.is_set():
        started = time.monotonic()
        send(stop)
        stop.wait(max(0.0, every_s - (time.monotonic() - started)))
    status.final = True
    status.write()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m cloud.dev.partners", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="partner", required=True)
    parking = sub.add_parser(
        "parking", help="a neighbouring city's car parks, upserted to its context broker"
    )
    parking.add_argument("--broker", required=True)
    parking.add_argument("--org", default=PARTNER_ORG, help="the partner's id in the entities' URNs")
    parking.add_argument("--seed", type=int, default=0)
    fleet = sub.add_parser("fleet", help="a utility's vans, posted to the push API as GeoJSON")
    fleet.add_argument("--api", required=True)
    fleet.add_argument("--org", default=UTILITY_ORG)
    fleet.add_argument("--token-file", required=True, type=Path)
    for p in (parking, fleet):
        p.add_argument("--interval-s", type=float, default=2.0)
        p.add_argument("--status", type=Path, help="where to keep the counts (JSON)")
    args = parser.parse_args(argv)
    status = Status(args.status, extra={"org": args.org})
    if args.partner == "parking":
        broker = ContextBroker(args.broker)
        platform = ParkingPlatform(broker, CarParkStates(args.org, args.seed), status)
        try:
            _run(args.interval_s, lambda _stop: platform.send(), status)
        finally:
            broker.close()
        return
    token = args.token_file.read_text(encoding="utf-8").strip()
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=args.api, headers=headers, timeout=30, trust_env=False) as api:
        fleet_platform = FleetPlatform(api, args.org, status)
        _run(args.interval_s, fleet_platform.send, status)


__all__ = [
    "CAR_PARKS",
    "PARTNER_ORG",
    "UTILITY_ORG",
    "VANS",
    "CarParkStates",
    "FleetPlatform",
    "ParkingPlatform",
    "main",
    "van_positions",
]


if __name__ == "__main__":
    main()
