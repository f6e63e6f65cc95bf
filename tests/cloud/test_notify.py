"""Notification channels on real servers: HTTP for webhooks, aiosmtpd for e-mail, Mosquitto for MQTT."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cloud.core.alerts import Alert
from cloud.notify import DeliveryError, NotificationsConfig, Notifier, build_channels
from cloud.notify.channels.webhook import Webhook, WebhookConfig
from edge.contract import BrokerAddress

from support import Hooks, Inbox, wait_until

T0 = datetime(2026, 11, 24, 8, tzinfo=UTC)
SECRET = "s3cret"


def alert(entity: str = "p-a", severity: str = "warning", org: str = "comune-prato") -> Alert:
    return Alert(
        rule="parking-full", org=org, entity=entity, gateway="gw-x", kind="parking",
        severity=severity, state="firing", since=T0, ts=T0, message="occupancy_pct 97 above 95",  # type: ignore[arg-type]
        value=97.0, threshold=95.0, context={"baseline": 71.0},
    )  # fmt: skip


def webhook(url: str, **extra: Any) -> Webhook:
    return Webhook(
        WebhookConfig.model_validate({"name": "ops", "url": url, "secret": SECRET, "backoff_s": 0.01} | extra)
    )


def test_a_webhook_is_signed_with_hmac_over_timestamp_and_body(hooks: Hooks) -> None:
    webhook(hooks.url).send([alert()])
    ((headers, payload),) = hooks.requests
    expected = hmac.new(
        SECRET.encode(), headers["x-sitroom-timestamp"].encode() + b"." + payload, hashlib.sha256
    )
    assert headers["x-sitroom-signature"] == "sha256=" + expected.hexdigest()
    body = orjson.loads(payload)
    assert body["count"] == 1
    assert body["alerts"][0]["entity"] == "p-a"
    assert body["alerts"][0]["context"] == {"baseline": 71.0}


def test_a_webhook_is_retried_on_server_errors_until_accepted(hooks: Hooks) -> None:
    hooks.statuses = [503, 500]
    hook = webhook(hooks.url)
    hook.send([alert()])
    assert len(hooks.requests) == 3
    assert hook.retries == 2


def test_a_webhook_refused_with_4xx_is_not_retried(hooks: Hooks) -> None:
    hooks.statuses = [400]
    with pytest.raises(DeliveryError, match="HTTP 400"):
        webhook(hooks.url).send([alert()])
    assert len(hooks.requests) == 1


def test_a_webhook_to_nowhere_fails_after_its_attempts() -> None:
    with pytest.raises(DeliveryError, match="after 2 attempts"):
        webhook("http://127.0.0.1:9/hook", attempts=2).send([alert()])


def config(hooks: Hooks, smtp_port: int, **extra: Any) -> NotificationsConfig:
    return NotificationsConfig.model_validate(
        {
            "channels": [
                {"type": "webhook", "name": "ops-hook", "url": hooks.url, "secret": SECRET},
                {
                    "type": "email",
                    "name": "ops-mail",
                    "host": "127.0.0.1",
                    "port": smtp_port,
                    "sender": "sitroom@example.org",
                    "to": ["ops@example.org"],
                },
            ],
            "routes": [
                {"org": "comune-prato", "min_severity": "warning", "channels": ["ops-hook", "ops-mail"]},
                {"org": "other-org", "min_severity": "critical", "channels": ["ops-hook"]},
            ],
        }
        | extra
    )


def test_alerts_are_routed_by_organisation_and_severity(hooks: Hooks, smtp: tuple[int, Inbox]) -> None:
    port, inbox = smtp
    notifier = Notifier(cfg := config(hooks, port, group_wait_s=0), build_channels(cfg))
    try:
        notifier.submit([alert(severity="info")])  # below the route's minimum: nowhere
        notifier.submit([alert(org="other-org", severity="warning")])  # nowhere
        assert notifier.wait_idle(30)
        notifier.submit([alert(org="other-org", severity="critical")])  # webhook only
        assert notifier.wait_idle(30)
        assert (len(hooks.requests), len(inbox.messages)) == (1, 0)
        notifier.submit([alert()])  # webhook and e-mail
        assert wait_until(lambda: len(inbox.messages) == 1, 30)
        assert notifier.wait_idle(30)
        assert len(hooks.requests) == 2
        (mail,) = inbox.messages
        assert mail["Subject"] == "[warning] firing: parking-full on p-a (comune-prato)"
        assert "baseline: 71.0" in mail.get_payload()
    finally:
        notifier.close()


def test_a_storm_of_alerts_is_one_webhook_and_one_email(hooks: Hooks, smtp: tuple[int, Inbox]) -> None:
    port, inbox = smtp
    notifier = Notifier(cfg := config(hooks, port, group_wait_s=2), build_channels(cfg))
    try:
        notifier.submit([alert(entity=f"p-{i}") for i in range(1000)])
        assert wait_until(lambda: len(inbox.messages) == 1 and len(hooks.requests) == 1, 60)
        assert notifier.wait_idle(30)
        assert orjson.loads(hooks.requests[0][1])["count"] == 1000
        assert inbox.messages[0]["Subject"] == "[warning] 1000 alerts: parking-full"
    finally:
        notifier.close()


def test_a_route_naming_an_unknown_channel_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"routes\[0\].channels: 'pager' is not a channel"):
        NotificationsConfig.model_validate({"channels": [], "routes": [{"channels": ["pager"]}]})


def test_the_mqtt_channel_publishes_each_alert_retained_on_its_topic(broker: BrokerAddress) -> None:
    channels = build_channels(
        NotificationsConfig.model_validate({"channels": [{"type": "mqtt", "name": "bus"}]}), broker
    )
    got: list[mqtt.MQTTMessage] = []
    try:
        channels["bus"].send([alert(entity="p-retained")])
        client = mqtt.Client(CallbackAPIVersion.VERSION2)
        client.on_message = lambda _c, _u, m: got.append(m)
        client.connect(broker.host, broker.port)
        client.subscribe("sr/v1/alerts/comune-prato/parking-full/p-retained", qos=1)
        client.loop_start()
        try:
            assert wait_until(lambda: len(got) == 1, 30)
        finally:
            client.loop_stop()
            client.disconnect()
    finally:
        channels["bus"].close()
    assert got[0].retain
    assert orjson.loads(got[0].payload)["entity"] == "p-retained"
