"""The watchdog on ingest's own health: an alert when ingest stops, and when it stalls.

The rules service reads the gateways' data straight from MQTT, so it raised its alerts while
ingest was dead; now it watches ingest's health reports (`sr/v1/services/ingest/{i}/health`)
with a `service_watchdog` rule. Issue 18 point 10.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest

from cloud.core.settings import CloudSettings
from cloud.dev.servers import Influxd, Mosquitto, env_without_proxies
from cloud.ingest.consumer import Ingest
from cloud.rules.engine import Engine, load_rules
from cloud.rules.service import RulesService
from cloud.rules.store import AlertStore
from edge.contract import topics

from support import REPO, Recorder, unique, wait_until

pytestmark = pytest.mark.e2e

RULES = """
rules:
  - rule: service_watchdog
    name: ingest-down
    org: {org}
    silent_s: 5
    stall_s: 3
"""


@contextmanager
def rules_service(settings: CloudSettings, tmp_path: Path) -> Iterator[RulesService]:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES.format(org=settings.org_filter))
    service = RulesService(
        settings, Engine(load_rules(path)), store=AlertStore(f"sqlite:///{tmp_path}/alerts.db")
    )
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    try:
        wait_until(service.conn.subscribed.is_set, 10, what="rules service subscribed")
        yield service
    finally:
        service.stop()
        thread.join(20)


@contextmanager
def alerts_of(mosquitto: Mosquitto, org: str) -> Iterator[Recorder]:
    recorder = Recorder("127.0.0.1", mosquitto.port, [f"{topics.ROOT}/alerts/{org}/#"]).start()
    try:
        yield recorder
    finally:
        recorder.stop()


def states(recorder: Recorder, instance: str) -> list[tuple[str, str]]:
    """(state, message) of every alert about `instance`, in order."""
    out = []
    for _, payload in recorder.on(f"{topics.ROOT}/alerts/"):
        alert: dict[str, Any] = orjson.loads(payload)
        if alert["entity"] == instance:
            out.append((alert["state"], alert["message"]))
    return out


def test_an_ingest_killed_raises_the_watchdog_alert_and_its_restart_resolves_it(
    settings: CloudSettings, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    instance = unique("w-")
    env = env_without_proxies() | {
        "SITROOM_MQTT_URL": settings.mqtt_url,
        "SITROOM_INFLUX_URL": settings.influx_url,
        "SITROOM_INFLUX_DB": settings.influx_db,
        "SITROOM_ORG_FILTER": settings.org_filter,
        "SITROOM_INSTANCE": instance,
        "SITROOM_STATS_INTERVAL_S": "0.5",
    }

    log_path = tmp_path / "ingest.log"

    def start() -> subprocess.Popen[bytes]:
        with log_path.open("ab") as log:  # the child keeps its own descriptor
            return subprocess.Popen([sys.executable, "-m", "edge.cli", "cloud", "ingest"], env=env, cwd=REPO,
                                    stdout=log, stderr=subprocess.STDOUT)  # fmt: skip

    with rules_service(settings, tmp_path) as rules, alerts_of(mosquitto, settings.org_filter) as alerts:
        proc = start()
        try:
            wait_until(lambda: rules.engine.rules[0].instances.get(instance), 30, what="ingest's health seen")  # type: ignore[attr-defined]
            assert states(alerts, instance) == []
            os.kill(proc.pid, signal.SIGKILL)  # no goodbye, no final report
            proc.wait(30)
            wait_until(lambda: states(alerts, instance), 15, what="the watchdog alert")
            ((state, message),) = states(alerts, instance)
            assert state == "firing"
            assert message.startswith(f"ingest {instance} silent for")

            proc = start()
            wait_until(lambda: len(states(alerts, instance)) == 2, 30, what="the alert resolved")
            assert states(alerts, instance)[1] == ("resolved", f"ingest {instance} reports again")
        finally:
            proc.terminate()
            proc.wait(30)


def test_an_ingest_that_cannot_write_raises_a_stall_alert_that_resolves_when_it_writes_again(
    settings: CloudSettings, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    own = Influxd(tmp_path / "influxd").start()  # ingest's own InfluxDB, to stop
    ingest = Ingest(settings.model_copy(update={"influx_url": own.url, "stats_interval_s": 0.5}))
    instance = ingest.settings.instance
    thread = threading.Thread(target=ingest.run, daemon=True)
    publisher = Recorder("127.0.0.1", mosquitto.port, ["unused/#"]).start()
    try:
        with rules_service(settings, tmp_path) as rules, alerts_of(mosquitto, settings.org_filter) as alerts:
            thread.start()
            wait_until(lambda: rules.engine.rules[0].instances.get(instance), 30, what="ingest's health seen")  # type: ignore[attr-defined]
            own.stop()
            topic = topics.health(settings.org_filter, "gw-a")
            for n in range(5):  # work for ingest, which it cannot write
                publisher.client.publish(topic, orjson.dumps({"uptime_s": n, "queue_depth": 0}), qos=1)
            wait_until(lambda: states(alerts, instance), 20, what="the stall alert")
            ((state, message),) = states(alerts, instance)
            assert (state, message.split(":")[0]) == ("firing", f"ingest {instance} stalled")

            own.start()
            wait_until(lambda: len(states(alerts, instance)) == 2, 30, what="the alert resolved")
            assert states(alerts, instance)[1] == ("resolved", f"ingest {instance} makes progress again")
    finally:
        publisher.stop()
        ingest.stop()
        thread.join(30)
        own.stop()
