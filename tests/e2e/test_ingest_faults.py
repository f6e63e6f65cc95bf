"""Ingest under faults and scale-out: InfluxDB restarts, a killed worker, a shared subscription."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cloud.core.settings import CloudSettings
from cloud.dev.servers import Influxd, Mosquitto, env_without_proxies, free_port
from cloud.ingest.consumer import Ingest
from cloud.io.influx.client import InfluxClient
from edge.contract import SensorKind, format_ts, topics

from support import count_points, unique, wait_until

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parent.parent.parent
READINGS_PER_MESSAGE = 100
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)


class Publisher:
    """Publishes batches of distinct readings (own sensor and ms each) from a few gateways, QoS 1."""

    def __init__(self, port: int, org: str, gateways: int = 4) -> None:
        self.org = org
        self.gateways = [f"gw-{g}" for g in range(gateways)]
        self.seq = dict.fromkeys(self.gateways, 0)
        self.published = 0
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=unique("pub-"))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def publish(self, messages: int) -> None:
        for n in range(messages):
            gw = self.gateways[n % len(self.gateways)]
            seq = self.seq[gw]
            self.seq[gw] += 1
            ts = format_ts(T0 + timedelta(milliseconds=seq))
            readings = [
                {
                    "sensor": f"p-{i}",
                    "ts": ts,
                    "fields": {"occupied": i, "capacity": 500, "occupancy_pct": i / 5},
                }
                for i in range(READINGS_PER_MESSAGE)
            ]
            body = {"v": 1, "org": self.org, "gateway": gw, "kind": "parking", "seq": seq,
                    "sent_at": format_ts(datetime.now(UTC)), "readings": readings}  # fmt: skip
            self.client.publish(
                topics.data(self.org, gw, SensorKind.PARKING), orjson.dumps(body), qos=1
            ).wait_for_publish(30)
            self.published += READINGS_PER_MESSAGE

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class HealthWatch:
    """The latest health snapshot of every ingest instance (`sr/v1/services/ingest/+/health`)."""

    def __init__(self, port: int) -> None:
        self.latest: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=unique("watch-"))
        self.client.on_connect = lambda c, *_: c.subscribe(f"{topics.ROOT}/services/ingest/+/health", 0)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, _c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.latest[msg.topic.split("/")[-2]] = orjson.loads(msg.payload)

    def written(self, instance: str) -> int:
        with self.lock:
            return int(self.latest.get(instance, {}).get("readings_written", 0))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Worker:
    """`sitroom cloud ingest` in its own process, configured by SITROOM_* as in production."""

    def __init__(self, env: dict[str, str], instance: str, log_dir: Path) -> None:
        self.env = env | {"SITROOM_INSTANCE": instance}
        self.instance = instance
        self.log_path = log_dir / f"{instance}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> Worker:
        self._close_log()
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edge.cli", "cloud", "ingest"],
            env=self.env,
            cwd=REPO,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        return self

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)  # a power cut: no goodbye, no acks, no flush
        self.proc.wait(30)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        self._close_log()


@pytest.fixture
def workers_env(mosquitto: Mosquitto, influxd: Influxd, influx_db: InfluxClient, org: str) -> dict[str, str]:
    return env_without_proxies() | {
        "SITROOM_MQTT_URL": mosquitto.url,
        "SITROOM_INFLUX_URL": influxd.url,
        "SITROOM_INFLUX_DB": influx_db.database,
        "SITROOM_ORG_FILTER": org,
        "SITROOM_SHARE_GROUP": unique("g"),
        "SITROOM_STATS_INTERVAL_S": "0.5",
        "SITROOM_WRITE_LINGER_MS": "50",
    }


@pytest.fixture
def watch(mosquitto: Mosquitto) -> Iterator[HealthWatch]:
    w = HealthWatch(mosquitto.port)
    yield w
    w.close()


@pytest.fixture
def publisher(mosquitto: Mosquitto, org: str) -> Iterator[Publisher]:
    p = Publisher(mosquitto.port, org)
    yield p
    p.close()


def test_two_workers_on_a_shared_subscription_each_take_part_and_store_everything_exactly_once(
    workers_env: dict[str, str],
    watch: HealthWatch,
    publisher: Publisher,
    influx_db: InfluxClient,
    tmp_path: Path,
) -> None:
    workers = [Worker(workers_env, unique("w-"), tmp_path).start() for _ in range(2)]
    try:
        wait_until(
            lambda: all(w.instance in watch.latest for w in workers), 60, what="both workers reporting"
        )

        publisher.publish(80)

        def both_counted() -> bool:
            return sum(watch.written(w.instance) for w in workers) == publisher.published

        wait_until(both_counted, 90, what="the workers' counts to add up to what was published")
        shares = [watch.written(w.instance) for w in workers]
        assert all(share > 0 for share in shares), shares  # each took part of the load
        assert sum(shares) == publisher.published  # ...and together wrote each reading once
        assert count_points(influx_db) == publisher.published
    finally:
        for w in workers:
            w.stop()


def test_a_worker_killed_mid_stream_loses_nothing_while_the_other_carries_on(
    workers_env: dict[str, str],
    watch: HealthWatch,
    publisher: Publisher,
    influx_db: InfluxClient,
    tmp_path: Path,
) -> None:
    victim, survivor = (Worker(workers_env, unique("w-"), tmp_path).start() for _ in range(2))
    try:
        wait_until(lambda: {victim.instance, survivor.instance} <= watch.latest.keys(), 60, what="workers up")
        publisher.publish(40)
        wait_until(lambda: watch.written(victim.instance) > 0, 60, what="the victim to be writing")

        victim.kill()
        before = watch.written(survivor.instance)
        publisher.publish(40)
        wait_until(lambda: watch.written(survivor.instance) > before, 60, what="the survivor to carry on")
        # Its supervisor (systemd, Kubernetes) restarts it with the same instance: its persistent
        # session gives it back what it had received but not acked when it died.
        victim.start()
        publisher.publish(20)

        wait_until(lambda: count_points(influx_db) == publisher.published, 90, what="every reading stored")
    finally:
        victim.stop()
        survivor.stop()


def test_influxdb_stopped_and_restarted_mid_stream_loses_nothing(
    mosquitto: Mosquitto, org: str, publisher: Publisher, tmp_path: Path
) -> None:
    influxd = Influxd(tmp_path / "influxd", port=free_port()).start()
    settings = CloudSettings(
        mqtt_url=mosquitto.url,
        influx_url=influxd.url,
        influx_db="outage",
        org_filter=org,
        instance=unique("i-"),
        stats_interval_s=0.5,
        write_linger_ms=50,
    )
    ingest = Ingest(settings)
    thread = threading.Thread(target=ingest.run, daemon=True)
    influx = InfluxClient(influxd.url, "outage")
    try:
        thread.start()
        wait_until(ingest.conn.subscribed.is_set, 30, what="ingest subscribed")
        publisher.publish(20)
        wait_until(lambda: count_points(influx) == publisher.published, 60, what="the first readings stored")

        influxd.stop()
        publisher.publish(20)
        wait_until(lambda: ingest.stats.snapshot()["write_retries"] > 0, 60, what="ingest retrying")
        publisher.publish(10)
        influxd.start()  # same ports, same data dir

        wait_until(lambda: count_points(influx) == publisher.published, 90, what="every reading stored")
        snap = ingest.stats.snapshot()
        assert snap["deadletters"] == 0
        assert snap["readings_written"] == publisher.published
    finally:
        ingest.stop()
        thread.join(30)
        influx.close()
        influxd.stop()


def test_mqtt_3_1_1_workers_share_a_subscription_too(
    settings: CloudSettings, publisher: Publisher, influx_db: InfluxClient
) -> None:
    # Mosquitto 2 (and EMQX, HiveMQ, VerneMQ) honour `$share/` for v3.1.1 clients as well.
    group = unique("g")
    workers = [
        Ingest(
            settings.model_copy(
                update={"mqtt_protocol": "3.1.1", "share_group": group, "instance": unique("w-")}
            )
        )
        for _ in range(2)
    ]
    threads = [threading.Thread(target=w.run, daemon=True) for w in workers]
    try:
        for t in threads:
            t.start()
        wait_until(lambda: all(w.conn.subscribed.is_set() for w in workers), 30, what="both subscribed")

        publisher.publish(40)

        def written() -> list[int]:
            return [int(w.stats.snapshot()["readings_written"]) for w in workers]

        wait_until(lambda: sum(written()) == publisher.published, 60, what="every reading written once")
        assert all(n > 0 for n in written()), written()
        assert count_points(influx_db) == publisher.published
    finally:
        for w in workers:
            w.stop()
        for t in threads:
            t.join(30)


def test_ingest_marks_itself_ready_once_subscribed_and_unmarks_on_stop(
    settings: CloudSettings, tmp_path: Path
) -> None:
    ready = tmp_path / "ingest.ready"
    ingest = Ingest(settings.model_copy(update={"ready_file": str(ready)}))
    thread = threading.Thread(target=ingest.run, daemon=True)
    thread.start()
    try:
        wait_until(ready.exists, 30, what="the ready file")
        assert ingest.conn.subscribed.is_set()
        assert ready.read_text().strip() == ingest.subscription
    finally:
        ingest.stop()
        thread.join(30)
    assert not ready.exists()
