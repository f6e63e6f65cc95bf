"""A gateway declares its sensors on its retained meta: on every connect, after each remote config."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
from gateway_faults import SPEED, sim_start
from paho.mqtt.enums import CallbackAPIVersion

from cloud.dev.servers import Mosquitto
from edge.contract import GatewayMeta, SensorKind, decode_meta, topics
from edge.simulators.clock import SimClock
from gateway.agent import Agent
from gateway.config import parse

from support import Recorder, unique, wait_until

pytestmark = pytest.mark.e2e
GATEWAY = "gw-meta"


def config(org: str, **over: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "id": GATEWAY,
        "org": org,
        "health_interval_s": 0.5,
        "batch": {"max_interval_s": 0.2},
        "broker": {"reconnect_min_s": 1, "reconnect_max_s": 1},
        "sensors": [
            {"driver": "sim_parking", "id": "p-mercatale", "place": "mercatale"},
            {"driver": "sim_fleet", "id": "v-bus-101", "route": "lam-blu"},
        ],
    }
    raw.update(over)
    return raw


def publish(port: int, topic: str, payload: bytes, *, retain: bool = True) -> None:
    """Publish (retained by default) as the cloud or an operator would."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=unique("pub-"))
    client.connect("127.0.0.1", port)
    client.loop_start()
    client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


def retained_meta(port: int, org: str) -> GatewayMeta | None:
    """What a subscriber arriving now gets on the gateway's meta topic: the retained message."""
    marker = topics.health(org, "gw-marker")
    recorder = Recorder("127.0.0.1", port, [topics.meta(org, GATEWAY), marker]).start()
    try:
        # The broker sends retained messages right after the SUBACK, before anything published
        # later: once a marker published now arrives, the retained meta has, if there is one.
        publish(port, marker, b"marker", retain=False)
        wait_until(lambda: recorder.on(marker), 10, what="the marker")
        held = recorder.on(topics.meta(org, GATEWAY))
    finally:
        recorder.stop()
    return decode_meta(held[-1][1]) if held and held[-1][1] else None


@contextmanager
def running(agent: Agent) -> Iterator[None]:
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(60)


def test_a_gateway_declares_its_sensors_retained_as_soon_as_it_connects(
    mosquitto: Mosquitto, org: str, tmp_path: Path
) -> None:
    agent = Agent(
        parse(config(org)), clock=SimClock(SPEED, sim_start()), state_dir=tmp_path, broker_url=mosquitto.url
    )
    with running(agent):
        wait_until(lambda: agent.link.connects, 20, what="connected")
        meta = wait_until(lambda: retained_meta(mosquitto.port, org), 20, what="the retained meta")

    assert (meta.org, meta.gateway, meta.config_version) == (org, GATEWAY, agent.config_version)
    assert [(s.id, s.kind, s.driver) for s in meta.sensors] == [
        ("p-mercatale", SensorKind.PARKING, "sim_parking"),
        ("v-bus-101", SensorKind.FLEET, "sim_fleet"),
    ]


def test_a_gateway_declares_its_sensors_again_on_every_reconnect(
    restartable_broker: Mosquitto, org: str, tmp_path: Path
) -> None:
    agent = Agent(
        parse(config(org)),
        clock=SimClock(SPEED, sim_start()),
        state_dir=tmp_path,
        broker_url=restartable_broker.url,
    )
    with running(agent):
        wait_until(lambda: retained_meta(restartable_broker.port, org), 20, what="the first meta")
        # Someone clears the retained declaration; the broker restarts without it.
        publish(restartable_broker.port, topics.meta(org, GATEWAY), b"")
        assert retained_meta(restartable_broker.port, org) is None
        connects = agent.link.connects
        restartable_broker.restart()
        wait_until(lambda: agent.link.connects > connects, 30, what="the gateway back")

        meta = wait_until(lambda: retained_meta(restartable_broker.port, org), 20, what="the meta again")

    assert [s.id for s in meta.sensors] == ["p-mercatale", "v-bus-101"]


def test_a_remote_config_changes_the_retained_declaration(
    mosquitto: Mosquitto, org: str, tmp_path: Path
) -> None:
    agent = Agent(
        parse(config(org)), clock=SimClock(SPEED, sim_start()), state_dir=tmp_path, broker_url=mosquitto.url
    )
    pushed = config(
        org,
        version="2026-11-24.1",
        sensors=[
            {"driver": "sim_parking", "id": "p-mercatale", "place": "mercatale"},
            {"driver": "sim_traffic", "id": "t-repubblica-in", "site": "repubblica", "direction": "inbound"},
        ],
    )
    pushed.pop("broker")  # a pushed config may not change the broker; without one it keeps it
    try:
        with running(agent):
            wait_until(lambda: retained_meta(mosquitto.port, org), 20, what="the first meta")

            publish(mosquitto.port, topics.config(org, GATEWAY), orjson.dumps(pushed))

            meta = wait_until(
                lambda: (
                    (m := retained_meta(mosquitto.port, org)) and m.config_version == "2026-11-24.1" and m
                ),
                20,
                what="the meta of the new config",
            )
    finally:
        publish(mosquitto.port, topics.config(org, GATEWAY), b"")  # clear the retained config

    assert [(s.id, s.kind) for s in meta.sensors] == [
        ("p-mercatale", SensorKind.PARKING),
        ("t-repubblica-in", SensorKind.TRAFFIC),
    ]
