"""The `mqtt` channel: each alert's state, retained, on `sr/v1/alerts/{org}/{rule}/{entity}`.

Retained so that a control-room screen that subscribes later sees every entity's current state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from cloud.core.alerts import Alert
from cloud.io.mqtt import BrokerConnection, Outbound, PublishError
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
        self.conn: BrokerConnection | None = None
        if not config.url and context.outbound is not None:
            # Inside a service: its own connection (one per identity, issue 18).
            self.outbound = context.outbound
        else:
            address = BrokerAddress.parse(config.url) if config.url else context.broker
            if address is None:
                raise DeliveryError(self.name, "no broker: give `url` or run inside the rules service")
            self.conn = BrokerConnection(address, client_id=f"sitroom-notify-{config.name}", persistent=False)
            self.conn.start()
            self.outbound = Outbound()
            self.outbound.attach(self.conn)
        self.sent = 0

    def send(self, alerts: Sequence[Alert]) -> None:
        try:
            self.outbound.publish(
                [(a.topic, a.to_json()) for a in alerts], qos=self.config.qos, timeout_s=self.config.timeout_s
            )
        except PublishError as exc:
            raise DeliveryError(self.name, str(exc)) from None
        self.sent += len(alerts)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.stop()
