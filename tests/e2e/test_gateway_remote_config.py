"""Remote configuration through the retained config topic, against a real broker."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
from gateway_faults import SPEED, sim_start
from paho.mqtt.enums import CallbackAPIVersion

from cloud.dev.servers import Mosquitto
from edge.contract import decode, topics
from edge.simulators.clock import SimClock
from gateway.agent import Agent
from gateway.config import parse

from support import Recorder, unique, wait_until

pytestmark = pytest.mark.e2e


def base(org: str) -> dict[str, Any]:
    return {
        "id": "gw-remote",
        "org": org,
        "health_interval_s": 0.5,
        "batch": {"max_interval_s": 0.2},
        "sensors": [
            {"driver": "sim_parking", "id": "p-mercatale", "place": "mercatale"},
            {"driver": "sim_fleet", "id": "v-bus-101", "route": "lam-blu"},
        ],
    }


def push(mosquitto: Mosquitto, org: str, document: dict[str, Any] | bytes) -> None:
    """Publish a retained config as the cloud would."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=unique("cfg-"))
    client.connect("127.0.0.1", mosquitto.port)
    client.loop_start()
    payload = document if isinstance(document, bytes) else orjson.dumps(document)
    client.publish(topics.config(org, "gw-remote"), payload, qos=1, retain=True).wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


def last_status(recorder: Recorder, org: str) -> dict[str, Any]:
    msgs = recorder.on(topics.status(org, "gw-remote"))
    return orjson.loads(msgs[-1][1]) if msgs else {}


def sensors_on_wire(recorder: Recorder, org: str, since: int) -> set[str]:
    data = [p for t, p in recorder.on(f"sr/v1/{org}/gw-remote/data/")][since:]
    return {r.sensor for p in data for r in decode(p).readings}


def test_a_pushed_config_is_applied_live_and_a_bad_one_is_refused_with_its_reason(
    mosquitto: Mosquitto, org: str, tmp_path: Path
) -> None:
    agent = Agent(
        parse(base(org)), clock=SimClock(SPEED, sim_start()), state_dir=tmp_path, broker_url=mosquitto.url
    )
    recorder = Recorder("127.0.0.1", mosquitto.port, [f"sr/v1/{org}/#"]).start()
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_until(lambda: last_status(recorder, org).get("state") == "online", 20, what="birth")

        # Re-tuned, added and removed sensors, without a restart.
        new = base(org)
        new["version"] = "2026-11-24.1"
        new["sensors"] = [
            {"driver": "sim_parking", "id": "p-mercatale", "place": "mercatale", "interval_s": 30},
            {"driver": "sim_traffic", "id": "t-repubblica-in", "site": "repubblica", "direction": "inbound",
             "interval_s": 60},
        ]  # fmt: skip
        push(mosquitto, org, new)
        wait_until(
            lambda: last_status(recorder, org).get("config_version") == "2026-11-24.1", 20, what="applied"
        )
        assert list(agent.sources) == ["p-mercatale", "t-repubblica-in"]
        mark = len(recorder.on(f"sr/v1/{org}/gw-remote/data/"))
        wait_until(
            lambda: sensors_on_wire(recorder, org, mark) >= {"p-mercatale", "t-repubblica-in"},
            20,
            what="readings of the new sensor",
        )
        assert thread.is_alive()

        # A config that does not validate: refused with the reason, the running one kept.
        bad = {**new, "version": "2026-11-24.2"}
        bad["sensors"] = [*new["sensors"], {"driver": "sim_parking", "id": "p-x", "place": "atlantis"}]
        push(mosquitto, org, bad)
        status = wait_until(
            lambda: (s := last_status(recorder, org)).get("config_error") and s, 20, what="rejection"
        )
        assert status["config_version"] == "2026-11-24.1"
        assert status["config_error"]["version"] == "2026-11-24.2"
        assert "sensors[2].place" in status["config_error"]["reason"]
        assert "atlantis" in status["config_error"]["reason"]
        health = [orjson.loads(p) for _, p in recorder.on(topics.health(org, "gw-remote"))]
        wait_until(
            lambda: any(
                orjson.loads(p).get("config_error") for _, p in recorder.on(topics.health(org, "gw-remote"))
            ),
            10,
            what="the rejection in health",
        )
        assert health
        assert list(agent.sources) == ["p-mercatale", "t-repubblica-in"]

        # Not JSON at all, and a config for another gateway: refused too, and it keeps running.
        push(mosquitto, org, b"{not json")
        wait_until(
            lambda: "not JSON" in (last_status(recorder, org).get("config_error") or {}).get("reason", ""),
            20,
            what="garbage refused",
        )
        push(mosquitto, org, {**new, "id": "gw-other", "version": "x"})
        wait_until(
            lambda: "gw-other" in (last_status(recorder, org).get("config_error") or {}).get("reason", ""),
            20,
            what="another gateway's config refused",
        )
        mark = len(recorder.on(f"sr/v1/{org}/gw-remote/data/"))
        wait_until(lambda: sensors_on_wire(recorder, org, mark), 20, what="data still flowing")
        assert thread.is_alive()
    finally:
        stop.set()
        thread.join(60)
        recorder.stop()
        push(mosquitto, org, b"")  # clear the retained config

    # A restart (even with the broker unreachable) starts on the last good config.
    again = Agent(
        parse(base(org)),
        clock=SimClock(SPEED, sim_start()),
        state_dir=tmp_path,
        broker_url="mqtt://127.0.0.1:9",
    )
    try:
        assert list(again.sources) == ["p-mercatale", "t-repubblica-in"]
        assert again.config_version == "2026-11-24.1"
    finally:
        again.spool.close()
