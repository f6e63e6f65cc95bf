"""The reader on MQTT, as a gateway is: data batches, retained status with a last will, health.

Batches go out at QoS 1 in seq order and count as sent only on PUBACK; the envelope is written
at send time (`sent_at` is the send's, as the contract says of a replayed batch), around the
readings the outbox kept.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import orjson

from cloud.core.alerts import Alert
from cloud.io.mqtt import BrokerConnection
from cloud.transit.realtime.rtstore import Outgoing
from edge.contract import SCHEMA_VERSION, BrokerAddress, SensorKind, format_ts, topics

log = logging.getLogger(__name__)

try:
    VERSION = version("sitroom")
except PackageNotFoundError:  # pragma: no cover (run from a source tree without install)
    VERSION = "0+unknown"


class Publisher:
    def __init__(self, broker: BrokerAddress, org: str, source: str, *, ack_timeout_s: float = 10.0) -> None:
        self.org = org
        self.source = source
        self.ack_timeout_s = ack_timeout_s
        self.conn = BrokerConnection(
            broker, client_id=f"sitroom-transit-{org}-{source}"[:64], persistent=False
        )
        self._status_topic = topics.status(org, source)
        # [MQTT-3.1.2-8]: the broker publishes the will when the connection drops unannounced.
        self.conn.client.will_set(
            self._status_topic, self._status("offline", "connection lost"), qos=1, retain=True
        )

    def _status(self, state: str, reason: str | None = None) -> bytes:
        body: dict[str, Any] = {"state": state, "ts": format_ts(datetime.now(UTC)), "version": VERSION}
        if reason:
            body["reason"] = reason
        return orjson.dumps(body)

    def start(self, wait_s: float = 10.0) -> Publisher:
        self.conn.start(wait_s)
        self.publish(self._status_topic, self._status("online"), retain=True)
        return self

    def stop(self) -> None:
        if self.conn.client.is_connected():
            self.publish(self._status_topic, self._status("offline", "shutdown"), retain=True)
        self.conn.stop()

    def publish(self, topic: str, payload: bytes, *, retain: bool = False, wait: bool = True) -> bool:
        """QoS 1; with `wait`, True only once the broker acknowledged it."""
        if not self.conn.connected.is_set():
            return False
        info = self.conn.client.publish(topic, payload, qos=1, retain=retain)
        if not wait:
            return True
        try:
            info.wait_for_publish(self.ack_timeout_s)
        except (RuntimeError, ValueError) as exc:  # paho: queue full, or the connection went away
            log.warning("publish to %s failed: %s", topic, exc)
            return False
        return info.is_published()

    def batch(self, out: Outgoing) -> bool:
        head = orjson.dumps(
            {
                "v": SCHEMA_VERSION,
                "org": self.org,
                "gateway": self.source,
                "kind": out.kind,
                "seq": out.seq,
                "sent_at": format_ts(datetime.now(UTC)),
            }
        )
        payload = head[:-1] + b',"readings":' + out.readings + b"}"
        return self.publish(topics.data(self.org, self.source, SensorKind(out.kind)), payload)

    def health(self, body: dict[str, Any]) -> None:
        self.publish(topics.health(self.org, self.source), orjson.dumps(body), wait=False)

    def alert(self, alert: Alert) -> None:
        self.publish(alert.topic, alert.to_json(), retain=True, wait=False)

    def deadletter(self, body: dict[str, Any]) -> None:
        self.publish(topics.deadletter(self.org, self.source), orjson.dumps(body), wait=False)
