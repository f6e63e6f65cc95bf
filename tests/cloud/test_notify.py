"""Notification channels on real servers: HTTP for webhooks, aiosmtpd for e-mail, Mosquitto for MQTT."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cloud.core.alerts import Alert
from cloud.io.db import make_engine
from cloud.notify import DeliveryError, NotificationsConfig, Notifier, build_channels
from cloud.notify.channels.webhook import Webhook, WebhookConfig
from cloud.notify.outbox import SqlOutbox, decode_alert, encode_alert
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


def hook_only(hooks: Hooks, **extra: Any) -> NotificationsConfig:
    return NotificationsConfig.model_validate(
        {
            "channels": [
                {"type": "webhook", "name": "ops-hook", "url": hooks.url, "secret": SECRET, "attempts": 1}
            ],
            "routes": [{"channels": ["ops-hook"]}],
            "group_wait_s": 0,
        }
        | extra
    )


def sql_outbox(tmp_path: Path) -> SqlOutbox:
    return SqlOutbox(make_engine(f"sqlite:///{tmp_path / 'alerts.db'}"))


def test_a_failed_delivery_is_tried_again_and_delivered_once_the_receiver_answers(
    hooks: Hooks, tmp_path: Path
) -> None:
    hooks.statuses = [503, 503]
    notifier = Notifier(
        cfg := hook_only(hooks, retry_backoff_s=0.1), build_channels(cfg), outbox=sql_outbox(tmp_path)
    )
    try:
        notifier.submit([alert()])
        wait_until(lambda: notifier.delivered == 1, 30, what="delivered on the third try")
        assert (notifier.retried, notifier.failed, len(hooks.requests)) == (2, 0, 3)
        assert notifier.wait_idle(5)
    finally:
        notifier.close()


def test_a_delivery_failing_beyond_retry_for_s_is_dropped_and_counted(hooks: Hooks, tmp_path: Path) -> None:
    hooks.statuses = [503] * 50
    outbox = sql_outbox(tmp_path)
    notifier = Notifier(
        cfg := hook_only(hooks, retry_backoff_s=0.1, retry_for_s=0.5), build_channels(cfg), outbox=outbox
    )
    try:
        notifier.submit([alert()])
        wait_until(lambda: notifier.failed == 1, 30, what="given up")
        assert notifier.delivered == 0
        assert outbox.next_due("any", datetime.now(UTC)) is None, "nothing left in the outbox"
    finally:
        notifier.close()


def test_a_storm_queued_in_a_sql_outbox_is_one_message_and_leaves_nothing_behind(
    hooks: Hooks, tmp_path: Path
) -> None:
    outbox = sql_outbox(tmp_path)
    notifier = Notifier(cfg := hook_only(hooks, group_wait_s=2), build_channels(cfg), outbox=outbox)
    try:
        notifier.submit([alert(entity=f"p-{i}") for i in range(150)])
        notifier.submit([alert(entity=f"p-{i}") for i in range(150, 200)])  # within the group's wait
        wait_until(lambda: hooks.requests, 30, what="the storm delivered")
        assert notifier.wait_idle(10)
        ((_, body),) = hooks.requests
        assert orjson.loads(body)["count"] == 200
        assert outbox.waiting_first_attempt() == 0
    finally:
        notifier.close()


def test_two_notifiers_sharing_an_outbox_deliver_each_notification_once(hooks: Hooks, tmp_path: Path) -> None:
    cfg = hook_only(hooks)
    notifiers = [
        Notifier(cfg, build_channels(cfg), outbox=sql_outbox(tmp_path), owner=f"rules-{n}", poll_s=0.05)
        for n in range(2)
    ]
    try:
        for i in range(30):
            notifiers[i % 2].submit([alert(entity=f"p-{i}")])
        wait_until(lambda: sum(n.delivered for n in notifiers) and all(n.wait_idle(1) for n in notifiers), 30)
        delivered = [a["entity"] for _, body in hooks.requests for a in orjson.loads(body)["alerts"]]
        assert sorted(delivered) == sorted(f"p-{i}" for i in range(30))
    finally:
        for n in notifiers:
            n.close()


def test_an_alert_survives_the_outbox_as_it_was() -> None:
    original = replace(alert(), id=7, acked_by="op@comune", ack_s=12.5)
    assert decode_alert(encode_alert(original)) == original
    assert decode_alert(encode_alert(original)).context == {"baseline": 71.0}


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
