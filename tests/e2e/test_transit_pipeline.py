"""A GTFS-Realtime feed end to end: local HTTP server -> reader -> Mosquitto -> ingest -> InfluxDB.

The reader publishes like a gateway (batches with its seq, status, health), so ingest admits,
writes and counts its readings as any gateway's: what the reader published is what InfluxDB
holds, once; what it refused is dead-lettered with the reason; a stale feed raises an alert.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from jsonschema import Draft7Validator
from support_transit import (
    DIFFERENTIAL,
    PRATO_AREA,
    Served,
    Stu,
    deleted,
    feed,
    feed_server,
    prato_feed_zip,
    service_alert,
    trip_update,
    vehicle,
)

from cloud.core.settings import CloudSettings
from cloud.dev.servers import Mosquitto
from cloud.io.influx.client import InfluxClient
from cloud.transit.realtime.config import ReaderConfig
from cloud.transit.realtime.publisher import Publisher
from cloud.transit.realtime.reader import STALE_RULE, TransitReader
from cloud.transit.store import TransitStore
from edge.contract import BrokerAddress

from support import REPO, Recorder, cloud_services, wait_until

pytestmark = pytest.mark.e2e

SOURCE = "gtfs-rt-test"
TRIP = "LAM-BLU_FER_0_0800"
ASYNCAPI = yaml.safe_load((REPO / "docs" / "contract" / "asyncapi.yaml").read_text(encoding="utf-8"))


def schema_validator(name: str) -> Draft7Validator:
    components = ASYNCAPI["components"]
    return Draft7Validator({"allOf": [components["schemas"][name]], "components": components})


@pytest.fixture
def store(tmp_path: Path, org: str) -> Iterator[TransitStore]:
    s = TransitStore.open(f"sqlite:///{tmp_path / 'transit.db'}")
    s.import_feed(prato_feed_zip(), operator=org, area=PRATO_AREA)
    yield s
    s.close()


def stored(influx: InfluxClient, measurement: str) -> list[dict[str, Any]]:
    rows = []
    for series in influx.series(f'SELECT * FROM "{measurement}"'):
        for values in series["values"]:
            rows.append(dict(zip(series["columns"], values, strict=True)))
    return rows


def test_a_gtfs_rt_feed_reaches_influxdb_through_ingest_counted_once_with_refusals_dead_lettered(
    settings: CloudSettings, mosquitto: Mosquitto, influx_db: InfluxClient, org: str, store: TransitStore
) -> None:
    now = int(time.time())
    past_day = (datetime.now(UTC) - timedelta(days=2)).date()  # the trip ran two days ago: all stops passed
    recorder = Recorder(
        "127.0.0.1", mosquitto.port, [f"sr/v1/{org}/#", f"sr/v1/deadletter/{org}/#", f"sr/v1/alerts/{org}/#"]
    ).start()
    served = Served()
    with cloud_services(settings) as (ingest, _rules), feed_server(served) as url:
        config = ReaderConfig.model_validate(
            {"operator": org, "source": SOURCE, "feeds": [{"url": url, "name": "all"}], "stale_after_s": 60}
        )
        publisher = Publisher(BrokerAddress.parse(mosquitto.url), org, SOURCE).start()
        reader = TransitReader(config, store, publisher)

        def serve(body: bytes, at: float) -> None:
            served.body = body
            for u in reader.urls.values():
                u.next_at = 0
            reader.poll(at)

        first = feed(
            vehicle("4127", 43.8786, 11.1050, ts=now - 20, trip=TRIP, bearing=90.0, speed_ms=4.0),
            vehicle("4128", 43.8712, 11.0928, ts=now - 15),
            vehicle("4129", ts=now - 15, trip="LAM-BLU_NOWHERE"),  # refused: unknown trip
            trip_update(TRIP, [Stu(seq=1, delay=60)], start_date=past_day),
            service_alert("cantiere-piave", routes=["LAM-BLU"], stops=["PO-PIAVE"]),
            ts=now - 10,
        )
        serve(first, now)
        serve(first, now + 30)  # 304: nothing new
        serve(b"<html>bad gateway</html>", now + 60)  # refused whole, the service goes on
        serve(feed(vehicle("4127", 43.8790, 11.1030, ts=now - 5, trip=TRIP), deleted("v-4128"), ts=now - 5,
                   incrementality=DIFFERENTIAL), now + 90)  # fmt: skip
        # Same header time, new content, long after: the feed is stale.
        serve(feed(vehicle("4127", 43.8795, 11.1010, ts=now - 4, trip=TRIP), ts=now - 5), now + 200)
        publisher.health(reader.health(now + 200))

        published = reader.stats.readings_published
        assert published == 2 + 9 + 1 + 1  # two vehicles, the trip's nine stops, two more fixes
        assert reader.rt.queued() == (0, 0)  # the outbox is empty: every batch acknowledged

        def stored_count() -> int:
            return len(stored(influx_db, "transit_vehicle")) + len(stored(influx_db, "transit_delay"))

        wait_until(lambda: stored_count() == published, 30, what="every published reading stored")
        wait_until(lambda: stored(influx_db, "sitroom_gateway_health"), 10, what="the reader's health")
        snapshot = ingest.stats.snapshot()
        publisher.stop()

    assert snapshot["readings_written"] == published  # counted through ingest, none refused
    assert snapshot["deadletters"] == 0
    seq = snapshot["gateways"][f"{org}/{SOURCE}"]
    assert (seq["gaps"], seq["duplicates"]) == (0, 0)

    vehicles = {(r["sensor"], r["time"]): r for r in stored(influx_db, "transit_vehicle")}
    first_fix = vehicles[("4127", (now - 20) * 1000)]
    assert (first_fix["lat"], first_fix["lon"]) == (43.8786, 11.105)
    assert (first_fix["trip"], first_fix["route"]) == (TRIP, "LAM-BLU")
    assert first_fix["speed_kmh"] == 14.4
    delays = sorted(stored(influx_db, "transit_delay"), key=lambda r: r["stop_sequence"])
    assert [(r["stop_sequence"], r["status"], r["delay_s"]) for r in delays] == [
        (i, "scheduled", 60) for i in range(1, 10)
    ]

    deadletters = [orjson.loads(p) for _t, p in recorder.on(f"sr/v1/deadletter/{org}/{SOURCE}")]
    assert sorted(d["reason"] for d in deadletters) == ["bad_feed", "unknown_trip"]
    for d in deadletters:
        schema_validator("Deadletter").validate(d)
    assert {r["reason"] for r in reader.rt.refusals()} == {"bad_feed", "unknown_trip"}

    alerts = [orjson.loads(p) for _t, p in recorder.on(f"sr/v1/alerts/{org}/{STALE_RULE}/")]
    assert alerts[-1]["state"] == "firing"
    schema_validator("Alert").validate(alerts[-1])

    health = [orjson.loads(p) for _t, p in recorder.on(f"sr/v1/{org}/{SOURCE}/health")]
    schema_validator("Health").validate(health[-1])
    assert health[-1]["is_stale"] is True
    status = [orjson.loads(p) for _t, p in recorder.on(f"sr/v1/{org}/{SOURCE}/status")]
    assert [s["state"] for s in status] == ["online", "offline"]
    # The service alert was kept while the feed carried it; the last, full snapshot lifted it.
    (kept,) = reader.rt.alerts(active_only=False)
    assert (kept["alert_id"], kept["ended_ms"]) == ("cantiere-piave", (now + 200) * 1000)
    assert kept["informed"] == [{"route_id": "LAM-BLU"}, {"stop_id": "PO-PIAVE"}]
    recorder.stop()


def test_readings_kept_while_the_broker_is_down_are_published_after_it_returns(
    restartable_broker: Mosquitto, tmp_path: Path, org: str, store: TransitStore
) -> None:
    now = int(time.time())
    served = Served(body=feed(vehicle("4127", ts=now - 10), ts=now - 10))
    recorder = Recorder("127.0.0.1", restartable_broker.port, [f"sr/v1/{org}/{SOURCE}/data/#"]).start()
    wait_until(recorder.subscribed.is_set, 5, what="the recorder's subscription")
    with feed_server(served) as url:
        config = ReaderConfig.model_validate({"operator": org, "source": SOURCE, "feeds": [{"url": url}]})
        broker = BrokerAddress.parse(restartable_broker.url)
        publisher = Publisher(broker, org, SOURCE, ack_timeout_s=1).start()
        reader = TransitReader(config, store, publisher)
        restartable_broker.stop()
        wait_until(lambda: not publisher.conn.connected.is_set(), 10, what="the reader to notice")
        reader.poll(now)
        kept = reader.rt.queued()
        restartable_broker.start()
        wait_until(publisher.conn.connected.is_set, 30, what="the reader to reconnect")
        wait_until(lambda: reader.flush() or reader.rt.queued() == (0, 0), 20, what="the outbox to drain")
        publisher.stop()
        reader.http.close()

    assert kept == (1, 1)
    wait_until(lambda: recorder.on(f"sr/v1/{org}/{SOURCE}/data/transit_vehicle"), 10, what="the batch")
    recorder.stop()
