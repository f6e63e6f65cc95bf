"""With a sensor directory, ingest stores only readings of gateways and sensors it lists."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cloud.core.settings import CloudSettings
from cloud.dev.servers import Mosquitto
from cloud.io.influx.client import InfluxClient
from edge.contract import format_ts

from support import REPO, Recorder, cloud_services, count_points, unique, wait_until

pytestmark = pytest.mark.e2e
ORG = "comune-prato"  # the organisation of firmware_configs/gw-mercatale.yaml and gw-stazione.yaml


def batch(gateway: str, sensor: str, seq: int) -> tuple[str, bytes]:
    ts = format_ts(datetime.now(UTC) - timedelta(minutes=5))
    body = {
        "v": 1, "org": ORG, "gateway": gateway, "kind": "parking", "seq": seq, "sent_at": ts,
        "readings": [{"sensor": sensor, "ts": ts,
                      "fields": {"occupied": 10, "capacity": 100, "occupancy_pct": 10.0}}],
    }  # fmt: skip
    return f"sr/v1/{ORG}/{gateway}/data/parking", orjson.dumps(body)


def test_unknown_gateways_and_sensors_are_dead_lettered_with_the_reason(
    settings: CloudSettings, mosquitto: Mosquitto, influx_db: InfluxClient
) -> None:
    checked = settings.model_copy(
        update={
            "org_filter": ORG,
            "sensor_directory": str(REPO / "firmware_configs"),
            "instance": unique("dir-"),
        }
    )
    messages = [
        batch("gw-mercatale", "p-mercatale", 0),  # listed: stored
        batch("gw-mercatale", "p-nowhere", 1),  # not a sensor of this gateway
        batch("gw-stazione", "p-mercatale", 0),  # a sensor of another gateway
        batch("gw-ghost", "p-mercatale", 0),  # a gateway nobody installed
    ]
    recorder = Recorder("127.0.0.1", mosquitto.port, [f"sr/v1/deadletter/{ORG}/#"]).start()
    try:
        with cloud_services(checked):
            client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=unique("pub-"))
            client.connect("127.0.0.1", mosquitto.port)
            client.loop_start()
            for topic, payload in messages:
                client.publish(topic, payload, qos=1).wait_for_publish(10)
            client.disconnect()
            client.loop_stop()
            wait_until(lambda: len(recorder.on(f"sr/v1/deadletter/{ORG}/")) >= 3, 20, what="3 dead letters")
            wait_until(lambda: count_points(influx_db) == 1, 20, what="the listed sensor's reading")
    finally:
        recorder.stop()
    letters = sorted(
        (orjson.loads(p)["gateway"], orjson.loads(p)["message"]) for _, p in recorder.on("sr/v1/")
    )
    assert [g for g, _ in letters] == ["gw-ghost", "gw-mercatale", "gw-stazione"]
    assert all(orjson.loads(p)["reason"] == "unknown_sensor" for _, p in recorder.on("sr/v1/"))
    messages_by_gateway = dict(letters)
    assert "unknown gateway 'gw-ghost'" in messages_by_gateway["gw-ghost"]
    assert "p-nowhere" in messages_by_gateway["gw-mercatale"]
    assert "belongs to gateway 'gw-mercatale'" in messages_by_gateway["gw-stazione"]
