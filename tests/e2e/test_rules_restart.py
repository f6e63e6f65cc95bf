"""The rules service killed with SIGKILL mid-stream and started again goes on exactly as one that ran
through: what its detectors learnt, the scores they gave and the alerts it raised are the same.

Two `sitroom cloud rules` processes take the same stream from the same broker (each its own
persistent session, alert store and checkpoints): `steady` runs through, `killed` is killed -9
while the first half of the stream is going through it and started again before the second.
Both are then stopped gently (a last checkpoint) and compared: every series' detector state and
alert state, byte for byte, and every alert. A detector's score is a function of its state and
the reading, so equal states after the same readings mean the restarted service scored every
reading after its restart as the uninterrupted one did, and took in none twice and none never.
"""

from __future__ import annotations

import math
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
import sqlalchemy as sa
from paho.mqtt.enums import CallbackAPIVersion

from cloud.core.settings import CloudSettings
from cloud.dev.servers import Mosquitto, env_without_proxies
from cloud.io.db import make_engine
from edge.contract import Batch, Reading, SensorKind, encode, topics

from support import REPO, wait_until

pytestmark = pytest.mark.e2e

RULES = """
rules:
  - {rule: seasonal, name: parking-unusual, kind: parking, field: occupied}
  - {rule: seasonal, name: traffic-flow-unusual, kind: traffic, field: vehicles}
  - {rule: worksite_impact, name: traffic-speed-impact, kind: traffic, field: speed_kmh}
"""
GATEWAY = "gw-restart"
DAYS = 5
STEP = timedelta(minutes=10)
START = datetime.now(UTC).replace(microsecond=0) - timedelta(days=DAYS + 1)  # within the time limits


def stream(org: str) -> list[Batch]:
    """Five days of two car parks and two traffic counters every ten minutes, one batch per kind
    and instant, with a car park emptied for an hour and a counter dropping on the last day."""
    rnd = random.Random(7)
    batches: list[Batch] = []
    n = int(DAYS * 86_400 / STEP.total_seconds())
    for i in range(n):
        ts = START + i * STEP
        hour = ts.hour + ts.minute / 60
        rhythm = math.sin(math.pi * max(0.0, hour - 6) / 14) if 6 <= hour <= 20 else 0.0
        parking = []
        for k, sensor in enumerate(("p-mercatale", "p-castello")):
            occupied = int(100 + 300 * rhythm + rnd.gauss(0, 6)) + 40 * k
            if i > n - 60 and k == 0 and i < n - 54:
                occupied = 0
            fields = {"occupied": max(occupied, 0), "capacity": 600, "occupancy_pct": max(occupied, 0) / 6}
            parking.append(Reading(kind=SensorKind.PARKING, org=org, gateway=GATEWAY, sensor=sensor, ts=ts,
                                   fields=fields))  # fmt: skip
        traffic = []
        for k, sensor in enumerate(("t-repubblica-in", "t-roma-in")):
            vehicles = max(0, int(20 + 200 * rhythm + rnd.gauss(0, 8)) + 10 * k)
            if k == 1 and n - 40 < i < n - 30:
                vehicles = 2
            fields = {
                "vehicles": vehicles,
                "heavy": vehicles // 10,
                "interval_s": 600,
                "speed_kmh": round(45 - 15 * rhythm + rnd.gauss(0, 1.5), 1),
                "occupancy_pct": 10.0,
            }
            traffic.append(Reading(kind=SensorKind.TRAFFIC, org=org, gateway=GATEWAY, sensor=sensor, ts=ts,
                                   fields=fields))  # fmt: skip
        for readings in (parking, traffic):
            batches.append(Batch.of(readings, seq=len(batches), sent_at=ts))
    return batches


def publish(mosquitto: Mosquitto, batches: list[Batch], *, per_s: float | None = None) -> None:
    """Publish at QoS 1 and wait for every PUBACK; `per_s` paces the stream (a gateway's rate),
    so that a kill lands while it is going through."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="", protocol=mqtt.MQTTv311)
    client.connect("127.0.0.1", mosquitto.port)
    client.loop_start()
    try:
        infos = []
        for i, b in enumerate(batches):
            infos.append(client.publish(topics.data(b.org, b.gateway, b.kind), encode(b), qos=1))
            if per_s is not None and i % 20 == 19:
                time.sleep(20 / per_s)  # pacing the publisher, not waiting for a condition
        for info in infos:
            info.wait_for_publish(30)
    finally:
        client.disconnect()
        client.loop_stop()


class Service:
    """`sitroom cloud rules` as a process of its own, its checkpoints read from its database."""

    def __init__(self, name: str, tmp: Path, settings: CloudSettings, rules: Path) -> None:
        self.name = name
        self.db = f"sqlite:///{tmp / f'{name}.db'}"
        self.log = tmp / f"{name}.log"
        self.env = {
            **env_without_proxies(),
            "SITROOM_MQTT_URL": settings.mqtt_url,
            "SITROOM_INFLUX_URL": settings.influx_url,
            "SITROOM_INFLUX_DB": settings.influx_db,
            "SITROOM_ORG_FILTER": settings.org_filter,
            "SITROOM_INSTANCE": f"{settings.instance}-{name}",
            "SITROOM_ALERTS_DB": self.db,
            # Checkpoints every 40 messages, so that the kill lands between two of them.
            "SITROOM_RULES_CHECKPOINT_MESSAGES": "40",
            "SITROOM_RULES_CHECKPOINT_S": "1",
        }
        self.rules = rules
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        starts = self.log.read_text().count("restored checkpoint") if self.log.exists() else 0
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "edge.cli", "cloud", "rules", "--rules", str(self.rules),
                 "--no-reload"],
                cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        assert wait_until(lambda: self.log.read_text().count("restored checkpoint") > starts, 30), (
            self.log.read_text()
        )

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        self.proc.wait(60)

    def query(self, sql: str) -> list[Any]:
        engine = make_engine(self.db)
        try:
            with engine.connect() as conn:
                return list(conn.execute(sa.text(sql)))
        except sa.exc.OperationalError:
            return []  # not created yet
        finally:
            engine.dispose()

    def checkpoint_number(self) -> int:
        rows = self.query("SELECT number FROM rules_checkpoint")
        return int(rows[0][0]) if rows else 0

    def has_taken_in(self, seq: int) -> bool:
        rows = self.query("SELECT position FROM rules_checkpoint")
        if not rows:
            return False
        delivered = orjson.loads(rows[0][0])["delivered"]
        return any(s == seq for _org, _gw, batches in delivered for s, _us in batches)

    def states(self) -> dict[tuple[str, str], dict[str, Any]]:
        rows = self.query("SELECT rule, sensor, state FROM rules_series_state")
        return {(r[0], r[1]): orjson.loads(r[2]) for r in rows}

    def alerts(self) -> list[tuple[Any, ...]]:
        columns = "rule, entity, state, since, value, message, context"
        rows = self.query(f"SELECT {columns} FROM alerts ORDER BY rule, entity, since")
        return [tuple(r) for r in rows]


@pytest.fixture
def services(tmp_path: Path, settings: CloudSettings) -> Iterator[tuple[Service, Service]]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    steady, killed = (
        Service("steady", tmp_path, settings, rules),
        Service("killed", tmp_path, settings, rules),
    )
    try:
        yield steady, killed
    finally:
        for s in (steady, killed):
            if s.proc is not None and s.proc.poll() is None:
                s.proc.kill()
                s.proc.wait(10)


@pytest.mark.timeout(240)
def test_a_rules_service_killed_mid_stream_and_restarted_scores_as_an_uninterrupted_one(
    mosquitto: Mosquitto, settings: CloudSettings, services: tuple[Service, Service]
) -> None:
    steady, killed = services
    batches = stream(settings.org_filter)
    half = len(batches) // 2
    steady.start()
    killed.start()  # both sessions exist before anything is published

    first = threading.Thread(target=publish, args=(mosquitto, batches[:half]), kwargs={"per_s": 200.0})
    first.start()
    # Killed while the first half goes through it: some checkpoints taken, not the last one.
    assert wait_until(lambda: killed.checkpoint_number() >= 5, 60), killed.log.read_text()
    killed.stop(signal.SIGKILL)
    first.join(60)
    assert killed.proc is not None
    assert killed.proc.returncode == -signal.SIGKILL
    at_kill = killed.checkpoint_number()
    assert not killed.has_taken_in(half - 1), "the kill came after the first half was checkpointed"

    killed.start()
    publish(mosquitto, batches[half:])
    last = len(batches) - 1
    for s in (steady, killed):
        assert wait_until(lambda s=s: s.has_taken_in(last), 120), s.log.read_text()
        s.stop()
    assert killed.checkpoint_number() > at_kill

    steady_states, killed_states = steady.states(), killed.states()
    assert len(steady_states) == 6  # 2 car parks, 2 counters x (flow, speed)
    assert killed_states == steady_states
    # The detectors learnt every reading, once: five days every ten minutes (speed readings of
    # an interval without vehicles are skipped).
    learnt = {key: s["detector"]["fields"]["n"] for key, s in steady_states.items()}
    assert {n for (rule, _), n in learnt.items() if rule != "traffic-speed-impact"} == {DAYS * 144}
    steady_alerts = steady.alerts()
    assert steady_alerts, "the stream's anomalies raised alerts"
    assert killed.alerts() == steady_alerts
    assert f"restored checkpoint {at_kill}: 6 series" in killed.log.read_text()
