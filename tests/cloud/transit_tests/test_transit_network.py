"""The transit store as the `TransitNetwork` other features use: worksites on routes, stops near
a car park, and the next departures toward the centre from the timetable, with and without a
real-time delay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from support_transit import OPERATOR, PRATO_AREA, prato_feed_zip

from cloud.core.transit import DelayBook, Departure, ListedNetwork, NoTransit, StopRef
from cloud.transit.lookup import StoreNetwork
from cloud.transit.store import TransitStore
from edge.contract import Reading, SensorKind
from edge.contract.gtfs.ids import sensor_id

from support import wait_until

ROME = ZoneInfo("Europe/Rome")
MERCATALE_CAR_PARK = (43.8825, 11.1003)  # cloud/core/sites.yaml p-mercatale
SERRAGLIO_CAR_PARK = (43.8868, 11.0952)  # p-serraglio, a park-and-ride
M_LAT = 1 / 111_132
M_LON = 1 / (111_132 * 0.7212)
LAT0, LON0 = 43.8778, 11.1000  # Viale Piave


def rome(y: int, mo: int, d: int, h: int, mi: int) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=ROME).astimezone(UTC)


def piave_box(half_m: float = 25) -> dict[str, object]:
    w, e = LON0 - half_m * M_LON, LON0 + half_m * M_LON
    s, n = LAT0 - 15 * M_LAT, LAT0 + 15 * M_LAT
    return {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}


def summary(departures: list[Departure]) -> list[tuple[str, str, str, str, int | None]]:
    return [
        (
            d.route_name,
            d.expected.astimezone(ROME).strftime("%H:%M"),
            d.stop_id,
            d.alight_stop_id,
            d.delay_s,
        )
        for d in departures
    ]


@pytest.fixture
def net(prato_store: TransitStore) -> StoreNetwork:
    return StoreNetwork(prato_store)


def test_a_worksite_at_viale_piave_names_the_routes_through_it_and_the_stop_inside(net: StoreNetwork) -> None:
    found = net.impact(piave_box())

    assert {(r.route_id, r.name) for r in found.routes} == {
        ("LAM-BLU", "LAM Blu"),
        ("2", "2"),
        ("CIRC", "Circolare"),
    }
    assert [(s.stop_id, s.name, s.routes) for s in found.stops] == [
        ("PO-PIAVE", "Viale Piave", ("2", "CIRC", "LAM-BLU"))
    ]


def test_a_network_imported_after_the_process_opened_the_empty_store_is_seen_within_seconds(
    tmp_path: Path,
) -> None:
    # As in the demo: the rules service and the API open the registry's database before the
    # operator's static feed is imported from the simulator.
    store = TransitStore.open(f"sqlite:///{tmp_path / 'transit.db'}")
    net = StoreNetwork(store, refresh_s=3600)
    try:
        assert net.impact(piave_box()).routes == ()
        store.import_feed(prato_feed_zip(), operator=OPERATOR, area=PRATO_AREA)

        found = wait_until(lambda: net.impact(piave_box()).routes, 10, what="the imported network")
        assert "LAM-BLU" in {r.route_id for r in found}
    finally:
        store.close()


def test_the_stops_within_walking_distance_of_a_park_and_ride_are_found_nearest_first(
    net: StoreNetwork,
) -> None:
    near = net.stops_near(*SERRAGLIO_CAR_PARK, 400)

    assert near[0].stop_id == "PO-SERRAGLIO"
    assert near[0].distance_m < 40
    assert all(s.distance_m <= 400 for s in near)


def test_a_delay_readings_sensor_names_its_stop(net: StoreNetwork) -> None:
    found = net.stop(OPERATOR, sensor_id("PO-SERRAGLIO"))

    assert found is not None
    assert (found.stop_id, found.name) == ("PO-SERRAGLIO", "Stazione Porta al Serraglio")
    assert net.stop("another-operator", sensor_id("PO-SERRAGLIO")) is None


def test_the_next_departures_toward_the_centre_come_from_the_timetable_and_frequencies(
    net: StoreNetwork,
) -> None:
    stops = net.stops_near(*SERRAGLIO_CAR_PARK, 400)

    found = net.departures(stops, rome(2026, 11, 3, 8, 0), toward=MERCATALE_CAR_PARK)

    # A Tuesday: the Circolare every 15 minutes from 07:00 (frequencies.txt), LAM Rossa every 12;
    # LAM Rossa's other direction leaves Serraglio away from the centre and is not offered.
    assert summary(found) == [
        ("Circolare", "08:00", "PO-SERRAGLIO", "PO-MERCATALE", None),
        ("LAM Rossa", "08:10", "PO-SERRAGLIO", "PO-MERCATALE", None),
        ("Circolare", "08:15", "PO-SERRAGLIO", "PO-MERCATALE", None),
    ]
    assert found[1].trip_id == "LAM-ROSSA_FER_0_0804"
    assert found[1].headsign == "Centro Pecci"
    assert found[1].arrival.astimezone(ROME).strftime("%H:%M") == "08:13"


def test_a_trip_late_by_the_latest_real_time_reading_is_shown_late_and_resorted(net: StoreNetwork) -> None:
    at = rome(2026, 11, 3, 8, 0)
    stops = net.stops_near(*SERRAGLIO_CAR_PARK, 400)
    book = DelayBook()
    # The Circolare's 08:00 run is six minutes late, as its bus told four minutes ago.
    book.observe(
        Reading(
            kind=SensorKind.TRANSIT_VEHICLE,
            org=OPERATOR,
            gateway="gtfs-rt",
            sensor="bus-17",
            ts=at - timedelta(minutes=4),
            fields={"lat": 43.88, "lon": 11.09, "trip": "CIRC_ALL_0_template", "delay_s": 360},
            tags={"route": "CIRC"},
        )
    )

    found = book.apply(net.departures(stops, at, toward=MERCATALE_CAR_PARK), at)

    # (A frequency trip's runs share a trip_id: the latest delay is taken for the next run.)
    assert summary(found)[:2] == [
        ("Circolare", "08:06", "PO-SERRAGLIO", "PO-MERCATALE", 360),
        ("LAM Rossa", "08:10", "PO-SERRAGLIO", "PO-MERCATALE", None),
    ]


def test_a_delay_older_than_the_book_keeps_is_not_used() -> None:
    book = DelayBook(max_age=timedelta(minutes=30))
    at = datetime(2026, 11, 3, 7, 0, tzinfo=UTC)
    book.note(OPERATOR, "T1", 300, at - timedelta(minutes=31))
    book.note(OPERATOR, "T2", 120, at - timedelta(minutes=5))
    book.note(OPERATOR, "T2", 60, at - timedelta(minutes=10))  # older than what is known: ignored

    assert book.delay(OPERATOR, "T1", at) is None
    assert book.delay(OPERATOR, "T2", at) == 120
    book.forget_before(at)
    assert len(book) == 1


def test_a_cancelled_stop_carries_no_delay() -> None:
    book = DelayBook()
    reading = Reading(
        kind=SensorKind.TRANSIT_DELAY,
        org=OPERATOR,
        gateway="gtfs-rt",
        sensor="po-serraglio",
        ts=datetime(2026, 11, 3, 7, 0, tzinfo=UTC),
        fields={"trip": "T1", "stop_sequence": 4, "status": "cancelled"},
        tags={"route": "LAM-ROSSA"},
    )

    assert book.observe(reading) is False


def test_a_holiday_runs_the_sunday_service(net: StoreNetwork) -> None:
    stops = net.stops_near(*SERRAGLIO_CAR_PARK, 400)

    # 8 December (calendar_dates.txt): no Circolare, LAM Rossa on its holiday timetable.
    found = net.departures(stops, rome(2026, 12, 8, 9, 0), toward=MERCATALE_CAR_PARK)

    assert found
    assert {d.route_id for d in found} == {"LAM-ROSSA"}
    assert all("_FES_" in d.trip_id for d in found)


def test_a_night_trip_past_midnight_departs_on_the_next_calendar_day(net: StoreNetwork) -> None:
    station = [s for s in net.stops_near(43.8782, 11.1074, 50) if s.stop_id == "PO-STAZ-C"]

    # LAM Blu's last weekday trip leaves the station at 24:10:00 of Tuesday: Wednesday 00:10.
    found = net.departures(station, rome(2026, 11, 4, 0, 5), toward=(43.8641, 11.0697), limit=1)

    assert summary(found) == [("LAM Blu", "00:10", "PO-STAZ-C", "PO-OSPEDALE", None)]


def test_nothing_is_near_and_nothing_departs_without_a_network() -> None:
    assert NoTransit().impact(piave_box()).is_empty
    assert NoTransit().departures([], datetime.now(UTC), toward=MERCATALE_CAR_PARK) == []


def test_a_listed_network_answers_as_the_store_does() -> None:
    net = ListedNetwork(
        routes={"R": {"name": "Rossa", "line": [[11.0955, 43.8866], [11.1011, 43.8829]]}},
        stops={
            "A": {"name": "Serraglio", "lat": 43.8866, "lon": 11.0955},
            "B": {"name": "Mercatale", "lat": 43.8829, "lon": 11.1011},
        },
        trips=[
            {
                "trip": "R1",
                "route": "R",
                "stops": [["A", "2026-11-03T07:10:00+00:00"], ["B", "2026-11-03T07:13:00+00:00"]],
            },
            {
                "trip": "R2",
                "route": "R",
                "stops": [["B", "2026-11-03T07:05:00+00:00"], ["A", "2026-11-03T07:08:00+00:00"]],
            },
        ],
        operator=OPERATOR,
    )
    stops: list[StopRef] = net.stops_near(*SERRAGLIO_CAR_PARK, 400)

    found = net.departures(stops, datetime(2026, 11, 3, 7, 0, tzinfo=UTC), toward=MERCATALE_CAR_PARK)

    assert [(d.trip_id, d.route_name, d.alight_stop_name) for d in found] == [("R1", "Rossa", "Mercatale")]
    assert net.stop(OPERATOR, sensor_id("A")) is not None
    assert [r.route_id for r in net.impact({"type": "Point", "coordinates": [11.0955, 43.8866]}).routes] == [
        "R"
    ]
