"""The `mqtt` channel: each alert's state, retained, on `sr/v1/alerts/{org}/{rule}/{entity}`.

Retained so that a control-room screen that subscribes later sees every entity's current state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from cloud.core.alerts import Alert
from cloud.io.mqtt import BrokerConnection
from cloud.notify.base import STANDALONE, ChannelConfig, ChannelContext, DeliveryError, NotificationChannel
from cloud.notify.registry import register
from edge.contract import BrokerAddress


class MqttConfig(ChannelConfig):
    type: Literal["mqtt"] = "mqtt"
    url: str | None = None  # default: the service's own broker (SITROOM_BROKER_URL)
    qos: Literal[0, 1] = 1
    timeout_s: float = 10.0


@register("mqtt")
class Mqtt(NotificationChannel[MqttConfig]):
    Config = MqttConfig

    def __init__(self, config: MqttConfig, context: ChannelContext = STANDALONE) -> None:
        super().__init__(config, context)
        address = BrokerAddress.parse(config.url) if config.url else context.broker
        if address is None:
            raise DeliveryError(self.name, "no broker: give `url` or run inside the rules service")
        self.conn = BrokerConnection(address, client_id=f"sitroom-notify-{config.name}", persistent=False)
        self.conn.start()
        self.sent = 0

    def send(self, alerts: Sequence[Alert]) -> None:
        if not self.conn.connected.wait(self.config.timeout_s):
            raise DeliveryError(self.name, "broker not connected")
        infos = [
            self.conn.client.publish(a.topic, a.to_json(), qos=self.config.qos, retain=True) for a in alerts
        ]
        for info in infos:
            info.wait_for_publish(self.config.timeout_s)
        self.sent += len(alerts)

    def close(self) -> None:
        self.conn.stop()
