"""Coordination findings as retained alerts on `sr/v1/alerts/{org}/worksite-{finding}/{entity}`."""

from __future__ import annotations

from collections.abc import Sequence

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from cloud.rules.alert import Alert
from edge.contract import BrokerAddress


class PublishError(RuntimeError):
    pass


def publish_alerts(url: str, alerts: Sequence[Alert], *, timeout_s: float = 10.0) -> int:
    """Publish `alerts` retained at QoS 1 and wait for every PUBACK; returns how many."""
    broker = BrokerAddress.parse(url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="", protocol=mqtt.MQTTv311)
    if broker.username:
        client.username_pw_set(broker.username, broker.password)
    try:
        client.connect(broker.host, broker.port)
    except OSError as exc:
        raise PublishError(f"cannot reach {url}: {exc}") from None
    client.loop_start()
    try:
        infos = [client.publish(a.topic, a.to_json(), qos=1, retain=True) for a in alerts]
        for info in infos:
            info.wait_for_publish(timeout_s)
            if not info.is_published():
                raise PublishError(f"broker {url} did not acknowledge an alert within {timeout_s:g} s")
    finally:
        client.disconnect()
        client.loop_stop()
    return len(alerts)
