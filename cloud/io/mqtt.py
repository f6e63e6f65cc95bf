"""paho-mqtt 2 clients for the cloud services: persistent sessions, reconnect with backoff."""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable, Sequence
from typing import Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge.contract import BrokerAddress

log = logging.getLogger(__name__)

Subscriptions = list[tuple[str, int]]


class BrokerConnection:
    """A paho client that (re)subscribes on every connect and reports whether it is connected.

    The network loop runs in paho's thread; `connected` lets callers wait for the first CONNACK.
    """

    def __init__(
        self,
        broker: BrokerAddress,
        client_id: str,
        *,
        subscriptions: Subscriptions | None = None,
        on_message: Callable[[mqtt.MQTTMessage], None] | None = None,
        persistent: bool = True,
        manual_ack: bool = False,
        keepalive_s: int = 30,
        protocol: Literal["3.1.1", "5"] = "3.1.1",
        session_expiry_s: int = 7 * 86_400,
    ) -> None:
        self.broker = broker
        self.subscriptions = list(subscriptions or [])
        self.connected = threading.Event()
        # Set by the SUBACK of the subscriptions: before it, a publish may find nobody listening.
        self.subscribed = threading.Event()
        # Counts CONNACKs: a packet id received on an earlier connection means nothing on this
        # one (the broker resends unacknowledged messages on reconnect, [MQTT-4.4.0-1]).
        self.generation = 0
        self.persistent = persistent
        self.protocol = protocol
        self.session_expiry_s = session_expiry_s
        # A persistent session (clean session off; in v5 clean start off plus a session expiry)
        # makes the broker queue QoS 1 messages for us while we are away: that is what
        # at-least-once across restarts rests on.
        if protocol == "5":
            self.client = mqtt.Client(
                CallbackAPIVersion.VERSION2,
                client_id=client_id,
                protocol=mqtt.MQTTv5,
                manual_ack=manual_ack,
            )
        else:
            self.client = mqtt.Client(
                CallbackAPIVersion.VERSION2,
                client_id=client_id,
                clean_session=not persistent,
                protocol=mqtt.MQTTv311,
                manual_ack=manual_ack,
            )
        self.client.enable_logger(logging.getLogger(f"paho.{client_id}"))
        if broker.username:
            self.client.username_pw_set(broker.username, broker.password)
        if broker.tls:
            self.client.tls_set(cert_reqs=ssl.CERT_REQUIRED)
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_disconnect = self._on_disconnect
        if on_message is not None:
            handler = on_message
            self.client.on_message = lambda _c, _u, msg: handler(msg)
        self._keepalive_s = keepalive_s

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
        self.generation += 1
        if self.subscriptions:
            client.subscribe(self.subscriptions)
        self.connected.set()
        log.info("connected to %s", self.broker.url)

    def _on_disconnect(
        self,
        _client: mqtt.Client,
        _userdata: object,
        _flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        self.connected.clear()
        log.info("disconnected from %s: %s", self.broker.url, reason)

    def start(self, wait_s: float | None = 10.0) -> BrokerConnection:
        # connect_async + loop_start: the loop thread keeps reconnecting even if the broker is
        # down at start, so a service may start before its broker.
        if self.protocol == "5":
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            # [MQTT-3.1.2-23]: with an expiry the session outlives the connection.
            props.SessionExpiryInterval = self.session_expiry_s if self.persistent else 0
            self.client.connect_async(
                self.broker.host,
                self.broker.port,
                keepalive=self._keepalive_s,
                clean_start=not self.persistent,
                properties=props,
            )
        else:
            self.client.connect_async(self.broker.host, self.broker.port, keepalive=self._keepalive_s)
        self.client.loop_start()
        if wait_s is not None and not self.connected.wait(wait_s):
            log.warning("broker %s not reachable yet; retrying in the background", self.broker.url)
        return self

    def stop(self) -> None:
        # paho logs an ERROR for a DISCONNECT sent on a dead link; there is nothing to say then.
        if self.client.is_connected():
            self.client.disconnect()
        self.client.loop_stop()


class PublishError(RuntimeError):
    """The broker could not be reached, or did not acknowledge in time."""


def publish_retained(
    broker: BrokerAddress, messages: Sequence[tuple[str, bytes]], *, timeout_s: float = 10.0
) -> int:
    """Publish `messages` (topic, payload) retained at QoS 1 on a short-lived connection and wait
    for every PUBACK; returns how many. Errors name the broker by `broker.url` (no password)."""
    conn = BrokerConnection(broker, client_id="", persistent=False).start(wait_s=timeout_s)
    try:
        if not conn.connected.is_set():
            raise PublishError(f"cannot reach {broker.url} within {timeout_s:g} s")
        infos = [conn.client.publish(topic, payload, qos=1, retain=True) for topic, payload in messages]
        for info in infos:
            info.wait_for_publish(timeout_s)
            if not info.is_published():
                raise PublishError(f"broker {broker.url} did not acknowledge within {timeout_s:g} s")
    finally:
        conn.stop()
    return len(messages)


class Outbound:
    """Publishing on a process's own broker connection, for the parts of the process that are
    not its main loop (notification channels, coordination findings).

    The broker binds client ids to usernames (`use_username_as_clientid`, issue 18): a second
    connection under the process's identity would take over the first one's session, so every
    part of a process publishes on its one connection, attached when the process makes it."""

    def __init__(self) -> None:
        self._conn: BrokerConnection | None = None
        self._attached = threading.Event()

    def attach(self, conn: BrokerConnection) -> None:
        self._conn = conn
        self._attached.set()

    def publish(self, messages: Sequence[tuple[str, bytes]], *, qos: int = 1, retain: bool = True,
                timeout_s: float = 10.0) -> int:  # fmt: skip
        """Publish (topic, payload) pairs and, at QoS 1, wait for every PUBACK; how many."""
        if not self._attached.wait(timeout_s) or self._conn is None:
            raise PublishError("no broker connection in this process")
        conn = self._conn
        if not conn.connected.wait(timeout_s):
            raise PublishError(f"broker {conn.broker.url} not connected")
        infos = [conn.client.publish(topic, payload, qos=qos, retain=retain) for topic, payload in messages]
        if qos:
            for info in infos:
                info.wait_for_publish(timeout_s)
                if not info.is_published():
                    raise PublishError(f"broker {conn.broker.url} did not acknowledge within {timeout_s:g} s")
        return len(messages)
