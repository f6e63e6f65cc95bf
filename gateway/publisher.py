"""The gateway's MQTT link: QoS 1, persistent session, retained birth and will, TLS, backoff.

paho runs the network in its own thread. The link hands the agent two things through
thread-safe queues: the message ids the broker acknowledged (PUBACK), and config documents
received on the gateway's retained config topic. On every connect it publishes the retained
birth and, when given, the retained meta (the gateway's sensors), as Home Assistant devices
publish their discovery documents again on each connection. The agent's loop does everything else, so
the spool has a single owner.

Reconnection is paho's loop, with the delay set before every attempt from a jittered
exponential backoff (``Backoff``): many gateways cut off by the same outage do not come back
in lockstep ([MQTT-4.4.0-1] lets the session resume on any of those attempts).
"""

from __future__ import annotations

import logging
import random
import ssl
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge.contract import BrokerAddress
from gateway.config import BrokerConfig

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Backoff:
    """Exponential backoff with "equal jitter": attempt n waits uniform(cap/2, cap) seconds,
    cap = min(max_s, min_s * 2**n), rounded to whole seconds (paho's timer unit)."""

    min_s: int
    max_s: int
    rng: random.Random
    attempts: int = 0

    def next_delay(self) -> int:
        cap = min(self.max_s, self.min_s * 2 ** min(self.attempts, 30))
        self.attempts += 1
        return max(self.min_s, round(self.rng.uniform(cap / 2, cap)))

    def reset(self) -> None:
        self.attempts = 0


class Link:
    def __init__(
        self,
        *,
        client_id: str,
        address: BrokerAddress,
        config: BrokerConfig,
        status_topic: str,
        will_payload: bytes,
        birth_payload: Callable[[], bytes],
        config_topic: str | None,
        wake: threading.Event,
        seed: int | None = None,
        meta_topic: str | None = None,
        meta_payload: Callable[[], bytes] | None = None,
    ) -> None:
        self.address = address
        self.config = config
        self.status_topic = status_topic
        self.config_topic = config_topic
        self._birth_payload = birth_payload
        self.meta_topic = meta_topic
        self._meta_payload = meta_payload
        self._wake = wake
        self.acks: deque[int] = deque()
        self.configs: deque[bytes] = deque()
        self.connects = 0  # successful CONNACKs so far; the agent notices reconnects by it
        self.connect_failures = 0
        self.last_error = ""
        # Seeded from the OS by default: gateways must not share a jitter sequence.
        self.backoff = Backoff(config.reconnect_min_s, config.reconnect_max_s, random.Random(seed))
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,  # a persistent session: the broker keeps our subscription
            protocol=mqtt.MQTTv311,
        )
        if address.username:
            self.client.username_pw_set(address.username, address.password)
        if address.tls or config.ca_file or config.cert_file:
            self.client.tls_set(
                ca_certs=str(config.ca_file) if config.ca_file else None,
                certfile=str(config.cert_file) if config.cert_file else None,
                keyfile=str(config.key_file) if config.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        # [MQTT-3.1.2-8]: the broker publishes the will when we vanish without a DISCONNECT.
        self.client.will_set(status_topic, will_payload, qos=1, retain=True)
        self.client.reconnect_delay_set(config.reconnect_min_s, config.reconnect_max_s)
        self.client.max_inflight_messages_set(config.max_inflight + 16)  # + status and health
        self.client.max_queued_messages_set(0)  # the agent bounds what it hands over
        self.client.on_connect = self._on_connect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message

    def start(self) -> None:
        self.client.connect_async(self.address.host, self.address.port, keepalive=self.config.keepalive_s)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    @property
    def is_connected(self) -> bool:
        return self.client.is_connected()

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> mqtt.MQTTMessageInfo:
        return self.client.publish(topic, payload, qos=1, retain=retain)

    # -- paho callbacks (network thread) ------------------------------------------------------
    def _on_connect(
        self,
        client: mqtt.Client,
        _userdata: object,
        _flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        if reason.is_failure:
            self.last_error = f"refused: {reason}"
            log.warning("broker %s refused the connection: %s", self.address.url, reason)
            self._schedule_retry()
            return
        self.backoff.reset()
        self.client.reconnect_delay_set(self.config.reconnect_min_s, self.config.reconnect_max_s)
        self.connects += 1
        log.info("connected to %s", self.address.url)
        client.publish(self.status_topic, self._birth_payload(), qos=1, retain=True)
        if self.meta_topic and self._meta_payload is not None:
            client.publish(self.meta_topic, self._meta_payload(), qos=1, retain=True)
        if self.config_topic:
            client.subscribe(self.config_topic, qos=1)
        self._wake.set()

    def _on_connect_fail(self, _client: mqtt.Client, _userdata: object) -> None:
        self.connect_failures += 1
        self.last_error = "connection failed"
        self._schedule_retry()

    def _on_disconnect(
        self,
        _client: mqtt.Client,
        _userdata: object,
        _flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        if reason.is_failure:
            self.last_error = f"disconnected: {reason}"
            log.warning("lost the broker %s: %s", self.address.url, reason)
        self._schedule_retry()
        self._wake.set()

    def _schedule_retry(self) -> None:
        # paho waits `min_delay` before its next attempt after reconnect_delay_set().
        delay = self.backoff.next_delay()
        self.client.reconnect_delay_set(delay, delay)

    def _on_publish(
        self, _client: mqtt.Client, _userdata: object, mid: int, _reason: ReasonCode, _props: Properties
    ) -> None:
        self.acks.append(mid)
        self._wake.set()

    def _on_message(self, _client: mqtt.Client, _userdata: object, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == self.config_topic:
            self.configs.append(bytes(msg.payload))
            self._wake.set()
