"""Retention policies and rollup CQs exist after ingest starts; a second start changes nothing."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from cloud.core.settings import CloudSettings
from cloud.dev.servers import Influxd
from cloud.ingest.consumer import Ingest
from cloud.io.influx.client import InfluxClient
from cloud.io.influx.retention import RAW_RP, ROLLUP_RP, ensure, rollups
from cloud.provision.influx_users import InfluxUser, ensure_users
from cloud.rules.engine import Engine, load_rules
from cloud.rules.service import RulesService
from edge.contract import SensorKind

from support import wait_until


def state(influx: InfluxClient) -> tuple[Any, Any]:
    db = influx.database
    rps = influx.series(f'SHOW RETENTION POLICIES ON "{db}"')
    cqs = [s for s in influx.series("SHOW CONTINUOUS QUERIES") if s.get("name") == db]
    return rps, cqs


def start_and_stop(settings: CloudSettings) -> None:
    ingest = Ingest(settings)
    thread = threading.Thread(target=ingest.run, daemon=True)
    thread.start()
    wait_until(ingest.conn.connected.is_set, 20, what="ingest connected")
    ingest.stop()
    thread.join(30)


def test_ingest_start_creates_raw_and_rollup_policies_and_an_hourly_cq_per_kind(
    settings: CloudSettings, influx_db: InfluxClient
) -> None:
    start_and_stop(settings)

    rps, cqs = state(influx_db)
    by_name = {row[0]: row for row in rps[0]["values"]}
    assert by_name[RAW_RP][1:] == ["720h0m0s", "24h0m0s", 1, True]  # 30 days, the default RP
    assert by_name[ROLLUP_RP][1] == "0s"  # kept for ever
    names = {row[0] for row in cqs[0]["values"]}
    assert names == {f"{kind.value}_1h" for kind in SensorKind}


def test_a_rollup_leaves_out_string_fields_for_mean_refuses_them() -> None:
    delay = next(r for r in rollups() if r.source == "transit_delay")

    assert delay.select == 'mean("stop_sequence") AS "stop_sequence", mean("delay_s") AS "delay_s"'


def test_a_second_start_changes_nothing(settings: CloudSettings, influx_db: InfluxClient) -> None:
    start_and_stop(settings)
    before = state(influx_db)

    start_and_stop(settings)

    assert state(influx_db) == before
    assert ensure(influx_db, raw_retention="30d", rollup_retention="INF") == []


def test_a_changed_raw_retention_is_altered_in_place(influx_db: InfluxClient) -> None:
    ensure(influx_db, raw_retention="30d", rollup_retention="INF")

    issued = ensure(influx_db, raw_retention="2w", rollup_retention="INF")

    assert issued == [f'ALTER RETENTION POLICY "raw" ON "{influx_db.database}" DURATION 2w DEFAULT']
    rps, _ = state(influx_db)
    assert {row[0]: row[1] for row in rps[0]["values"]}[RAW_RP] == "336h0m0s"


def test_a_rollup_cq_computes_hourly_means_into_the_rollup_policy(influx_db: InfluxClient) -> None:
    ensure(influx_db, raw_retention="30d", rollup_retention="INF")
    parking = next(r for r in rollups() if r.source == "parking")
    hour_s = int(time.time()) // 3600 * 3600 - 7200
    influx_db.write(
        [
            f"parking,gateway=gw,org=o,sensor=p-1 occupied={n}i,capacity=100i,occupancy_pct={float(n)} {ts}"
            for n, ts in ((10, hour_s * 10**9), (30, (hour_s + 100) * 10**9))
        ]
    )
    # The CQ's own SELECT, run by hand over the hour the CQ service would cover.
    influx_db.query(
        f'SELECT {parking.select} INTO "{ROLLUP_RP}"."{parking.name}" FROM "{RAW_RP}"."parking" '
        f"WHERE time >= {hour_s}s AND time < {hour_s + 3600}s GROUP BY time(1h), *"
    )

    rows = influx_db.series(f'SELECT "occupied", "occupancy_pct" FROM "{ROLLUP_RP}"."{parking.name}"')
    assert rows[0]["values"] == [[hour_s * 1000, 20.0, 20.0]]


class AuthInfluxd(Influxd):
    """influxd with `auth-enabled = true`, as a deployment runs it."""

    def write_config(self) -> Path:
        path = super().write_config()
        path.write_text(
            path.read_text().replace(
                "[http]\n  enabled = true\n", "[http]\n  enabled = true\n  auth-enabled = true\n"
            )
        )
        return path


def test_a_write_only_user_writes_without_managing_retention_and_an_admin_start_creates_it(
    settings: CloudSettings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    admin, writer = InfluxUser("admin", "a-pass"), InfluxUser("sitroom-writer", "w-pass")
    influxd = AuthInfluxd(tmp_path / "influxd-auth").start()
    try:
        ensure_users(influxd.url, "sitroom", admin=admin, writer=writer, reader=InfluxUser("reader", "r"))
        as_writer = settings.model_copy(
            update={"influx_url": influxd.url, "influx_db": "sitroom", "influx_username": writer.name,
                    "influx_password": writer.password}
        )  # fmt: skip

        with caplog.at_level(logging.WARNING, logger="cloud.ingest.consumer"):
            start_and_stop(as_writer)
        assert "may not manage database 'sitroom'" in caplog.text

        start_and_stop(
            as_writer.model_copy(update={"influx_username": admin.name, "influx_password": admin.password})
        )
        as_admin = InfluxClient(influxd.url, "sitroom", username=admin.name, password=admin.password)
        assert ensure(as_admin, raw_retention="30d", rollup_retention="INF") == []
        as_admin.close()
    finally:
        influxd.stop()


def test_the_rules_service_starts_and_writes_alerts_as_a_write_only_user(
    settings: CloudSettings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    admin, writer = InfluxUser("admin", "a-pass"), InfluxUser("sitroom-writer", "w-pass")
    influxd = AuthInfluxd(tmp_path / "influxd-auth").start()
    try:
        ensure_users(influxd.url, "sitroom", admin=admin, writer=writer, reader=InfluxUser("reader", "r"))
        as_writer = settings.model_copy(
            update={"influx_url": influxd.url, "influx_db": "sitroom", "influx_username": writer.name,
                    "influx_password": writer.password}
        )  # fmt: skip
        service = RulesService(as_writer, Engine(load_rules()))
        errors: list[BaseException] = []

        def run() -> None:
            try:
                service.run()
            except BaseException as exc:  # noqa: BLE001  (the test reports it)
                errors.append(exc)

        with caplog.at_level(logging.WARNING, logger="cloud.rules.service"):
            thread = threading.Thread(target=run, daemon=True)
            thread.start()
            wait_until(service.conn.connected.is_set, 20, what="rules connected")
            service.stop()
            thread.join(30)
        assert not errors
        assert "may not create databases" in caplog.text
    finally:
        influxd.stop()
