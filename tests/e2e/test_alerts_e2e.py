"""Alerts end to end on real servers: Mosquitto, InfluxDB, an SMTP server and a webhook receiver.

An injected anomaly makes exactly one alert, one webhook and one e-mail; the CLI acknowledges and
resolves it; a planned worksite's traffic drop is classified as expected impact.
"""

from __future__ import annotations

import math
import random
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cloud.core.settings import CloudSettings
from cloud.dev.servers import Mosquitto
from cloud.ingest.consumer import Ingest
from cloud.io.influx.client import InfluxClient
from cloud.notify import NotificationsConfig, Notifier, build_channels
from cloud.rules.engine import Engine, load_rules, read_rules_file
from cloud.rules.service import RulesService
from cloud.rules.store import AlertStore
from edge.contract import SCHEMA_VERSION, Batch, Reading, SensorKind, encode, topics

from support import Hooks, Inbox, Recorder, wait_until

pytestmark = pytest.mark.e2e
SECRET = "e2e-secret"
NOW = datetime.now(UTC).replace(second=0, microsecond=0)
SQUARE = [[11.1055, 43.8675], [11.1065, 43.8675], [11.1065, 43.8685], [11.1055, 43.8685], [11.1055, 43.8675]]


def rules_file(tmp_path: Path, hooks: Hooks, smtp_port: int, org: str) -> Path:
    worksites = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [SQUARE]},
                "properties": {
                    "id": "ws-repubblica",
                    "name": "Repubblica resurfacing",
                    "starts_at": (NOW - timedelta(hours=6)).isoformat(),
                    "ends_at": (NOW + timedelta(days=2)).isoformat(),
                    "planned": True,
                },
            }
        ],
    }
    (tmp_path / "worksites.geojson").write_bytes(orjson.dumps(worksites))
    path = tmp_path / "rules.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            worksites: worksites.geojson
            rules:
              - {{rule: threshold, name: parking-full, kind: parking, field: occupancy_pct,
                  above: 95, clear: 90, hold_min: 0, severity: warning}}
              - {{rule: worksite_impact, name: traffic-impact, kind: traffic, field: speed_kmh,
                  severity: warning}}
            notifications:
              group_wait_s: 0.2
              channels:
                - {{type: webhook, name: ops-hook, url: "{hooks.url}", secret: {SECRET}}}
                - {{type: email, name: ops-mail, host: 127.0.0.1, port: {smtp_port},
                    sender: sitroom@example.org, to: [ops@example.org]}}
              routes:
                - {{org: {org}, min_severity: warning, channels: [ops-hook, ops-mail]}}
            """
        )
    )
    return path


@dataclass
class Running:
    store: AlertStore
    db_url: str
    rules: RulesService
    publisher: mqtt.Client
    org: str
    seq: int = 0

    def publish(self, gateway: str, kind: SensorKind, readings: list[Reading]) -> None:
        for start in range(0, len(readings), 2000):
            self.seq += 1
            batch = Batch(
                v=SCHEMA_VERSION, org=self.org, gateway=gateway, kind=kind, seq=self.seq,
                sent_at=datetime.now(UTC),
                readings=tuple(readings[start : start + 2000]),
            )  # fmt: skip
            self.publisher.publish(
                topics.data(self.org, gateway, kind), encode(batch), qos=1
            ).wait_for_publish(30)


@pytest.fixture
def running(
    settings: CloudSettings,
    mosquitto: Mosquitto,
    tmp_path: Path,
    hooks: Hooks,
    smtp: tuple[int, Inbox],
    org: str,
) -> Iterator[Running]:
    path = rules_file(tmp_path, hooks, smtp[0], org)
    db_url = f"sqlite:///{tmp_path / 'alerts.db'}"
    store = AlertStore(db_url)
    notifications = NotificationsConfig.model_validate(read_rules_file(path).notifications)
    service = RulesService(
        settings,
        Engine(load_rules(path)),
        store=store,
        notifier=Notifier(notifications, build_channels(notifications)),
        rules_path=path,
    )
    ingest = Ingest(settings)
    threads = [threading.Thread(target=s.run, daemon=True) for s in (ingest, service)]
    for t in threads:
        t.start()
    publisher = mqtt.Client(CallbackAPIVersion.VERSION2)
    publisher.connect("127.0.0.1", mosquitto.port)
    publisher.loop_start()
    try:
        wait_until(
            lambda: ingest.conn.connected.is_set() and service.conn.connected.is_set(), 30, what="services"
        )
        yield Running(store, db_url, service, publisher, org)
    finally:
        publisher.loop_stop()
        publisher.disconnect()
        ingest.stop()
        service.stop()
        for t in threads:
            t.join(30)


def parking(org: str, ts: datetime, pct: float) -> Reading:
    return Reading(
        kind=SensorKind.PARKING, org=org, gateway="gw-mercatale", sensor="p-mercatale", ts=ts,
        fields={"occupied": round(pct * 5.2), "capacity": 520, "occupancy_pct": pct},
    )  # fmt: skip


def sitroom(*args: str) -> str:
    exe = Path(sys.executable).with_name("sitroom")
    done = subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


def test_an_injected_anomaly_is_one_alert_one_webhook_one_email_then_acked_and_resolved(
    running: Running, mosquitto: Mosquitto, hooks: Hooks, smtp: tuple[int, Inbox], influx_db: InfluxClient
) -> None:
    _, inbox = smtp
    recorder = Recorder("127.0.0.1", mosquitto.port, [f"{topics.ROOT}/alerts/{running.org}/#"]).start()
    try:
        start = NOW - timedelta(minutes=30)
        running.publish(
            "gw-mercatale",
            SensorKind.PARKING,
            [parking(running.org, start + timedelta(minutes=m), 60.0) for m in range(10)],
        )
        # The anomaly: the car park saturates, and stays so for several readings.
        running.publish(
            "gw-mercatale",
            SensorKind.PARKING,
            [parking(running.org, start + timedelta(minutes=10 + m), 99.0) for m in range(5)],
        )
        assert wait_until(
            lambda: len(inbox.messages) >= 1 and len(hooks.requests) >= 1, 60, what="notifications"
        )
        assert wait_until(lambda: recorder.on(f"{topics.ROOT}/alerts/"), 30, what="alert on MQTT")
        assert running.rules.notifier is not None
        assert running.rules.notifier.wait_idle(30)
        assert len(recorder.on(f"{topics.ROOT}/alerts/")) == 1
        assert (len(hooks.requests), len(inbox.messages)) == (1, 1)
        (active,) = running.store.active(running.org)
        assert (active.rule, active.entity, active.state) == ("parking-full", "p-mercatale", "firing")
        published = orjson.loads(recorder.on(f"{topics.ROOT}/alerts/")[0][1])
        assert published["id"] == active.id
        assert wait_until(
            lambda: influx_db.series('SELECT count("active") FROM "alerts"'), 30, what="alert in InfluxDB"
        )

        assert "acknowledged" in sitroom(
            "cloud", "alerts", "ack", str(active.id), "--by", "ada", "--alerts-db", running.db_url
        )
        listed = sitroom("cloud", "alerts", "list", "--json", "--alerts-db", running.db_url)
        assert orjson.loads(listed.splitlines()[0])["acked_by"] == "ada"
        assert "resolved" in sitroom(
            "cloud", "alerts", "resolve", str(active.id), "--by", "ada", "--alerts-db", running.db_url
        )
        assert running.store.active(running.org) == []
        assert [e[0] for e in running.store.events(active.id)] == ["fire", "ack", "resolve"]
    finally:
        recorder.stop()


def test_an_ack_through_the_cli_replaces_the_retained_firing_message_and_records_time_to_acknowledge(
    running: Running, mosquitto: Mosquitto, influx_db: InfluxClient
) -> None:
    start = NOW - timedelta(minutes=30)
    running.publish(
        "gw-mercatale",
        SensorKind.PARKING,
        [parking(running.org, start + timedelta(minutes=m), 99.0 if m >= 10 else 60.0) for m in range(15)],
    )
    (fired,) = wait_until(lambda: running.store.active(running.org), 60, what="an alert in the store")
    topic = f"{topics.ROOT}/alerts/{running.org}/parking-full/p-mercatale"

    def retained_state() -> str:
        # A new subscriber reads what the broker retains for the alert's topic.
        late = Recorder("127.0.0.1", mosquitto.port, [topic]).start()
        try:
            wait_until(lambda: late.on(topic), 10, what=f"the retained message on {topic}")
            return str(orjson.loads(late.on(topic)[-1][1])["state"])
        finally:
            late.stop()

    assert wait_until(lambda: retained_state() == "firing", 30, what="firing retained")

    sitroom("cloud", "alerts", "ack", str(fired.id), "--by", "ada", "--alerts-db", running.db_url)
    assert wait_until(lambda: retained_state() == "acknowledged", 30, what="acknowledged retained")
    acked_at = running.store.get(fired.id).acked_at
    assert acked_at is not None
    points = wait_until(
        lambda: influx_db.series(
            'SELECT "ack_s", "unacked", "active" FROM "alerts" WHERE "state" = \'acknowledged\' GROUP BY *'
        ),
        30,
        what="the acknowledgement in InfluxDB",
    )
    [series] = points
    assert series["tags"] | {"state": "firing"} == next(
        s["tags"]
        for s in influx_db.series('SELECT "active" FROM "alerts" WHERE "state" = \'firing\' GROUP BY *')
    ), "the firing point's tags"
    [[_, ack_s, unacked, active]] = series["values"]
    assert ack_s == pytest.approx((acked_at - fired.fired_at).total_seconds(), abs=0.001)
    assert (unacked, active) == (0, 1)

    sitroom("cloud", "alerts", "resolve", str(fired.id), "--by", "ada", "--alerts-db", running.db_url)
    assert wait_until(lambda: retained_state() == "resolved", 30, what="resolved retained")


def speed(minutes: float, rnd: random.Random) -> float:
    return 45 - 15 * max(0.0, math.sin(2 * math.pi * ((minutes % 1440) - 360) / 1440)) + rnd.gauss(0, 1.0)


def traffic(org: str, ts: datetime, kmh: float) -> Reading:
    return Reading(
        kind=SensorKind.TRAFFIC, org=org, gateway="gw-traffico", sensor="t-repubblica-in", ts=ts,
        fields={"vehicles": 100, "heavy": 5, "interval_s": 300, "speed_kmh": max(kmh, 0.0),
                "occupancy_pct": 10.0},
    )  # fmt: skip


def test_a_planned_worksites_traffic_drop_is_classified_as_expected_impact(
    running: Running, mosquitto: Mosquitto, hooks: Hooks
) -> None:
    rnd = random.Random(3)
    start = NOW - timedelta(days=14)
    ordinary = [
        traffic(running.org, start + timedelta(minutes=m), speed(m, rnd)) for m in range(0, 14 * 1440 - 60, 5)
    ]
    recorder = Recorder(
        "127.0.0.1", mosquitto.port, [f"{topics.ROOT}/alerts/{running.org}/traffic-impact/#"]
    ).start()
    try:
        running.publish("gw-traffico", SensorKind.TRAFFIC, ordinary)
        drop = [
            traffic(running.org, NOW - timedelta(minutes=55 - m), 8.0 + rnd.gauss(0, 0.5))
            for m in range(0, 50, 5)
        ]
        running.publish("gw-traffico", SensorKind.TRAFFIC, drop)
        assert wait_until(lambda: recorder.on(f"{topics.ROOT}/alerts/"), 90, what="impact alert")
        (_topic, payload), *_ = recorder.on(f"{topics.ROOT}/alerts/")
        alert = orjson.loads(payload)
        assert alert["context"]["classification"] == "expected_impact"
        assert alert["context"]["worksites"][0]["id"] == "ws-repubblica"
        assert alert["severity"] == "info"
        assert hooks.requests == []  # expected impact is below the route's minimum severity
    finally:
        recorder.stop()
