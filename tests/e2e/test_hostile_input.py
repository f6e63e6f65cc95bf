"""Hostile input never stops ingest, never corrupts its neighbours, and always lands in dead-letter."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cloud.core.settings import CloudSettings
from cloud.dev.servers import Mosquitto
from cloud.io.influx.client import InfluxClient
from edge.contract import format_ts

from support import Recorder, cloud_services, count_points, unique, wait_until

pytestmark = pytest.mark.e2e

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def reading(sensor: str, minute: int, occupied: Any = 100, **extra: Any) -> dict[str, Any]:
    r: dict[str, Any] = {
        "sensor": sensor,
        "ts": format_ts(T0 + timedelta(minutes=minute)),
        "fields": {"occupied": occupied, "capacity": 200, "occupancy_pct": 50.0},
    }
    r.update(extra)
    return r


def batch(
    org: str, seq: int, readings: list[dict[str, Any]], gateway: str = "gw-x", kind: str = "parking"
) -> dict[str, Any]:
    return {"v": 1, "org": org, "gateway": gateway, "kind": kind, "seq": seq,
            "sent_at": format_ts(datetime.now(UTC)), "readings": readings}  # fmt: skip


def publish_all(port: int, messages: list[tuple[str, bytes]]) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=unique("hostile-"))
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for topic, payload in messages:
            client.publish(topic, payload, qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def test_malformed_messages_are_dead_lettered_and_their_valid_neighbours_stored(
    settings: CloudSettings, mosquitto: Mosquitto, influx_db: InfluxClient, org: str
) -> None:
    data = f"sr/v1/{org}/gw-x/data/parking"
    good = [reading("p-good", m) for m in range(4)]
    two_mb = orjson.dumps(batch(org, 90, [reading("p-big", 0, tags={"zone": "x" * 60})])) + b" " * (
        2 * 1024 * 1024
    )
    hostile: list[tuple[str, bytes, str, str]] = [  # topic, payload, expected reason, expected field
        (data, b'{"v": 1, "org": ', "bad_json", "payload"),
        (data, b"[1, 2, 3]", "schema", "payload"),
        (data, two_mb, "too_large", "payload"),
        (f"sr/v1/{org}/gw-x/data/unicorn", orjson.dumps(batch(org, 91, good[:1])), "topic", "topic.kind"),
        (data, orjson.dumps(batch(org, 92, good[:1], gateway="gw-y")), "schema", "org/gateway/kind"),
    ]
    # Batches whose bad readings sit beside good ones: only the bad reading goes.
    mixed: list[tuple[dict[str, Any], str, str]] = [  # bad reading, expected reason, expected field
        (reading("p-type", 10, occupied="lots"), "schema", "readings[1].fields.occupied"),
        (reading("p-nan", 11, occupied=float("nan")), "schema", "readings[1].fields.occupied"),
        (reading("p-tag", 12, tags={"zone": "a,b"}), "schema", "readings[1].tags.zone"),
        (reading("p-tag", 13, tags={"zone": "a b"}), "schema", "readings[1].tags.zone"),
        (reading("p-tag", 14, tags={"zone": "a=b"}), "schema", "readings[1].tags.zone"),
        (reading("p-tag", 15, tags={"zone": "a\nb"}), "schema", "readings[1].tags.zone"),
        (reading("p-tag", 16, tags={"org": "someone-else"}), "schema", "readings[1].tags.org"),
        (reading("p-1 occupied=1i 0\nparking,org=evil", 17), "schema", "readings[1].sensor"),
        (reading("p'; DROP TABLE alerts;--", 18), "schema", "readings[1].sensor"),
        (reading("p-future", 0, ts=format_ts(datetime.now(UTC) + timedelta(days=400))), "policy", "ts"),
        (reading("p-naive", 19, ts="2026-01-01T00:00:00"), "schema", "readings[1].ts"),
        (reading("p-range", 20, occupied=-5), "schema", "readings[1].fields.occupied"),
    ]
    messages: list[tuple[str, bytes]] = [(data, orjson.dumps(batch(org, 0, good[:2])))]
    for topic, payload, _, _ in hostile:
        messages.append((topic, payload))
    for i, (bad, _, _) in enumerate(mixed):
        neighbour = reading(f"p-neighbour-{i}", 30 + i)
        # Python's json emits NaN, as a careless gateway would; orjson would refuse to.
        messages.append((data, json.dumps(batch(org, 10 + i, [neighbour, bad])).encode()))
    messages.append((data, orjson.dumps(batch(org, 99, good[2:]))))  # after all of it, ingest still works

    recorder = Recorder(
        "127.0.0.1", mosquitto.port, [f"sr/v1/deadletter/{org}/#", "sr/v1/deadletter/unknown/#"]
    ).start()
    try:
        with cloud_services(settings) as (ingest, _):
            publish_all(mosquitto.port, messages)
            expected_points = len(good) + len(mixed)
            wait_until(lambda: count_points(influx_db) == expected_points, 20, what="valid readings stored")
            n_dead = len(hostile) + len(mixed)
            wait_until(
                lambda: len(recorder.on(f"sr/v1/deadletter/{org}/")) >= n_dead,
                20,
                what=f"{n_dead} dead letters, got {len(recorder.on(f'sr/v1/deadletter/{org}/'))}",
            )
            assert ingest.stats.snapshot()["deadletters"] == n_dead

        letters = [orjson.loads(p) for _, p in recorder.on(f"sr/v1/deadletter/{org}/")]
        got = sorted((d["reason"], d["field"]) for d in letters)
        want = sorted([(r, f) for _, _, r, f in hostile] + [(r, f) for _, r, f in mixed])
        assert got == want
        for d in letters:
            assert d["message"], "every dead letter says why"
            assert len(orjson.dumps(d)) < 4096, "a dead letter stays small even for a 2 MB payload"
        too_large = next(d for d in letters if d["reason"] == "too_large")
        assert too_large["payload_size"] == len(two_mb)

        rows = influx_db.series('SELECT "occupied", "occupancy_pct", "sensor", "zone" FROM "parking"')[0][
            "values"
        ]
        sensors = sorted({r[3] for r in rows})
        assert sensors == sorted({"p-good", *(f"p-neighbour-{i}" for i in range(len(mixed)))})
        assert all(r[1] == 100 and r[2] == 50.0 for r in rows), "neighbours stored with their own values"
        assert not influx_db.series("SHOW MEASUREMENTS WITH MEASUREMENT =~ /evil|DROP/")
        kept = influx_db.series('SELECT count("count") FROM "sitroom_deadletter"')
        assert kept[0]["values"][0][1] == n_dead, "dead letters are kept in InfluxDB, not just published"
    finally:
        recorder.stop()
