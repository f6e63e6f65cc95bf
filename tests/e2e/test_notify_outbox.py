"""Notifications survive a crash: the rules service killed with a notification pending delivers
it after its restart (the outbox beside the alert store). Issue 18 point 10."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cloud.core.settings import CloudSettings
from cloud.dev.servers import Mosquitto, env_without_proxies
from edge.contract import SCHEMA_VERSION, Batch, Reading, SensorKind, encode, topics

from support import REPO, Hooks, unique, wait_until

pytestmark = pytest.mark.e2e


def pending(db: Path) -> int:
    """Rows in the notification outbox (0 while it does not exist yet)."""
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        try:
            return int(conn.execute("SELECT count(*) FROM notify_outbox").fetchone()[0])
        except sqlite3.OperationalError:  # not created yet
            return 0


def test_a_rules_service_killed_with_a_notification_pending_delivers_it_after_its_restart(
    settings: CloudSettings, mosquitto: Mosquitto, hooks: Hooks, tmp_path: Path
) -> None:
    org = settings.org_filter
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        textwrap.dedent(
            f"""
            rules:
              - {{rule: threshold, name: parking-full, kind: parking, field: occupancy_pct,
                  above: 95, clear: 90, hold_min: 0, severity: warning}}
            notifications:
              group_wait_s: 4  # the alert waits this long for others: time to kill the service
              channels:
                - {{type: webhook, name: ops-hook, url: "{hooks.url}", secret: s3cret}}
              routes:
                - {{org: {org}, channels: [ops-hook]}}
            """
        )
    )
    db = tmp_path / "alerts.db"
    env = env_without_proxies() | {
        "SITROOM_MQTT_URL": settings.mqtt_url,
        "SITROOM_INFLUX_URL": settings.influx_url,
        "SITROOM_INFLUX_DB": settings.influx_db,
        "SITROOM_ORG_FILTER": org,
        "SITROOM_INSTANCE": unique("r-"),
        "SITROOM_ALERTS_DB": f"sqlite:///{db}",
    }
    log_path = tmp_path / "rules.log"

    def start() -> subprocess.Popen[bytes]:
        with log_path.open("ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "edge.cli", "cloud", "rules", "--rules", str(rules)],
                env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    proc = start()
    publisher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=unique("pub-"))
    try:
        wait_until(lambda: "rules" in log_path.read_text() or db.exists(), 30, what="the rules service up")
        publisher.connect("127.0.0.1", mosquitto.port)
        publisher.loop_start()
        now = datetime.now(UTC)
        full = Reading(kind=SensorKind.PARKING, org=org, gateway="gw-a", sensor="p-a", ts=now,
                       fields={"occupied": 99, "capacity": 100, "occupancy_pct": 99.0})  # fmt: skip

        def send_full() -> bool:
            batch = Batch(v=SCHEMA_VERSION, org=org, gateway="gw-a", kind=SensorKind.PARKING, seq=1,
                          sent_at=now, readings=(full,))  # fmt: skip
            publisher.publish(
                topics.data(org, "gw-a", SensorKind.PARKING), encode(batch), qos=1
            ).wait_for_publish(10)
            return pending(db) > 0

        # Until the service is subscribed the reading goes nowhere: send it again until it counts.
        wait_until(send_full, 30, interval_s=0.5, what="a notification pending in the outbox")
        os.kill(proc.pid, signal.SIGKILL)  # within group_wait_s: nothing delivered yet
        proc.wait(30)
        assert hooks.requests == []
        assert pending(db) == 1

        proc = start()
        wait_until(lambda: hooks.requests, 30, what="the pending notification delivered after the restart")
        (_, body), *more = hooks.requests
        assert more == []
        (delivered,) = orjson.loads(body)["alerts"]
        assert (delivered["rule"], delivered["entity"], delivered["state"]) == (
            "parking-full",
            "p-a",
            "firing",
        )
        wait_until(lambda: pending(db) == 0, 10, what="the outbox emptied")
    finally:
        publisher.disconnect()
        publisher.loop_stop()
        proc.terminate()
        proc.wait(30)
