"""ChirpStack v4 uplink events from the network server's MQTT broker, handed to a decoder.

paho runs its own network thread (reconnecting with back-off); messages wait in a bounded
queue until the gateway's next `poll()`. Subscribed at QoS 1, so a broker restart with a
persistent session loses nothing the broker kept; a redelivered event is a duplicate fCnt,
which the decoder counts and drops.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import deque
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge.contract import BrokerAddress, Reading

if TYPE_CHECKING:
    from edge.drivers.framing import DecoderOutput

log = logging.getLogger(__name__)

MAX_QUEUED = 100_000


class UplinkDecoder(Protocol):
    def uplink(
        self, payload: bytes, *, received_at: datetime | None = None, line: int | None = None
    ) -> DecoderOutput: ...

    def stats(self) -> dict[str, Any]: ...


class ChirpStackSource:
    """A `Source` over one subscription to `application/{id}/device/+/event/up`."""

    def __init__(self, *, broker: str, topic: str, qos: int, decoder: UplinkDecoder, client_id: str) -> None:
        self.address = BrokerAddress.parse(broker)
        self.topic = topic
        self.qos = qos
        self.decoder = decoder
        self._queue: deque[tuple[bytes, datetime]] = deque()
        self._lock = threading.Lock()
        self.dropped = 0
        self.messages = 0
        self.state = "disconnected"
        self.subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"{client_id}-{uuid.uuid4().hex[:6]}",
            clean_session=True,
            protocol=mqtt.MQTTv311,
        )
        if self.address.username:
            self.client.username_pw_set(self.address.username, self.address.password)
        if self.address.tls:
            self.client.tls_set()
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.connect_async(self.address.host, self.address.port, keepalive=30)
        self.client.loop_start()

    def _on_connect(
        self,
        client: mqtt.Client,
        _u: object,
        _f: mqtt.ConnectFlags,
        reason: ReasonCode,
        _p: Properties | None,
    ) -> None:
        if reason.is_failure:
            self.state = "reconnecting"
            log.warning("chirpstack broker %s refused: %s", self.address.url, reason)
            return
        self.state = "connected"
        client.subscribe(self.topic, qos=self.qos)

    def _on_disconnect(
        self, _c: mqtt.Client, _u: object, _f: mqtt.DisconnectFlags, _r: ReasonCode, _p: Properties | None
    ) -> None:
        if self.state != "closed":
            self.state = "reconnecting"
        self.subscribed.clear()

    def _on_subscribe(self, *_args: object) -> None:
        self.subscribed.set()

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages += 1
            if len(self._queue) >= MAX_QUEUED:
                self.dropped += 1  # the gateway stopped polling; oldest first is kept
                return
            self._queue.append((bytes(msg.payload), datetime.now(UTC)))

    def poll(self, now: datetime) -> list[Reading]:
        with self._lock:
            batch = list(self._queue)
            self._queue.clear()
        out: list[Reading] = []
        for payload, received_at in batch:
            decoded = self.decoder.uplink(payload, received_at=received_at)
            out.extend(decoded.readings)
            for rej in decoded.rejects:
                log.debug("uplink rejected %s: %s", rej.reason, rej.detail)
        return out

    def close(self) -> None:
        self.state = "closed"
        self.client.disconnect()
        self.client.loop_stop()

    def stats(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "broker": self.address.url,
            "topic": self.topic,
            "messages": self.messages,
            "queue_dropped": self.dropped,
            **self.decoder.stats(),
        }
