"""One verdict on a reading, end to end on Mosquitto and InfluxDB: what ingest dead-letters raises
no alert, and a gateway's declared sensor kinds are what ingest and the rules hold readings to."""

from __future__ import annotations

import textwrap
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
from gateway_faults import SPEED, sim_start
from paho.mqtt.enums import CallbackAPIVersion

from cloud.core.settings import CloudSettings
from cloud.dev.servers import Mosquitto
from cloud.io.influx.client import InfluxClient
from edge.contract import SensorKind, format_ts, topics
from edge.simulators.clock import SimClock
from gateway.agent import Agent
from gateway.config import parse

from support import Recorder, cloud_services, count_points, wait_until

pytestmark = pytest.mark.e2e
GATEWAY = "gw-mercatale"
FULL = {"occupied": 99, "capacity": 100, "occupancy_pct": 99.0}  # above the rule's 95 %


class Publisher:
    """A plain MQTT client publishing at QoS 1, as a gateway (or a forger) would."""

    def __init__(self, port: int) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.seq = 0

    def publish(self, topic: str, body: dict[str, Any] | bytes, *, retain: bool = False) -> None:
        payload = body if isinstance(body, bytes) else orjson.dumps(body)
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    def batch(self, org: str, kind: SensorKind, readings: list[dict[str, Any]]) -> None:
        self.seq += 1
        now = format_ts(datetime.now(UTC))
        body = {"v": 1, "org": org, "gateway": GATEWAY, "kind": kind.value, "seq": self.seq,
                "sent_at": now, "readings": readings}  # fmt: skip
        self.publish(topics.data(org, GATEWAY, kind), body)

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def publisher(mosquitto: Mosquitto) -> Iterator[Publisher]:
    p = Publisher(mosquitto.port)
    yield p
    p.stop()


def reading(sensor: str, ts: datetime, fields: dict[str, Any]) -> dict[str, Any]:
    return {"sensor": sensor, "ts": format_ts(ts), "fields": fields}


def test_a_reading_ingest_dead_letters_raises_no_alert_while_its_valid_neighbour_does(
    settings: CloudSettings,
    mosquitto: Mosquitto,
    influx_db: InfluxClient,
    publisher: Publisher,
    org: str,
    tmp_path: Path,
) -> None:
    # The installation records list two car parks and a bay on the gateway; its meta declares them.
    records = tmp_path / "records"
    records.mkdir()
    (records / f"{GATEWAY}.yaml").write_text(
        textwrap.dedent(
            f"""\
            id: {GATEWAY}
            org: {org}
            sensors:
              - {{driver: sim_parking, id: p-mercatale, place: mercatale}}
              - {{driver: sim_parking, id: p-castello, place: castello}}
              - {{driver: sim_parking_spot, id: s-mazzoni-01, street: via-mazzoni}}
            """
        )
    )
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n  - {rule: threshold, name: parking-full, kind: parking, field: occupancy_pct,\n"
        "     above: 95, clear: 90, hold_min: 0, severity: warning}\n"
    )
    checked = settings.model_copy(update={"sensor_directory": str(records)})
    publisher.publish(
        topics.meta(org, GATEWAY),
        {"v": 1, "org": org, "gateway": GATEWAY, "sensors": [
            {"id": "p-mercatale", "kind": "parking", "driver": "sim_parking"},
            {"id": "p-castello", "kind": "parking", "driver": "sim_parking"},
            {"id": "s-mazzoni-01", "kind": "parking_spot", "driver": "sim_parking_spot"},
        ]},
        retain=True,
    )  # fmt: skip
    recorder = Recorder(
        "127.0.0.1", mosquitto.port, [f"sr/v1/alerts/{org}/#", f"sr/v1/deadletter/{org}/#"]
    ).start()
    now = datetime.now(UTC)
    try:
        with cloud_services(checked, rules_file=rules) as (ingest, rules_service):
            # Both learn the declaration from the retained meta before any reading is judged.
            wait_until(
                lambda: ingest.admission.generation and rules_service.admission.generation,
                20,
                what="the meta",
            )
            # A full car park, said by a bay: not the kind its gateway declared for it.
            publisher.batch(
                org, SensorKind.PARKING, [reading("s-mazzoni-01", now - timedelta(minutes=2), FULL)]
            )
            publisher.batch(
                org,
                SensorKind.PARKING,
                [
                    reading("p-mercatale", now + timedelta(hours=1), FULL),  # beyond max_future_s
                    reading("p-ghost", now - timedelta(minutes=1), FULL),  # not in the records
                    reading("p-mercatale", now - timedelta(minutes=1), {**FULL, "occupancy_pct": 100.5}),
                    reading("p-castello", now - timedelta(minutes=1), FULL),  # the valid neighbour
                ],
            )
            wait_until(lambda: recorder.on(f"sr/v1/alerts/{org}/"), 30, what="the neighbour's alert")
            wait_until(lambda: len(recorder.on(f"sr/v1/deadletter/{org}/")) >= 4, 30, what="4 dead letters")
            wait_until(lambda: count_points(influx_db) == 1, 30, what="the neighbour's reading stored")
            published = rules_service.published
    finally:
        recorder.stop()
        publisher.publish(topics.meta(org, GATEWAY), b"", retain=True)

    alerts = [orjson.loads(p) for _, p in recorder.on(f"sr/v1/alerts/{org}/")]
    assert [(a["entity"], a["state"]) for a in alerts] == [("p-castello", "firing")]
    assert published == 1
    letters = [orjson.loads(p) for _, p in recorder.on(f"sr/v1/deadletter/{org}/")]
    assert sorted((d["sensor"], d["reason"]) for d in letters) == [
        ("p-ghost", "unknown_sensor"),
        ("p-mercatale", "policy"),
        ("p-mercatale", "schema"),
        ("s-mazzoni-01", "wrong_kind"),
    ]


def test_ingest_refuses_a_reading_of_a_kind_its_gateway_did_not_declare(
    settings: CloudSettings,
    mosquitto: Mosquitto,
    influx_db: InfluxClient,
    publisher: Publisher,
    org: str,
    tmp_path: Path,
) -> None:
    gateway = parse(
        {"id": GATEWAY, "org": org, "batch": {"max_interval_s": 0.2},
         "sensors": [{"driver": "sim_parking", "id": "p-mercatale", "place": "mercatale"}]}
    )  # fmt: skip
    agent = Agent(gateway, clock=SimClock(SPEED, sim_start()), state_dir=tmp_path, broker_url=mosquitto.url)
    recorder = Recorder("127.0.0.1", mosquitto.port, [f"sr/v1/deadletter/{org}/#"]).start()
    stop = threading.Event()
    try:
        with cloud_services(settings) as (ingest, _):
            thread = threading.Thread(target=agent.run, args=(stop,), daemon=True)
            thread.start()
            # The gateway's own meta (published as it connects) teaches ingest p-mercatale's kind.
            wait_until(lambda: ingest.admission.generation, 20, what="the gateway's meta")
            counter = {"vehicles": 10, "heavy": 1, "interval_s": 60, "speed_kmh": 40.0, "occupancy_pct": 5.0}
            publisher.batch(
                org,
                SensorKind.TRAFFIC,
                [reading("p-mercatale", datetime.now(UTC) - timedelta(minutes=1), counter)],
            )
            letter = orjson.loads(wait_until(lambda: recorder.on("sr/v1/"), 30, what="the dead letter")[0][1])
            wait_until(lambda: count_points(influx_db) > 0, 30, what="the gateway's own readings")
            stop.set()
            thread.join(60)
    finally:
        stop.set()
        recorder.stop()
        publisher.publish(topics.meta(org, GATEWAY), b"", retain=True)

    assert (letter["reason"], letter["field"], letter["sensor"]) == ("wrong_kind", "kind", "p-mercatale")
    assert (
        letter["message"]
        == "sensor 'p-mercatale' (sim_parking) is declared by gateway 'gw-mercatale' as 'parking'"
    )
    assert not influx_db.series('SELECT count("vehicles") FROM "traffic"')
    assert influx_db.series('SELECT count("occupied") FROM "parking"')


def test_a_broken_or_forged_meta_is_dead_lettered_naming_the_field_and_teaches_nothing(
    settings: CloudSettings, mosquitto: Mosquitto, publisher: Publisher, org: str
) -> None:
    recorder = Recorder("127.0.0.1", mosquitto.port, [f"sr/v1/deadletter/{org}/#"]).start()
    try:
        with cloud_services(settings) as (ingest, _):
            publisher.publish(
                topics.meta(org, "gw-a"),
                {"v": 1, "org": org, "gateway": "gw-a",
                 "sensors": [{"id": "p-1", "kind": "bus", "driver": "sim_parking"}]},
            )  # fmt: skip
            publisher.publish(
                topics.meta(org, "gw-a"),
                {"v": 1, "org": org, "gateway": "gw-b",
                 "sensors": [{"id": "p-1", "kind": "parking", "driver": "sim_parking"}]},
            )  # fmt: skip
            wait_until(lambda: len(recorder.on("sr/v1/")) >= 2, 30, what="2 dead letters")
            generation = ingest.admission.generation
    finally:
        recorder.stop()

    letters = [orjson.loads(p) for _, p in recorder.on("sr/v1/")]
    assert [(d["gateway"], d["reason"], d["field"], d["value"]) for d in letters] == [
        ("gw-a", "schema", "sensors[0].kind", "'bus'"),
        ("gw-a", "schema", "org/gateway", f"'{org}/gw-b'"),
    ]
    assert generation == 0
