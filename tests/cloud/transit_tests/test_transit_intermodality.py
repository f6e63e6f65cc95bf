"""Intermodality: each park-and-ride with its free spaces, the stops within walking distance and the
next buses toward a full central car park (timetable, with and without real-time delay), as a
function, as the public API route and as the points Grafana reads."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from support_transit import OPERATOR, PRATO_AREA, prato_feed_zip

from cloud.apps.api import create_app
from cloud.core.geo import ServiceAreas, load_sites
from cloud.core.transit import DelayBook
from cloud.dev.apiserver import ThreadedApiServer
from cloud.io.influx.client import InfluxClient
from cloud.io.influx.lineprotocol import line
from cloud.transit.intermodality import (
    MEASUREMENT,
    CarPark,
    IntermodalSnapshots,
    destination,
    park_and_rides,
)
from cloud.transit.lookup import StoreNetwork
from cloud.transit.store import TransitStore
from cloud.worksites.store import WorksiteStore
from edge.contract import Reading, SensorKind

ROME = ZoneInfo("Europe/Rome")
TUESDAY_8 = datetime(2026, 11, 3, 8, 0, tzinfo=ROME).astimezone(UTC)
SITES = load_sites()


def car_park(free: int, capacity: int, at: datetime = TUESDAY_8) -> CarPark:
    return CarPark(round(100 * (capacity - free) / capacity, 1), free, capacity, at)


LATEST = {
    "p-mercatale": car_park(4, 520),
    "p-serraglio": car_park(100, 150),
    "p-stazione-centrale": car_park(280, 380),
}


def test_the_fullest_central_car_park_is_where_the_buses_should_go_unless_one_is_named() -> None:
    assert destination(SITES, LATEST, None) == "p-mercatale"
    assert destination(SITES, LATEST, "p-castello") == "p-castello"
    assert destination(SITES, LATEST, "p-nowhere") is None
    assert destination(SITES, {}, None) is None


def test_each_park_and_ride_has_its_free_spaces_its_stops_and_the_next_buses_toward_the_full_car_park(
    prato_store: TransitStore,
) -> None:
    found = park_and_rides(
        SITES,
        StoreNetwork(prato_store),
        toward=SITES["p-mercatale"],
        at=TUESDAY_8,
        latest=LATEST,
        delays=DelayBook(),
    )

    # Most free spaces first; a park-and-ride with no reading last.
    assert [p.sensor for p in found] == ["p-stazione-centrale", "p-serraglio", "p-interporto"]
    serraglio = found[1]
    assert serraglio.latest is not None
    assert serraglio.latest.free == 100
    assert serraglio.stops[0].stop_id == "PO-SERRAGLIO"
    assert [
        (d.route_name, d.expected.astimezone(ROME).strftime("%H:%M"), d.alight_stop_id)
        for d in serraglio.departures
    ] == [
        ("Circolare", "08:00", "PO-MERCATALE"),
        ("LAM Rossa", "08:10", "PO-MERCATALE"),
        ("Circolare", "08:15", "PO-MERCATALE"),
    ]
    # No line from the central station stops within a walk of Piazza Mercatale; Interporto has no stop.
    assert found[0].departures == ()
    assert found[2].stops == ()


def test_a_real_time_delay_moves_a_departure_and_says_so(prato_store: TransitStore) -> None:
    book = DelayBook()
    book.note(OPERATOR, "LAM-ROSSA_FER_0_0804", 420, TUESDAY_8 - timedelta(minutes=2))

    (serraglio,) = [
        p
        for p in park_and_rides(
            SITES,
            StoreNetwork(prato_store),
            toward=SITES["p-mercatale"],
            at=TUESDAY_8,
            latest=LATEST,
            delays=book,
        )
        if p.sensor == "p-serraglio"
    ]

    said = [d.to_dict() for d in serraglio.departures]
    assert [(d["route"], d["delay_s"]) for d in said] == [
        ("Circolare", None),
        ("Circolare", None),
        ("LAM Rossa", 420),
    ]
    assert datetime.fromisoformat(said[2]["expected"]).astimezone(ROME).strftime("%H:%M") == "08:17"


@pytest.fixture
def api_url(tmp_path: Path, influx_db: InfluxClient) -> Iterator[str]:
    registry = WorksiteStore.open(f"sqlite:///{tmp_path / 'worksites.db'}", areas=ServiceAreas.load())
    buses = TransitStore(registry.engine)
    buses.migrate()
    buses.import_feed(prato_feed_zip(), operator=OPERATOR, area=PRATO_AREA)
    server = ThreadedApiServer(create_app(registry, influx=influx_db)).start()
    try:
        yield server.url
    finally:
        server.stop()
        registry.close()


def parking_line(sensor: str, occupied: int, capacity: int, at: datetime) -> str:
    fields = {
        "occupied": occupied,
        "capacity": capacity,
        "occupancy_pct": round(100 * occupied / capacity, 1),
    }
    return line("parking", {"org": "comune-prato", "gateway": "gw-test", "sensor": sensor}, fields, at)


def test_the_public_route_heads_for_the_fullest_car_park_with_free_spaces_from_influxdb(
    api_url: str, influx_db: InfluxClient
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    influx_db.write(
        [
            parking_line("p-mercatale", 516, 520, now - timedelta(minutes=2)),
            parking_line("p-serraglio", 50, 150, now - timedelta(minutes=1)),
        ]
    )

    body = httpx.get(f"{api_url}/intermodality/park-and-ride", timeout=30).json()

    assert body["toward"]["sensor"] == "p-mercatale"
    assert body["toward"]["free"] == 4
    serraglio = next(p for p in body["park_and_ride"] if p["sensor"] == "p-serraglio")
    assert serraglio["free"] == 100
    assert serraglio["stops"][0]["stop_id"] == "PO-SERRAGLIO"
    # Whatever the hour the test runs at: every bus offered takes one to Piazza Mercatale.
    assert all(d["alight_stop_id"] == "PO-MERCATALE" for d in serraglio["departures"])


def test_an_unknown_destination_is_refused_naming_it(api_url: str) -> None:
    refused = httpx.get(f"{api_url}/intermodality/park-and-ride", params={"toward": "p-nowhere"}, timeout=30)

    assert refused.status_code == 404
    assert "toward: 'p-nowhere' is not a car park" in refused.json()["detail"]


def parking(sensor: str, occupied: int, capacity: int, at: datetime) -> Reading:
    fields = {
        "occupied": occupied,
        "capacity": capacity,
        "occupancy_pct": round(100 * occupied / capacity, 1),
    }
    return Reading(
        kind=SensorKind.PARKING, org="comune-prato", gateway="gw-test", sensor=sensor, ts=at, fields=fields
    )


def test_the_park_and_ride_points_name_free_spaces_stops_and_next_buses_from_the_readings_it_saw(
    prato_store: TransitStore, influx_db: InfluxClient
) -> None:
    # The rules service hands it the stream; it never reads InfluxDB, where the service's
    # write-only user may not (this database holds no parking point at all).
    writer = IntermodalSnapshots(StoreNetwork(prato_store))
    assert writer.tick(influx_db, TUESDAY_8) == 0  # no car park seen yet: nowhere to head for
    writer.observe(parking("p-mercatale", 516, 520, TUESDAY_8 - timedelta(minutes=2)))
    writer.observe(parking("p-serraglio", 50, 150, TUESDAY_8 - timedelta(minutes=1)))

    written = writer.tick(influx_db, TUESDAY_8)
    assert writer.tick(influx_db, TUESDAY_8 + timedelta(seconds=5)) == 0  # once per interval

    assert written == 3
    rows = {
        s["tags"]["sensor"]: dict(zip(s["columns"], s["values"][0], strict=True))
        for s in influx_db.series(f'SELECT * FROM "{MEASUREMENT}" GROUP BY "sensor", "toward"')
    }
    assert rows["p-serraglio"]["free"] == 100
    assert rows["p-serraglio"]["stops"].startswith("Stazione Porta al Serraglio")
    assert rows["p-serraglio"]["next_departures"].startswith("Circolare 07:00Z to Piazza Mercatale")
    assert rows["p-serraglio"]["wait_min"] == 0
