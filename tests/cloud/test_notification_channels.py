"""Every registered notification channel type: a README naming each option, a sample that
validates, and cases delivered to a real receiver (HTTP server, SMTP server, Mosquitto)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from cloud.dev.servers import Mosquitto
from cloud.notify import ChannelContext, DeliveryError, NotificationsConfig
from cloud.notify.cases import CasesFile, as_expected, cases_of, channel_config, sample_configs
from cloud.notify.channels import UnknownChannelError, all_channels, folder, get
from edge.contract import BrokerAddress

from support import Hooks, Inbox, case_params, undocumented, unique, wait_until

TYPES = sorted(all_channels())
# What each kind of receiver gives a case's config, and how it reports what it got.
Collect = Callable[[], list[dict[str, Any]]]


CASES = case_params(TYPES, lambda name: len(cases_of(name).cases))


def test_the_built_in_channel_types_are_registered() -> None:
    assert set(TYPES) >= {"mqtt", "webhook", "email"}


@pytest.mark.parametrize("name", TYPES)
def test_channel_folder_has_a_readme_naming_it_and_every_option(name: str) -> None:
    readme = folder(get(name)) / "README.md"
    assert readme.is_file(), f"{name}: README.md missing in {readme.parent}"
    assert undocumented(readme, name, list(get(name).Config.model_fields)) == []


@pytest.mark.parametrize("name", TYPES)
def test_sample_yaml_holds_valid_notifications_showing_every_option(name: str) -> None:
    configs = sample_configs(name)
    assert configs, f"{name}: no channel of type {name} in sample.yaml's notifications"
    raw = yaml.safe_load((folder(get(name)) / "sample.yaml").read_text(encoding="utf-8"))
    NotificationsConfig.model_validate(raw["notifications"])  # routes name its channels
    shown = set().union(*(c.keys() for c in raw["notifications"]["channels"] if c["type"] == name))
    assert shown == set(get(name).Config.model_fields)


@pytest.mark.parametrize("name", TYPES)
def test_channel_type_ships_cases_that_deliver_and_fail(name: str) -> None:
    cases = cases_of(name).cases
    assert len(cases) >= 3
    assert any(c.deliveries and c.error is None for c in cases), "a case delivers"


@contextmanager
def http_receiver(hooks: Hooks) -> Iterator[tuple[dict[str, Any], Collect]]:
    def collect() -> list[dict[str, Any]]:
        return [
            {"path": path, "headers": headers, "json": orjson.loads(body)}
            for path, (headers, body) in zip(hooks.paths, hooks.requests, strict=True)
        ]

    yield {"url": hooks.url}, collect


@contextmanager
def smtp_receiver(smtp: tuple[int, Inbox]) -> Iterator[tuple[dict[str, Any], Collect]]:
    port, inbox = smtp

    def collect() -> list[dict[str, Any]]:
        out = []
        for m in inbox.messages:
            payload = m.get_payload(decode=True)
            assert isinstance(payload, bytes)
            body = payload.decode(m.get_content_charset() or "utf-8").replace("\r\n", "\n")
            out.append({"from": m["From"], "to": m["To"], "subject": m["Subject"], "body": body})
        return out

    yield {"host": "127.0.0.1", "port": port}, collect


@contextmanager
def mqtt_receiver(broker: Mosquitto) -> Iterator[tuple[dict[str, Any], Collect]]:
    """The retained alerts a subscriber finds once everything is sent: a marker published after
    the subscription comes back after every retained message (the broker sends those first)."""
    address = BrokerAddress.parse(broker.url)

    def collect() -> list[dict[str, Any]]:
        got: list[mqtt.MQTTMessage] = []
        marker = f"sitroom-test/{unique()}"
        done = threading.Event()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=unique("cases-"))
        client.on_message = lambda _c, _u, m: done.set() if m.topic == marker else got.append(m)
        client.on_subscribe = lambda c, *_: c.publish(marker, b"", qos=1)
        client.on_connect = lambda c, *_: c.subscribe([("sr/v1/alerts/#", 1), (marker, 1)])
        client.connect(address.host, address.port)
        client.loop_start()
        try:
            wait_until(done.is_set, 20, what="the marker after the retained alerts")
        finally:
            client.loop_stop()
            client.disconnect()
        return [
            {"topic": m.topic, "retain": m.retain, "qos": m.qos, "json": orjson.loads(m.payload)} for m in got
        ]

    yield {"url": broker.url, "broker": address}, collect


@pytest.mark.parametrize(("name", "index"), CASES)
def test_case_alerts_reach_the_real_receiver_as_expected(
    name: str, index: int, request: pytest.FixtureRequest
) -> None:
    cases: CasesFile = cases_of(name)
    case = cases.cases[index]
    receivers = {
        "http": lambda: http_receiver(request.getfixturevalue("hooks")),
        "smtp": lambda: smtp_receiver(request.getfixturevalue("smtp")),
        "mqtt": lambda: mqtt_receiver(request.getfixturevalue("restartable_broker")),
    }
    with receivers[cases.receiver]() as (address, collect):
        if cases.receiver == "http":
            request.getfixturevalue("hooks").statuses = list(case.replies)
        config = channel_config(name, case, address)
        channel = get(name)(config, ChannelContext(broker=address.get("broker")))
        error: str | None = None
        try:
            for group in cases.groups(case):
                channel.send(group)
        except DeliveryError as exc:
            error = str(exc)
        finally:
            channel.close()
        got = collect()
    if case.error is None:
        assert error is None, case.description
    else:
        assert error is not None, f"{case.description}: no DeliveryError"
        assert case.error in error, case.description
    assert as_expected(got, case.deliveries) == case.deliveries, case.description


def test_an_unknown_channel_type_names_the_known_ones() -> None:
    with pytest.raises(UnknownChannelError, match="known: email, mqtt, webhook"):
        get("pager")
