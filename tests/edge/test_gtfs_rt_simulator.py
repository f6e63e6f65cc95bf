"""The GTFS-Realtime simulator: the Prato network played on a clock, served as a producer would."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from google.transit import gtfs_realtime_pb2 as rt

from edge.contract.gtfs.realtime import parse
from edge.simulators.clock import ManualClock
from edge.simulators.gtfs_rt import FeedGenerator, GtfsRtServer, Network, Scenario
from edge.simulators.transit import prato_feed_zip

ROME = ZoneInfo("Europe/Rome")
TUESDAY_0805 = datetime(2026, 11, 24, 8, 5, tzinfo=ROME)
CANCELLED = "LAM-BLU_FER_0_0800"


@pytest.fixture(scope="module")
def network() -> Network:
    return Network.load(prato_feed_zip())


def generator(network: Network, at: datetime = TUESDAY_0805, **scenario: object) -> FeedGenerator:
    return FeedGenerator(network, ManualClock(at), Scenario(cancelled=(CANCELLED,), **scenario))  # type: ignore[arg-type]


def entities(message: rt.FeedMessage, kind: str) -> list[rt.FeedEntity]:
    return [e for e in message.entity if e.HasField(kind)]


def test_on_a_weekday_morning_the_running_trips_have_vehicles_inside_prato(network: Network) -> None:
    message = generator(network).snapshot()

    vehicles = entities(message, "vehicle")
    assert len(vehicles) >= 8
    for e in vehicles:
        p = e.vehicle.position
        assert 43.85 < p.latitude < 43.91
        assert 11.06 < p.longitude < 11.12
        assert e.vehicle.trip.trip_id in network.trips
        assert e.vehicle.stop_id in network.stops
    assert len({e.vehicle.vehicle.id for e in vehicles}) == len(vehicles)


def test_a_cancelled_trip_has_a_canceled_trip_update_an_alert_and_no_vehicle(network: Network) -> None:
    message = generator(network).snapshot()

    cancelled = [e for e in entities(message, "trip_update") if e.trip_update.trip.trip_id == CANCELLED]
    assert cancelled[0].trip_update.trip.schedule_relationship == rt.TripDescriptor.CANCELED
    assert not [e for e in entities(message, "vehicle") if e.vehicle.trip.trip_id == CANCELLED]
    assert any(
        ie.trip.trip_id == CANCELLED for e in entities(message, "alert") for ie in e.alert.informed_entity
    )


def test_the_detour_skips_the_closed_stop_and_drives_off_the_line_around_it(network: Network) -> None:
    message = generator(network, at=datetime(2026, 11, 24, 8, 22, tzinfo=ROME), cancel_share=0.0).snapshot()

    (detour,) = [e for e in entities(message, "alert") if e.alert.effect == rt.Alert.DETOUR]
    assert {(ie.route_id, ie.stop_id) for ie in detour.alert.informed_entity} == {
        ("LAM-BLU", ""),
        ("", "PO-PIAVE"),
    }
    skipped = [
        u.stop_id
        for e in entities(message, "trip_update")
        for u in e.trip_update.stop_time_update
        if u.schedule_relationship == rt.TripUpdate.StopTimeUpdate.SKIPPED
    ]
    assert skipped
    assert set(skipped) == {"PO-PIAVE"}


def test_delays_are_the_same_for_the_same_run_and_time(network: Network) -> None:
    a = generator(network).snapshot().SerializeToString()
    b = generator(network).snapshot().SerializeToString()

    assert a == b


def test_a_night_trip_after_midnight_belongs_to_the_previous_service_day(network: Network) -> None:
    # Wednesday 00:15 is Tuesday's 24:15: the last LAM Blu trip (24:10) is on the road.
    message = generator(network, at=datetime(2026, 11, 25, 0, 15, tzinfo=ROME), cancel_share=0.0).snapshot()

    night = [e for e in entities(message, "vehicle") if e.vehicle.trip.trip_id == "LAM-BLU_FER_0_2410"]
    assert night
    assert night[0].vehicle.trip.start_date == "20261124"


def test_the_frequency_based_line_runs_every_fifteen_minutes_from_its_own_start(network: Network) -> None:
    message = generator(network, at=datetime(2026, 11, 24, 10, 0, tzinfo=ROME), cancel_share=0.0).snapshot()

    starts = sorted(
        e.trip_update.trip.start_time
        for e in entities(message, "trip_update")
        if e.trip_update.trip.trip_id == "CIRC_ALL_0_template"
    )
    assert starts
    assert all(s[3:5] in ("00", "15", "30", "45") for s in starts)


def test_sunday_runs_the_holiday_timetable(network: Network) -> None:
    message = generator(network, at=datetime(2026, 11, 29, 9, 0, tzinfo=ROME), cancel_share=0.0).snapshot()

    services = {network.trips[e.vehicle.trip.trip_id].service_id for e in entities(message, "vehicle")}
    assert services == {"FES"}


@pytest.fixture
def server(network: Network) -> Iterator[GtfsRtServer]:
    clock = ManualClock(TUESDAY_0805)
    s = GtfsRtServer(FeedGenerator(network, clock), port=0, refresh_s=3600, static_zip=b"PK zip").start()
    yield s
    s.stop()


def test_the_server_answers_with_an_etag_and_304_when_nothing_changed(server: GtfsRtServer) -> None:
    first = httpx.get(f"{server.url}/gtfs-rt")
    again = httpx.get(f"{server.url}/gtfs-rt", headers={"If-None-Match": first.headers["etag"]})

    assert first.status_code == 200
    assert parse(first.content).header.timestamp == int(TUESDAY_0805.timestamp())
    assert again.status_code == 304


def test_each_entity_type_has_its_own_path_and_debug_text(server: GtfsRtServer) -> None:
    vehicles = parse(httpx.get(f"{server.url}/gtfs-rt/vehicle-positions").content)
    alerts = parse(httpx.get(f"{server.url}/gtfs-rt/alerts").content)
    text = httpx.get(f"{server.url}/gtfs-rt/trip-updates?debug").text

    assert vehicles.entity
    assert all(e.HasField("vehicle") for e in vehicles.entity)
    assert all(e.HasField("alert") for e in alerts.entity)
    assert "trip_update {" in text
    assert httpx.get(f"{server.url}/gtfs.zip").content == b"PK zip"
    assert httpx.get(f"{server.url}/nothing").status_code == 404


def test_a_new_snapshot_comes_once_the_refresh_interval_passed(network: Network) -> None:
    clock = ManualClock(TUESDAY_0805)
    s = GtfsRtServer(FeedGenerator(network, clock), port=0, refresh_s=0.0).start()
    try:
        first = parse(httpx.get(f"{s.url}/gtfs-rt").content).header.timestamp
        clock.advance(timedelta(seconds=30).total_seconds())
        second = parse(httpx.get(f"{s.url}/gtfs-rt").content).header.timestamp
    finally:
        s.stop()

    assert second - first == 30


def test_the_simulate_command_serves_the_feed_until_its_duration_ends() -> None:
    from click.testing import CliRunner  # noqa: PLC0415

    from edge.cli import root  # noqa: PLC0415

    result = CliRunner().invoke(root, ["edge", "simulate", "gtfs-rt", "--port", "0", "--duration", "0.5"])

    assert result.exit_code == 0, result.output
    assert "GTFS-Realtime on http://127.0.0.1:" in result.output
    assert "/gtfs.zip" in result.output
