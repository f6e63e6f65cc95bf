"""A point InfluxDB refuses goes to dead-letter with InfluxDB's message; its batch neighbours are written."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cloud.core.settings import CloudSettings
from cloud.dev.servers import Mosquitto
from cloud.ingest.consumer import Ingest
from cloud.io.influx.client import InfluxClient
from cloud.io.influx.lineprotocol import timestamp_ns
from edge.contract import SensorKind, format_ts, topics

from support import Recorder, count_points, unique, wait_until

pytestmark = pytest.mark.e2e


def test_a_field_type_conflict_is_dead_lettered_with_influxdbs_message_and_neighbours_are_stored(
    settings: CloudSettings, mosquitto: Mosquitto, influx_db: InfluxClient, org: str
) -> None:
    ingest = Ingest(settings.model_copy(update={"write_linger_ms": 500}))
    thread = threading.Thread(target=ingest.run, daemon=True)
    recorder = Recorder("127.0.0.1", mosquitto.port, [f"sr/v1/deadletter/{org}/#"]).start()
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=unique("pub-"))
    try:
        thread.start()
        wait_until(ingest.conn.subscribed.is_set, 30, what="ingest subscribed")
        # Someone wrote `vehicles` as a string first: InfluxDB now refuses integers in that field.
        wait_until(lambda: influx_db.series(f'SHOW RETENTION POLICIES ON "{influx_db.database}"'), 10)
        when = datetime.now(UTC) - timedelta(minutes=5)
        # Same shard as the readings below (field types are fixed per shard).
        influx_db.write([f'traffic,org=other,gateway=gw,sensor=x vehicles="many" {timestamp_ns(when)}'])
        ts = format_ts(when)
        traffic = {
            "v": 1,
            "org": org,
            "gateway": "gw-t",
            "kind": "traffic",
            "seq": 0,
            "sent_at": ts,
            "readings": [
                {
                    "sensor": f"t-{i}",
                    "ts": ts,
                    "fields": {
                        "vehicles": 10,
                        "heavy": 1,
                        "interval_s": 60,
                        "speed_kmh": 40.0,
                        "occupancy_pct": 5.0,
                    },
                }
                for i in range(3)
            ],
        }
        parking = {"v": 1, "org": org, "gateway": "gw-p", "kind": "parking", "seq": 0, "sent_at": ts,
                   "readings": [{"sensor": f"p-{i}", "ts": ts, "fields": {"occupied": i, "capacity": 10,
                                 "occupancy_pct": i * 10.0}} for i in range(5)]}  # fmt: skip
        pub.connect("127.0.0.1", mosquitto.port)
        pub.loop_start()
        for gw, kind, body in (("gw-t", SensorKind.TRAFFIC, traffic), ("gw-p", SensorKind.PARKING, parking)):
            pub.publish(topics.data(org, gw, kind), orjson.dumps(body), qos=1).wait_for_publish(10)

        wait_until(lambda: len(recorder.on(f"sr/v1/deadletter/{org}/")) >= 3, 60, what="3 dead letters")
        letters = [orjson.loads(p) for _, p in recorder.on(f"sr/v1/deadletter/{org}/")]
        assert {(d["reason"], d["sensor"]) for d in letters} == {("influx", f"t-{i}") for i in range(3)}
        assert all("field type conflict" in d["message"] for d in letters)
        wait_until(lambda: count_points(influx_db) >= 5, 30, what="the parking neighbours stored")
        stored = influx_db.series(f'SELECT count("occupied") FROM "parking" WHERE "org"=\'{org}\'')
        assert stored[0]["values"][0][1] == 5
        snap = ingest.stats.snapshot()
        assert snap["deadletters_by_reason"] == {"influx": 3}
        assert (snap["readings_written"], snap["readings_rejected"]) == (5, 3)
    finally:
        pub.disconnect()
        pub.loop_stop()
        recorder.stop()
        ingest.stop()
        thread.join(30)
