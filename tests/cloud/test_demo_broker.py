"""The demo's broker is provisioned as production's: no anonymous client, an identity and an ACL
for every process (cloud/dev/demo_broker.py, on a real Mosquitto)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from cloud.dev.demo_broker import SERVICES, DemoBroker, provision_demo_broker
from cloud.dev.servers import ProvisionedMosquitto, free_port
from edge.contract import BrokerAddress, SensorKind, topics

from support import REPO, wait_until

CONFIGS = sorted((REPO / "firmware_configs").glob("*.yaml"))
FEED = ("comune-prato", "gw-legacy-feed")


def _provision(folder: Path, port: int) -> DemoBroker:
    return provision_demo_broker(
        folder / "provision", port=port, persistence=folder / "mosquitto", configs=CONFIGS, feed=FEED
    )


@pytest.fixture
def demo_broker(tmp_path: Path) -> Iterator[tuple[DemoBroker, ProvisionedMosquitto]]:
    port = free_port()
    broker = _provision(tmp_path, port)
    with ProvisionedMosquitto(tmp_path / "mosquitto", broker.config, port) as server:
        yield broker, server


def _connect(address: BrokerAddress) -> tuple[mqtt.Client, str]:
    """Connect, wait for the CONNACK; the client (loop running) and the broker's verdict."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    if address.username:
        client.username_pw_set(address.username, address.password)
    verdict: list[str] = []
    done = threading.Event()

    def on_connect(_c: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        verdict.append(str(reason))
        done.set()

    client.on_connect = on_connect
    client.connect(address.host, address.port)
    client.loop_start()
    done.wait(10)
    return client, verdict[0] if verdict else "no answer"


def _close(client: mqtt.Client) -> None:
    client.disconnect()
    client.loop_stop()


def test_the_demo_broker_refuses_an_anonymous_client(
    demo_broker: tuple[DemoBroker, ProvisionedMosquitto],
) -> None:
    broker, _ = demo_broker
    client, verdict = _connect(BrokerAddress.parse(broker.url))
    client.loop_stop()
    assert verdict == "Not authorized"


def test_every_process_of_the_demo_connects_with_its_own_identity(
    demo_broker: tuple[DemoBroker, ProvisionedMosquitto],
) -> None:
    broker, _ = demo_broker
    assert sorted(broker.services) == sorted(s for s, _ in SERVICES)
    addresses = [broker.service_address(s) for s in broker.services] + [broker.feed_address()]
    for path in broker.gateways.values():  # the provisioned configs the gateways run
        b = yaml.safe_load(path.read_text())["broker"]
        url = BrokerAddress.parse(b["url"])
        password = Path(b["password_file"]).read_text().strip()
        addresses.append(BrokerAddress(url.host, url.port, url.tls, b["username"], password))
    assert len(broker.gateways) == len(CONFIGS)
    assert len({a.username for a in addresses}) == len(addresses), "one identity each"
    for address in addresses:
        client, verdict = _connect(address)
        _close(client)
        assert verdict == "Success", address.username


def test_the_demo_watcher_reads_everything_and_publishes_nothing(
    demo_broker: tuple[DemoBroker, ProvisionedMosquitto],
) -> None:
    broker, _ = demo_broker
    heard: list[bytes] = []
    watcher, _ = _connect(broker.service_address("demo"))
    watcher.on_message = lambda _c, _u, msg: heard.append(bytes(msg.payload))
    gateway, _ = _connect(broker.feed_address())
    try:
        subscribed = threading.Event()
        watcher.on_subscribe = lambda *_: subscribed.set()
        watcher.subscribe("sr/v1/#", qos=1)
        assert subscribed.wait(10)
        own = topics.data(*FEED, SensorKind.PARKING)
        other = topics.data("comune-prato", "gw-mercatale", SensorKind.PARKING)
        # Each waits for its PUBACK: the broker handled it before the next one is sent.
        watcher.publish(own, b"from the watcher", qos=1).wait_for_publish(5)
        gateway.publish(other, b"as another gateway", qos=1).wait_for_publish(5)
        gateway.publish(own, b"its own", qos=1).wait_for_publish(5)
        wait_until(lambda: b"its own" in heard, 10, what="the gateway's own message")
        assert heard == [b"its own"]
    finally:
        _close(gateway)
        _close(watcher)


def test_provisioning_the_demo_again_keeps_every_password(tmp_path: Path) -> None:
    first = _provision(tmp_path, 11883)
    before = {s: c.password_file.read_text() for s, c in first.services.items()}
    again = _provision(tmp_path, 11884)
    assert {s: c.password_file.read_text() for s, c in again.services.items()} == before
    assert "listener 11884 127.0.0.1" in again.config.read_text()
    assert "allow_anonymous false" in again.config.read_text()
