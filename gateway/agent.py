"""The gateway agent: poll the sensors, batch their readings per kind, publish at QoS 1.

A reading counts as published only when the broker acknowledged its batch (PUBACK). The
birth message ("online") and the last will ("offline") are retained on the status topic.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge.contract import BrokerAddress, Reading, SensorKind, encode, format_ts, topics
from edge.contract.batch import Batch
from edge.drivers import Source, SourceContext, get
from edge.simulators.clock import Clock
from gateway.config import GatewayConfig
from gateway.sequence import Sequence

log = logging.getLogger(__name__)

try:
    VERSION = version("sitroom")
except PackageNotFoundError:  # running from a source tree without an install
    VERSION = "0+unknown"

_TICK_S = 0.1
_DRAIN_TIMEOUT_S = 15.0


@dataclass(slots=True)
class Counters:
    readings_read: int = 0
    readings_published: int = 0
    batches_published: int = 0
    source_errors: int = 0
    errors_by_sensor: dict[str, str] = field(default_factory=dict)


class Agent:
    def __init__(
        self,
        config: GatewayConfig,
        *,
        clock: Clock,
        state_dir: Path,
        broker_url: str | None = None,
        seed: int = 0,
    ) -> None:
        self.config = config
        self.clock = clock
        self.broker: BrokerAddress = config.broker.address(broker_url)
        state_dir.mkdir(parents=True, exist_ok=True)
        self.seq = Sequence(state_dir / f"{config.id}.seq")
        self.counters = Counters()
        self._started_mono = time.monotonic()
        ctx = SourceContext(org=config.org, gateway=config.id, seed=seed, start=clock.now())
        self.sources: dict[str, Source] = {s.id: get(s.driver).open(s, ctx) for s in config.sensors}
        self._pending: dict[SensorKind, list[Reading]] = defaultdict(list)
        self._pending_since: dict[SensorKind, float] = {}
        self._inflight: list[tuple[mqtt.MQTTMessageInfo, int]] = []
        self._status_topic = topics.status(config.org, config.id)
        self.client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"sitroom-gw-{self.config.org}-{self.config.id}",
            clean_session=False,  # the broker keeps our session, and paho resends unacked batches
            protocol=mqtt.MQTTv311,
        )
        if self.broker.username:
            client.username_pw_set(self.broker.username, self.broker.password)
        if self.broker.tls:
            client.tls_set()
        client.will_set(
            self._status_topic, self._status("offline", reason="connection lost"), qos=1, retain=True
        )
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.max_inflight_messages_set(100)
        client.max_queued_messages_set(0)  # unbounded in memory for now; spooling is on disk later
        client.on_connect = self._on_connect
        return client

    def _status(self, state: str, **extra: Any) -> bytes:
        return orjson.dumps({"state": state, "ts": format_ts(datetime.now(UTC)), "version": VERSION, **extra})

    def _on_connect(
        self,
        client: mqtt.Client,
        _userdata: object,
        _flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        if reason.is_failure:
            log.warning("broker %s refused the connection: %s", self.broker.url, reason)
            return
        log.info("gateway %s connected to %s", self.config.id, self.broker.url)
        client.publish(self._status_topic, self._status("online"), qos=1, retain=True)

    # -- the loop -------------------------------------------------------------------------------
    def run(self, stop: threading.Event, duration_s: float | None = None) -> Counters:
        self.client.connect_async(
            self.broker.host, self.broker.port, keepalive=self.config.broker.keepalive_s
        )
        self.client.loop_start()
        deadline = None if duration_s is None else time.monotonic() + duration_s
        next_health = time.monotonic() + self.config.health_interval_s
        try:
            while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
                self.tick()
                if time.monotonic() >= next_health:
                    self.publish_health()
                    next_health = time.monotonic() + self.config.health_interval_s
                stop.wait(_TICK_S)
        finally:
            self.shutdown()
        return self.counters

    def tick(self, *, force_flush: bool = False) -> None:
        now = self.clock.now()
        for sensor_id, source in self.sources.items():
            try:
                readings = source.poll(now)
            except Exception as exc:  # noqa: BLE001  (one broken sensor must not stop the gateway)
                self.counters.source_errors += 1
                if self.counters.errors_by_sensor.get(sensor_id) != str(exc):
                    log.warning("sensor %s failed: %s", sensor_id, exc)
                self.counters.errors_by_sensor[sensor_id] = str(exc)
                continue
            self.counters.errors_by_sensor.pop(sensor_id, None)
            for r in readings:
                self._pending[r.kind].append(r)
                self._pending_since.setdefault(r.kind, time.monotonic())
            self.counters.readings_read += len(readings)
        self._flush(force=force_flush)
        self._reap_acks()

    def _flush(self, *, force: bool) -> None:
        max_n = self.config.batch.max_readings
        for kind, pending in self._pending.items():
            if not pending:
                continue
            age = time.monotonic() - self._pending_since.get(kind, time.monotonic())
            if not (force or len(pending) >= max_n or age >= self.config.batch.max_interval_s):
                continue
            while pending:
                chunk, pending[:] = pending[:max_n], pending[max_n:]
                self._publish_batch(chunk)
            self._pending_since.pop(kind, None)

    def _publish_batch(self, readings: list[Reading]) -> None:
        batch = Batch.of(readings, seq=self.seq.take(), sent_at=datetime.now(UTC))
        topic = topics.data(batch.org, batch.gateway, batch.kind)
        info = self.client.publish(topic, encode(batch), qos=1)
        # While disconnected paho queues the message and sends it on reconnect (rc NO_CONN).
        self._inflight.append((info, len(readings)))

    def _reap_acks(self) -> None:
        still: list[tuple[mqtt.MQTTMessageInfo, int]] = []
        for info, n in self._inflight:
            if info.is_published():  # set by paho on PUBACK for QoS 1
                self.counters.readings_published += n
                self.counters.batches_published += 1
            else:
                still.append((info, n))
        self._inflight = still

    @property
    def queue_depth(self) -> int:
        return sum(n for _, n in self._inflight) + sum(len(p) for p in self._pending.values())

    def health(self, *, final: bool = False) -> dict[str, Any]:
        return {
            "ts": format_ts(datetime.now(UTC)),
            "clock": format_ts(self.clock.now()),
            "uptime_s": round(time.monotonic() - self._started_mono, 1),
            "readings_read": self.counters.readings_read,
            "readings_published": self.counters.readings_published,
            "batches_published": self.counters.batches_published,
            "queue_depth": self.queue_depth,
            "seq": self.seq.current,
            "sensors": len(self.sources),
            "source_errors": self.counters.source_errors,
            "failing_sensors": sorted(self.counters.errors_by_sensor),
            "pid": os.getpid(),
            "version": VERSION,
            "final": final,
        }

    def publish_health(self, *, final: bool = False) -> mqtt.MQTTMessageInfo:
        return self.client.publish(
            topics.health(self.config.org, self.config.id), orjson.dumps(self.health(final=final)), qos=1
        )

    def shutdown(self) -> None:
        """Flush, wait for every PUBACK (bounded), say goodbye, disconnect."""
        self.tick(force_flush=True)
        deadline = time.monotonic() + _DRAIN_TIMEOUT_S
        while self._inflight and time.monotonic() < deadline:
            time.sleep(0.05)
            self._reap_acks()
        if self._inflight:
            log.warning("%d batches still unacknowledged at shutdown", len(self._inflight))
        for info in (
            self.publish_health(final=True),
            self.client.publish(
                self._status_topic, self._status("offline", reason="shutdown"), qos=1, retain=True
            ),
        ):
            if self.client.is_connected():
                info.wait_for_publish(timeout=5)
        self.client.disconnect()
        self.client.loop_stop()
        for source in self.sources.values():
            source.close()
