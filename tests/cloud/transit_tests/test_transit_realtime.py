"""The GTFS-Realtime reader against a local HTTP server serving feeds built with gtfs-realtime-bindings.

These tests stop at the reader's outbox (the batches it would publish, in order, with their
seq); tests/e2e/test_transit_pipeline.py follows them through Mosquitto and ingest to InfluxDB.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest
from google.transit import gtfs_realtime_pb2 as rt
from support_transit import (
    DIFFERENTIAL,
    OPERATOR,
    Served,
    Stu,
    deleted,
    epoch,
    feed,
    feed_server,
    service_alert,
    trip_update,
    vehicle,
)

from cloud.transit.realtime.config import ApiKey, FeedUrl, ReaderConfig, ReaderConfigError, load_config
from cloud.transit.realtime.reader import TransitReader
from cloud.transit.store import TransitStore
from edge.contract import Batch, SensorKind, decode_strict
from edge.contract.gtfs.ids import sensor_id

DAY = date(2026, 11, 24)  # a Tuesday: the FER (weekday) timetable, winter time (UTC+1)
T0 = epoch(DAY, 8, 0)
TRIP = "LAM-BLU_FER_0_0800"  # 08:00 Stazione Centrale ... 08:16 Ospedale, stop_sequence 1..9
SCHEDULE = [(1, "PO-STAZ-C", 0), (2, "PO-VENETO", 1), (3, "PO-SMARCO", 2), (4, "PO-PIAVE", 3),
            (5, "PO-STRINITA", 5), (6, "PO-ROMA", 8), (7, "PO-SOCCORSO", 11), (8, "PO-NICCOLINA", 13),
            (9, "PO-OSPEDALE", 16)]  # fmt: skip


def at(minutes: float) -> int:
    return T0 + int(minutes * 60)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Rig:
    reader: TransitReader
    served: Served
    clock: Clock
    store: TransitStore

    def serve(self, body: bytes, at_s: float | None = None) -> None:
        """Serve `body` and poll once (the clock moves past the reader's interval)."""
        self.served.body = body
        self.clock.now = at_s if at_s is not None else self.clock.now + 30
        for url in self.reader.urls.values():
            url.next_at = 0
        self.reader.poll(self.clock.now)

    def batches(self) -> list[tuple[int, str, list[dict[str, Any]]]]:
        return [(o.seq, o.kind, orjson.loads(o.readings)) for o in self.reader.rt.pending(10_000)]

    def readings(self, kind: SensorKind) -> list[dict[str, Any]]:
        return [r for _seq, k, rs in self.batches() if k == kind.value for r in rs]

    def refusals(self) -> list[tuple[str, str, str]]:
        return [(r["reason"], r["field"], r["message"]) for r in self.reader.rt.refusals()]


def config(url: str, **over: Any) -> ReaderConfig:
    values: dict[str, Any] = {
        "operator": OPERATOR,
        "source": "gtfs-rt-prato",
        "feeds": [{"url": url, "name": "all"}],
        "interval_s": 30,
        "timeout_s": 0.5,
        "stale_after_s": 120,
    }
    return ReaderConfig.model_validate(values | over)


@pytest.fixture
def store(prato_store: TransitStore) -> TransitStore:
    return prato_store


@pytest.fixture
def rig(store: TransitStore) -> Iterator[Rig]:
    served = Served()
    with feed_server(served) as url:
        clock = Clock(T0)
        reader = TransitReader(config(url), store, None, wall=clock)
        yield Rig(reader, served, clock, store)
        reader.http.close()


# ---------------------------------------------------------------------------------------------
# Vehicle positions.


def test_a_vehicle_position_with_every_field_becomes_one_transit_vehicle_reading(rig: Rig) -> None:
    rig.serve(
        feed(
            vehicle(
                "4127", 43.8786, 11.1050, ts=at(1), trip=TRIP, bearing=92.5, speed_ms=5.0, stop="PO-SMARCO",
                status=rt.VehiclePosition.IN_TRANSIT_TO, occupancy=rt.VehiclePosition.FEW_SEATS_AVAILABLE,
                occupancy_pct=64,
            ),
            ts=at(1),
        )
    )  # fmt: skip

    (reading,) = rig.readings(SensorKind.TRANSIT_VEHICLE)
    assert reading == {
        "sensor": "4127",
        "ts": "2026-11-24T07:01:00.000Z",
        "fields": {
            "lat": 43.8786, "lon": 11.105, "bearing_deg": 92.5, "speed_kmh": 18.0, "trip": TRIP,
            "stop": "PO-SMARCO", "stop_status": "in_transit_to", "occupancy": "few_seats_available",
            "occupancy_pct": 64,
        },
        "tags": {"route": "LAM-BLU"},  # the static trip's route
    }  # fmt: skip


def test_a_vehicle_without_optional_fields_has_just_its_position_and_no_route(rig: Rig) -> None:
    rig.serve(feed(vehicle("Bus 12"), ts=at(1)))

    (reading,) = rig.readings(SensorKind.TRANSIT_VEHICLE)
    assert reading["sensor"] == sensor_id("Bus 12")
    assert reading["ts"] == "2026-11-24T07:01:00.000Z"  # the header's, when the vehicle gives none
    assert set(reading["fields"]) == {"lat", "lon"}
    assert reading["tags"] == {"route": "none"}


def test_every_batch_the_reader_keeps_is_a_valid_contract_batch_with_the_next_seq(rig: Rig) -> None:
    rig.serve(feed(vehicle("a", ts=at(1)), vehicle("b", ts=at(1)), ts=at(1)))
    rig.serve(feed(vehicle("a", ts=at(2)), ts=at(2)))

    seqs = []
    for seq, kind, readings in rig.batches():
        wire = {"v": 1, "org": OPERATOR, "gateway": "gtfs-rt-prato", "kind": kind, "seq": seq,
                "sent_at": "2026-11-24T07:02:00.000Z", "readings": readings}  # fmt: skip
        batch: Batch = decode_strict(orjson.dumps(wire))
        seqs.append(batch.seq)
    assert seqs == [0, 1]


@pytest.mark.parametrize(
    ("entity", "reason", "field"),
    [
        (vehicle("x", trip="LAM-BLU_NOWHERE"), "unknown_trip", "entity[1].vehicle.trip.trip_id"),
        (vehicle("x", route="LAM-VIOLA"), "unknown_route", "entity[1].vehicle.trip.route_id"),
        (vehicle("x", stop="PO-NOWHERE"), "unknown_stop", "entity[1].vehicle.stop_id"),
    ],
    ids=["trip", "route", "stop"],
)
def test_a_vehicle_referring_to_what_the_static_feed_lacks_is_refused_and_its_neighbours_kept(
    rig: Rig, entity: rt.FeedEntity, reason: str, field: str
) -> None:
    rig.serve(feed(vehicle("good", ts=at(1)), entity, vehicle("also-good", ts=at(1)), ts=at(1)))

    assert [r["sensor"] for r in rig.readings(SensorKind.TRANSIT_VEHICLE)] == ["good", "also-good"]
    assert rig.refusals() == [(reason, field, "not in the static feed")]
    assert rig.reader.stats.refused[reason] == 1


def test_an_added_trip_is_not_in_the_static_feed_and_is_not_refused(rig: Rig) -> None:
    rig.serve(feed(vehicle("x", trip="EXTRA-1", added=True, route="LAM-BLU"), ts=at(1)))

    assert rig.readings(SensorKind.TRANSIT_VEHICLE)[0]["fields"]["trip"] == "EXTRA-1"
    assert rig.refusals() == []


def test_a_vehicle_without_a_position_gives_no_reading_and_is_counted(rig: Rig) -> None:
    rig.serve(feed(vehicle("x", trip=TRIP, with_position=False), ts=at(1)))

    assert rig.readings(SensorKind.TRANSIT_VEHICLE) == []
    assert rig.reader.vehicles.without_position == 1


def test_a_fix_repeated_in_a_later_snapshot_is_sent_once(rig: Rig) -> None:
    rig.serve(feed(vehicle("a", ts=at(1)), ts=at(1)))
    rig.serve(feed(vehicle("a", ts=at(1)), vehicle("b", ts=at(2)), ts=at(2)))

    assert [(r["sensor"], r["ts"]) for r in rig.readings(SensorKind.TRANSIT_VEHICLE)] == [
        ("a", "2026-11-24T07:01:00.000Z"),
        ("b", "2026-11-24T07:02:00.000Z"),
    ]
    assert rig.reader.vehicles.repeated == 1


# ---------------------------------------------------------------------------------------------
# Snapshots: unchanged, 304, differential.


def test_an_unchanged_snapshot_is_stored_once(rig: Rig) -> None:
    body = feed(vehicle("a", ts=at(1)), ts=at(1))
    rig.served.etag_enabled = False  # a server without validators sends the same bytes again
    rig.serve(body)
    rig.serve(body)

    assert len(rig.batches()) == 1
    assert rig.reader.stats.unchanged == 1


def test_a_304_answers_a_conditional_request_and_nothing_is_processed(rig: Rig) -> None:
    body = feed(vehicle("a", ts=at(1)), ts=at(1))
    rig.serve(body)
    rig.serve(body)

    assert rig.served.requests[1]["If-None-Match"] == rig.served.etag
    assert "If-Modified-Since" in rig.served.requests[1]
    assert rig.reader.stats.not_modified == 1
    assert len(rig.batches()) == 1


def test_a_differential_feed_sends_only_what_changed_and_deletes_what_it_says(rig: Rig) -> None:
    rig.serve(feed(vehicle("a", ts=at(1)), vehicle("b", ts=at(1)), ts=at(1)))
    rig.serve(feed(vehicle("a", ts=at(2)), deleted("v-b"), ts=at(2), incrementality=DIFFERENTIAL))

    assert [(r["sensor"], r["ts"][11:16]) for r in rig.readings(SensorKind.TRANSIT_VEHICLE)] == [
        ("a", "07:01"), ("b", "07:01"), ("a", "07:02"),
    ]  # fmt: skip
    (url,) = rig.reader.urls.values()
    assert set(url.view._view) == {"v-a"}


def test_a_differential_feed_keeps_a_trip_it_does_not_repeat(rig: Rig) -> None:
    rig.serve(
        feed(
            trip_update(TRIP, [Stu(seq=1, delay=60)], start_date=DAY), ts=at(0.5), incrementality=DIFFERENTIAL
        )
    )
    rig.serve(feed(vehicle("a", ts=at(3)), ts=at(3.5), incrementality=DIFFERENTIAL))

    # Not repeated is not gone: the trip still runs, its stops pass with its last prediction
    # (60 s late: the third, due 08:02, passed at 08:03, before this snapshot's 08:03:30).
    assert [r["fields"]["stop_sequence"] for r in rig.readings(SensorKind.TRANSIT_DELAY)] == [1, 2, 3]


# ---------------------------------------------------------------------------------------------
# Trip updates: one delay reading per stop, as the trip passes it, at the scheduled time.


def delays(rig: Rig) -> list[tuple[int, str, str, int | None]]:
    return [
        (r["fields"]["stop_sequence"], r["ts"][11:19], r["fields"]["status"], r["fields"].get("delay_s"))
        for r in rig.readings(SensorKind.TRANSIT_DELAY)
    ]


def test_a_trip_s_delays_are_sent_per_stop_as_it_passes_each_at_the_scheduled_time(rig: Rig) -> None:
    # 08:02: two minutes late at the second stop, predicted on from there.
    rig.serve(feed(trip_update(TRIP, [Stu(seq=2, delay=120)], start_date=DAY), ts=at(2)))
    first = delays(rig)
    # 08:06: the bus passed stops 2-4 and is predicted 90 s late at the fifth.
    rig.serve(feed(trip_update(TRIP, [Stu(seq=5, delay=90)], start_date=DAY), ts=at(6)))

    assert first == []  # 08:01 + 120 s is still ahead: nothing passed yet
    assert delays(rig) == [
        (2, "07:01:00", "scheduled", 120),
        (3, "07:02:00", "scheduled", 120),
        (4, "07:03:00", "scheduled", 120),  # propagated from stop 2, as the reference says
    ]
    reading = rig.readings(SensorKind.TRANSIT_DELAY)[0]
    assert reading["sensor"] == sensor_id("PO-VENETO")  # the stop is the series, the trip a field
    assert reading["tags"] == {"route": "LAM-BLU"}
    assert reading["fields"]["trip"] == TRIP


def test_an_absolute_time_gives_the_delay_against_the_schedule(rig: Rig) -> None:
    rig.serve(
        feed(
            trip_update(TRIP, [Stu(seq=1, time=at(0) + 45), Stu(seq=3, delay=-30)], start_date=DAY), ts=at(3)
        )
    )

    assert delays(rig) == [(1, "07:00:00", "scheduled", 45), (2, "07:01:00", "scheduled", 45),
                           (3, "07:02:00", "scheduled", -30), (4, "07:03:00", "scheduled", -30)]  # fmt: skip


def test_a_trip_that_leaves_the_feed_sends_the_stops_it_passed_and_no_more(rig: Rig) -> None:
    rig.serve(feed(trip_update(TRIP, [Stu(seq=7, delay=60)], start_date=DAY), ts=at(10)))
    rig.serve(feed(ts=at(17.5)))  # the trip ended and left the feed

    assert [d[0] for d in delays(rig)] == [7, 8, 9]
    assert delays(rig)[-1] == (9, "07:16:00", "scheduled", 60)


def test_a_trip_that_comes_back_is_not_sent_twice(rig: Rig) -> None:
    update = trip_update(TRIP, [Stu(seq=1, delay=0)], start_date=DAY)
    rig.serve(feed(update, ts=at(2.5)))  # stops 1-3 passed
    rig.serve(feed(ts=at(3)))  # gone: stop 4, due 08:03, passed by its last prediction
    rig.serve(feed(update, ts=at(3.5)))  # back, still speaking of stop 1

    assert [d[0] for d in delays(rig)] == [1, 2, 3, 4]


def test_an_early_bus_is_sent_only_once_its_stop_is_due(rig: Rig) -> None:
    rig.serve(feed(trip_update(TRIP, [Stu(seq=6, delay=-240)], start_date=DAY), ts=at(4.5)))
    assert [d[0] for d in delays(rig)] == []  # stop 6 (08:08) was passed at 08:04: not due yet
    rig.serve(feed(trip_update(TRIP, [Stu(seq=7, delay=-200)], start_date=DAY), ts=at(7.5)))

    assert delays(rig) == [(6, "07:08:00", "scheduled", -240)]


def test_a_skipped_stop_and_no_data_are_said_so(rig: Rig) -> None:
    stus = [Stu(seq=2, delay=30), Stu(seq=3, skipped=True), Stu(seq=5, no_data=True)]
    rig.serve(feed(trip_update(TRIP, stus, start_date=DAY), ts=at(9)))

    assert delays(rig)[:5] == [
        (2, "07:01:00", "scheduled", 30), (3, "07:02:00", "skipped", None), (4, "07:03:00", "scheduled", 30),
        (5, "07:05:00", "no_data", None), (6, "07:08:00", "no_data", None),
    ]  # fmt: skip


def test_a_cancelled_trip_sends_cancelled_for_each_stop_as_its_time_comes(rig: Rig) -> None:
    rig.serve(feed(trip_update(TRIP, cancelled=True, start_date=DAY), ts=at(2.5)))
    rig.serve(feed(trip_update(TRIP, cancelled=True, start_date=DAY), ts=at(20)))

    assert [(d[0], d[2]) for d in delays(rig)] == [(i, "cancelled") for i in range(1, 10)]


def test_a_trip_level_delay_applies_to_every_stop(rig: Rig) -> None:
    rig.serve(feed(trip_update(TRIP, delay=150, start_date=DAY), ts=at(4)))

    assert delays(rig) == [(1, "07:00:00", "scheduled", 150), (2, "07:01:00", "scheduled", 150)]


def test_a_frequency_based_trip_runs_from_its_own_start_time(rig: Rig) -> None:
    circ = trip_update("CIRC_ALL_0_template", [Stu(seq=1, delay=0)], start_date=DAY, start_time="09:15:00")
    rig.serve(feed(circ, ts=epoch(DAY, 9, 17)))

    assert delays(rig)[0][:2] == (1, "08:15:00")  # 09:15 local, not the template's 07:00


def test_the_vehicle_of_a_trip_carries_its_delay(rig: Rig) -> None:
    rig.serve(
        feed(
            trip_update(TRIP, [Stu(seq=3, delay=75)], start_date=DAY),
            vehicle("a", trip=TRIP, ts=at(2)),
            ts=at(2),
        )
    )

    assert rig.readings(SensorKind.TRANSIT_VEHICLE)[0]["fields"]["delay_s"] == 75


@pytest.mark.parametrize(
    ("update", "reason", "field", "message"),
    [
        (trip_update("LAM-BLU_NOWHERE", [Stu(seq=1, delay=0)]), "unknown_trip",
         "entity[0].trip_update.trip.trip_id", "not in the static feed"),
        (trip_update(TRIP, [Stu(stop="PO-NOWHERE", delay=0)]), "unknown_stop",
         "entity[0].trip_update.stop_time_update[0].stop_id", "not in the static feed"),
        (trip_update(TRIP, [Stu(stop="PO-COIANO", delay=0)]), "unknown_stop",
         "entity[0].trip_update.stop_time_update[0].stop_id", f"not a stop of trip {TRIP}"),
        (trip_update(TRIP, [Stu(seq=42, delay=0)]), "unknown_stop",
         "entity[0].trip_update.stop_time_update[0].stop_sequence", f"trip {TRIP} has no such stop_sequence"),
        (trip_update(TRIP, [Stu(seq=2, stop="PO-ROMA", delay=0)]), "unknown_stop",
         "entity[0].trip_update.stop_time_update[0].stop_id",
         f"trip {TRIP} does not call at it as stop_sequence 2"),
        (trip_update(TRIP, route="LAM-ROSSA"), "unknown_route",
         "entity[0].trip_update.trip.route_id", f"trip {TRIP} runs route LAM-BLU in the static feed"),
    ],
    ids=["trip", "stop", "stop-not-on-trip", "stop-sequence", "stop-and-sequence-disagree",
         "route-of-another-trip"],
)  # fmt: skip
def test_a_trip_update_referring_to_what_the_static_feed_lacks_is_refused_with_the_reason(
    rig: Rig, update: rt.FeedEntity, reason: str, field: str, message: str
) -> None:
    rig.serve(feed(update, ts=at(5)))

    assert rig.refusals() == [(reason, field, message)]
    assert rig.readings(SensorKind.TRANSIT_DELAY) == []


def test_a_refused_entity_repeated_in_every_snapshot_is_refused_once(rig: Rig) -> None:
    bad = vehicle("x", trip="LAM-BLU_NOWHERE")
    rig.serve(feed(bad, ts=at(1)))
    rig.serve(feed(bad, vehicle("y", ts=at(2)), ts=at(2)))

    assert len(rig.refusals()) == 1
    assert rig.reader.stats.refusals_repeated == 1


# ---------------------------------------------------------------------------------------------
# Service alerts.


def test_a_service_alert_is_kept_with_its_informed_entities_and_active_periods(rig: Rig) -> None:
    alert = service_alert(
        "cantiere-piave", routes=["LAM-BLU"], stops=["PO-PIAVE"], trips=[TRIP],
        periods=[(at(0), at(120)), (at(1440), None)], header="Deviazione per cantiere",
        description="Viale Piave chiuso",
    )  # fmt: skip
    rig.serve(feed(alert, ts=at(1)))

    (kept,) = rig.reader.rt.alerts()
    assert (kept["alert_id"], kept["cause"], kept["effect"]) == ("cantiere-piave", "construction", "detour")
    assert (kept["header_text"], kept["description_text"]) == (
        "Deviazione per cantiere",
        "Viale Piave chiuso",
    )
    assert kept["periods"] == [(at(0) * 1000, at(120) * 1000), (at(1440) * 1000, None)]
    assert kept["informed"] == [{"route_id": "LAM-BLU"}, {"stop_id": "PO-PIAVE"}, {"trip_id": TRIP}]


def test_an_alert_gone_from_a_full_feed_is_ended_and_one_deleted_from_a_differential_feed_too(
    rig: Rig,
) -> None:
    rig.serve(feed(service_alert("a1", routes=["2"]), service_alert("a2", routes=["CIRC"]), ts=at(1)))
    rig.serve(feed(service_alert("a2", routes=["CIRC"]), ts=at(2)))
    after_full = [a["alert_id"] for a in rig.reader.rt.alerts()]
    rig.serve(feed(deleted("a2"), ts=at(3), incrementality=DIFFERENTIAL))

    assert after_full == ["a2"]
    assert rig.reader.rt.alerts() == []
    ended = {a["alert_id"]: a["ended_ms"] for a in rig.reader.rt.alerts(active_only=False)}
    assert ended == {"a1": (T0 + 60) * 1000, "a2": (T0 + 90) * 1000}  # by the reader's clock


def test_an_alert_about_an_unknown_stop_is_refused(rig: Rig) -> None:
    rig.serve(feed(service_alert("a1", stops=["PO-NOWHERE"]), ts=at(1)))

    assert rig.refusals() == [
        ("unknown_stop", "entity[0].alert.informed_entity[0].stop_id", "not in the static feed")
    ]
    assert rig.reader.rt.alerts() == []


# ---------------------------------------------------------------------------------------------
# The feed misbehaving: stale, timeout, errors, garbage.


def test_a_header_that_stops_advancing_makes_the_feed_stale_and_advancing_again_clears_it(rig: Rig) -> None:
    rig.serve(feed(vehicle("a", ts=at(1)), ts=at(1)), at_s=at(1))
    rig.serve(feed(vehicle("a", ts=at(2)), ts=at(1)), at_s=at(2))  # new content, same header time
    rig.serve(feed(vehicle("a", ts=at(3)), ts=at(1)), at_s=at(4))
    stale = rig.reader.health(at(4))
    rig.serve(feed(vehicle("a", ts=at(5)), ts=at(5)), at_s=at(5))

    assert stale["is_stale"] is True
    assert stale["feeds"]["all"]["feed_age_s"] == 180.0
    assert rig.reader.health(at(5))["is_stale"] is False


def test_a_timeout_is_counted_backs_off_and_the_next_poll_works(rig: Rig) -> None:
    rig.served.delay_s = 2.0
    rig.serve(feed(vehicle("a", ts=at(1)), ts=at(1)))
    (url,) = rig.reader.urls.values()
    backoff = url.next_at - rig.clock.now
    rig.served.delay_s = 0.0
    rig.serve(feed(vehicle("a", ts=at(2)), ts=at(2)))

    assert rig.reader.stats.fetch_errors["timeout"] == 1
    assert backoff == 60  # interval 30 s, doubled once
    assert len(rig.readings(SensorKind.TRANSIT_VEHICLE)) == 1


def test_a_server_asking_to_retry_later_is_heard(rig: Rig) -> None:
    rig.served.status = 503
    rig.serve(b"")
    (url,) = rig.reader.urls.values()

    assert rig.reader.stats.fetch_errors["http"] == 1
    assert url.next_at - rig.clock.now == 60  # max(backoff 60 s, Retry-After 7 s)


def test_a_garbage_body_is_refused_with_the_reason_and_the_service_goes_on(rig: Rig) -> None:
    rig.serve(b"<html>502 Bad Gateway</html>")
    rig.serve(b"<html>502 Bad Gateway</html>" + b" ")
    rig.serve(feed(vehicle("a", ts=at(3)), ts=at(3)))

    reasons = [(r[0], r[1]) for r in rig.refusals()]
    assert reasons == [("bad_feed", "body"), ("bad_feed", "body")]
    assert "not a GTFS-Realtime FeedMessage" in rig.refusals()[0][2]
    assert len(rig.readings(SensorKind.TRANSIT_VEHICLE)) == 1


def test_an_empty_body_is_not_a_feed(rig: Rig) -> None:
    rig.serve(b"")

    assert rig.refusals()[0][:2] == ("bad_feed", "header")


def test_the_seq_survives_a_restart_of_the_reader(rig: Rig, store: TransitStore) -> None:
    rig.serve(feed(vehicle("a", ts=at(1)), ts=at(1)))
    rig.reader.rt.sent([o.seq for o in rig.reader.rt.pending()])
    again = TransitReader(rig.reader.config, store, None, wall=rig.clock)
    rig.reader = again
    rig.serve(feed(vehicle("a", ts=at(2)), ts=at(2)))

    assert [seq for seq, _k, _r in rig.batches()] == [1]
    again.http.close()


# ---------------------------------------------------------------------------------------------
# Configuration.


def test_an_api_key_from_a_secret_file_is_sent_as_the_operator_asks(
    store: TransitStore, tmp_path: Path
) -> None:
    secret = tmp_path / "key"
    secret.write_text("s3cr3t\n", encoding="utf-8")
    served = Served(body=feed(ts=T0))
    with feed_server(served) as url:
        cfg = config(url).model_copy(
            update={"api_key": ApiKey(file=secret, header="Authorization", prefix="Bearer ")}
        )
        reader = TransitReader(cfg, store, None, wall=Clock(T0))
        reader.poll(T0)
        reader.http.close()

    assert served.requests[0]["Authorization"] == "Bearer s3cr3t"


def test_a_bad_config_names_the_entry_and_the_value(tmp_path: Path) -> None:
    path = tmp_path / "reader.yaml"
    path.write_text("operator: Autolinee\nfeeds: [{url: ftp://x}]\nintervall_s: 5\n", encoding="utf-8")

    with pytest.raises(ReaderConfigError) as info:
        load_config(path)

    text = str(info.value)
    assert "operator:" in text
    assert "'Autolinee'" in text
    assert "feeds.0.url" in text
    assert "intervall_s" in text


def test_an_api_key_goes_in_a_header_or_a_parameter_not_both(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exactly one of header or param"):
        ApiKey(file=tmp_path / "k", header="x-api-key", param="key")


def test_the_sample_config_is_valid() -> None:
    from support import REPO  # noqa: PLC0415

    cfg = load_config(REPO / "cloud" / "transit" / "sample-reader.yaml")

    assert cfg.operator == OPERATOR
    assert isinstance(cfg.feeds[0], FeedUrl)
