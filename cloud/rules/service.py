"""`sitroom cloud rules`: the engine on the live MQTT stream; alerts to MQTT and InfluxDB."""

from __future__ import annotations

import logging
import queue
import threading
import time

import paho.mqtt.client as mqtt
from pydantic import AwareDatetime, BaseModel, ValidationError

from cloud.influx.client import InfluxClient, InfluxError
from cloud.mqtt import BrokerConnection
from cloud.rules.alert import Alert
from cloud.rules.engine import Engine
from cloud.settings import CloudSettings
from edge.contract import ContractError, decode, loads, topics
from edge.contract.topics import Channel

log = logging.getLogger(__name__)


class StatusMessage(BaseModel):
    state: str
    ts: AwareDatetime
    reason: str = ""


class RulesService:
    def __init__(
        self, settings: CloudSettings, engine: Engine, *, influx: InfluxClient | None = None
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.influx = influx or InfluxClient(
            settings.influx_url,
            settings.influx_db,
            username=settings.influx_username,
            password=settings.influx_password,
        )
        self._inbox: queue.Queue[tuple[str, bytes]] = queue.Queue(maxsize=10_000)
        self._stop = threading.Event()
        org = settings.org_filter
        self.conn = BrokerConnection(
            settings.broker,
            client_id=f"sitroom-rules-{settings.instance}",
            subscriptions=[
                (f"{topics.ROOT}/{org}/+/{Channel.DATA.value}/+", 1),
                (f"{topics.ROOT}/{org}/+/{Channel.STATUS.value}", 1),
            ],
            on_message=self._on_message,
        )

    def _on_message(self, msg: mqtt.MQTTMessage) -> None:
        while not self._stop.is_set():
            try:
                self._inbox.put((msg.topic, bytes(msg.payload)), timeout=0.5)
                return
            except queue.Full:
                continue

    def stop(self) -> None:
        self._stop.set()

    def run(self, stop: threading.Event | None = None) -> None:
        stop = stop or self._stop
        self.influx.create_database()
        self.conn.start()
        next_tick = time.monotonic() + 1.0
        try:
            while not (stop.is_set() or self._stop.is_set()):
                alerts: list[Alert] = []
                try:
                    topic, payload = self._inbox.get(timeout=0.2)
                    alerts.extend(self.handle(topic, payload))
                    while len(alerts) < 1000:
                        topic, payload = self._inbox.get_nowait()
                        alerts.extend(self.handle(topic, payload))
                except queue.Empty:
                    pass
                if time.monotonic() >= next_tick:
                    alerts.extend(self.engine.tick())
                    next_tick = time.monotonic() + 1.0
                if alerts:
                    self.emit(alerts)
        finally:
            self._stop.set()
            self.conn.stop()
            self.influx.close()

    def handle(self, topic: str, payload: bytes) -> list[Alert]:
        # Ingest dead-letters bad input; here it is only skipped.
        try:
            where = topics.parse(topic)
            if where.channel is Channel.STATUS:
                status = StatusMessage.model_validate(loads(payload))
                return self.engine.gateway_status(
                    where.org, where.gateway, status.state, status.reason, status.ts
                )
            decoded = decode(payload)
        except (ContractError, ValidationError):
            return []
        out: list[Alert] = []
        for r in decoded.readings:
            out.extend(self.engine.observe(r))
        return out

    def emit(self, alerts: list[Alert]) -> None:
        for a in alerts:
            log.warning("alert %s %s/%s %s: %s", a.state, a.org, a.entity, a.rule, a.message)
            # Retained: whoever subscribes later sees each entity's current alert state.
            self.conn.client.publish(a.topic, a.to_json(), qos=1, retain=True)
        try:
            self.influx.write([a.to_line() for a in alerts])
        except InfluxError as exc:
            log.warning("could not write %d alerts to InfluxDB: %s", len(alerts), exc)
