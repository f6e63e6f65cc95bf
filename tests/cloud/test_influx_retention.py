"""Retention policies and rollup CQs exist after ingest starts; a second start changes nothing;
rollups aggregate each field as the contract declares it and are backfilled when created late.
The services run as the write-only user a deployment gives them."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from support_transit import OPERATOR, PRATO_AREA, prato_feed_zip

from cloud.apps.rules import build_rules_service
from cloud.core.settings import CloudSettings
from cloud.dev.servers import Influxd
from cloud.ingest.consumer import Ingest
from cloud.io.influx.client import InfluxClient
from cloud.io.influx.retention import (
    DAILY_RP,
    HOURLY_UP_TO_S,
    META_RP,
    RAW_RP,
    RAW_UP_TO_S,
    ROLLUP_RP,
    RP_CHOICE_MEASUREMENT,
    ensure,
    rollups,
)
from cloud.provision.influx_users import InfluxUser, ensure_users
from cloud.rules.engine import Engine, load_rules
from cloud.rules.service import RulesService
from cloud.transit.store import TransitStore
from edge.contract import SCHEMA_VERSION, Batch, BrokerAddress, Reading, SensorKind, encode, topics

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
    assert by_name[RAW_RP][1:] == ["720h0m0s", "168h0m0s", 1, True]  # 30 days in weeks, the default RP
    assert by_name[ROLLUP_RP][1:3] == ["0s", "672h0m0s"]  # kept for ever, in 4-week shards
    assert by_name[DAILY_RP][1:3] == ["0s", "8736h0m0s"]
    names = {row[0] for row in cqs[0]["values"]}
    assert names == {r.name for r in rollups()}
    assert {
        "parking_1h",
        "parking_spot_1h",
        "traffic_1h",
        "traffic_1h_vehicles",
        "fleet_1h",
        "traffic_1d",
    } <= names
    assert {f"{kind.value}_1h" for kind in SensorKind} <= names


def test_a_rollup_leaves_out_string_fields_for_no_aggregate_takes_them() -> None:
    delay = next(r for r in rollups() if r.source == "transit_delay" and r.name == "transit_delay_1h")

    assert "trip" not in delay.select
    assert "status" not in delay.select
    assert 'last("stop_sequence") AS "stop_sequence"' in delay.select
    assert 'max("delay_s") AS "delay_s_max"' in delay.select


def test_a_second_start_changes_nothing(settings: CloudSettings, influx_db: InfluxClient) -> None:
    start_and_stop(settings)
    before = state(influx_db)

    start_and_stop(settings)

    assert state(influx_db) == before
    assert ensure(influx_db, raw_retention="30d", rollup_retention="INF") == []


def test_a_changed_raw_retention_is_altered_in_place(influx_db: InfluxClient) -> None:
    ensure(influx_db, raw_retention="30d", rollup_retention="INF")

    issued = ensure(influx_db, raw_retention="2w", rollup_retention="INF")

    assert issued == [
        f'ALTER RETENTION POLICY "raw" ON "{influx_db.database}" DURATION 2w SHARD DURATION 7d DEFAULT'
    ]
    rps, _ = state(influx_db)
    assert {row[0]: row[1] for row in rps[0]["values"]}[RAW_RP] == "336h0m0s"


def hour_ago(n: int) -> int:
    """The start of the hour `n` hours before the current one, in seconds."""
    return int(time.time()) // 3600 * 3600 - n * 3600


def run_cq_by_hand(influx: InfluxClient, kind: str, hour_s: int) -> None:
    """What the CQ service does at the end of the hour: each CQ's own SELECT over that hour."""
    for r in rollups():
        if r.source == kind and r.source_rp == RAW_RP:
            where = " AND ".join(c for c in (r.where, f"time >= {hour_s}s AND time < {hour_s + 3600}s") if c)
            influx.query(
                f'SELECT {r.select} INTO "{ROLLUP_RP}"."{kind}" FROM "{RAW_RP}"."{kind}" '
                f"WHERE {where} GROUP BY time(1h), *"
            )


def rollup_row(influx: InfluxClient, kind: str, fields: list[str]) -> list[Any]:
    selected = ", ".join(f'"{f}"' for f in fields)
    rows = influx.series(f'SELECT {selected} FROM "{ROLLUP_RP}"."{kind}"')
    assert len(rows) == 1, rows
    assert len(rows[0]["values"]) == 1, rows
    return list(rows[0]["values"][0][1:])


def test_a_traffic_rollup_sums_counts_and_averages_speed_over_intervals_with_vehicles(
    influx_db: InfluxClient,
) -> None:
    ensure(influx_db, raw_retention="30d", rollup_retention="INF")
    hour_s = hour_ago(2)
    influx_db.write(
        [
            f"traffic,gateway=gw,org=o,sensor=t-1 vehicles={v}i,heavy={h}i,interval_s=300i,"
            f"speed_kmh={s},occupancy_pct={o} {(hour_s + 300 * i) * 10**9}"
            for i, (v, h, s, o) in enumerate([(10, 1, 40.0, 10.0), (30, 3, 20.0, 30.0), (0, 0, 0.0, 0.0)])
        ]
    )

    run_cq_by_hand(influx_db, "traffic", hour_s)

    fields = ["vehicles", "heavy", "interval_s", "speed_kmh", "occupancy_pct", "occupancy_pct_max", "samples"]
    # 40 vehicles in 900 s; the empty interval's "0 km/h" is no speed: (40 + 20) / 2.
    assert rollup_row(influx_db, "traffic", fields) == [40, 4, 900, 30.0, pytest.approx(40 / 3), 30.0, 3]


def test_parking_rollups_average_occupancy_with_its_peak_and_keep_a_bays_last_state(
    influx_db: InfluxClient,
) -> None:
    ensure(influx_db, raw_retention="30d", rollup_retention="INF")
    hour_s = hour_ago(3)
    influx_db.write(
        [
            f"parking,gateway=gw,org=o,sensor=p-1 occupied={n}i,capacity=100i,occupancy_pct={float(n)} "
            f"{(hour_s + 60 * i) * 10**9}"
            for i, n in enumerate((10, 30, 20))
        ]
        + [
            f"parking_spot,gateway=gw,org=o,sensor=s-1 occupied={state} {(hour_s + 60 * i) * 10**9}"
            for i, state in enumerate(("true", "false", "true", "false"))
        ]
    )

    run_cq_by_hand(influx_db, "parking", hour_s)
    run_cq_by_hand(influx_db, "parking_spot", hour_s)

    fields = ["occupied", "occupied_max", "capacity", "occupancy_pct_max"]
    assert rollup_row(influx_db, "parking", fields) == [20.0, 30, 100, 30.0]
    assert rollup_row(influx_db, "parking_spot", ["occupied", "samples"]) == [False, 4]


def test_a_fleet_rollup_keeps_the_last_position_of_the_hour(influx_db: InfluxClient) -> None:
    ensure(influx_db, raw_retention="30d", rollup_retention="INF")
    hour_s = hour_ago(2)
    influx_db.write(
        [
            f"fleet,gateway=gw,org=o,sensor=v-1 lat={lat},lon={lon},speed_kmh={v},heading_deg=90.0 "
            f"{(hour_s + 600 * i) * 10**9}"
            for i, (lat, lon, v) in enumerate(
                [(43.87, 11.09, 30.0), (43.88, 11.10, 50.0), (43.89, 11.11, 10.0)]
            )
        ]
    )

    run_cq_by_hand(influx_db, "fleet", hour_s)

    assert rollup_row(influx_db, "fleet", ["lat", "lon", "speed_kmh", "speed_kmh_max"]) == [
        43.89, 11.11, 30.0, 50.0,
    ]  # fmt: skip


def test_rollups_created_after_raw_data_exists_are_backfilled_and_only_once(influx_db: InfluxClient) -> None:
    for name, duration in (("raw", "30d"), ("rollup", "INF")):
        influx_db.query(
            f'CREATE RETENTION POLICY "{name}" ON "{influx_db.database}" DURATION {duration} REPLICATION 1'
        )
    hours = [hour_ago(n) for n in (30, 5, 2)]  # yesterday and today, all before the CQs exist
    influx_db.write(
        [f"traffic,gateway=gw,org=o,sensor=t-1 vehicles=7i,heavy=0i,interval_s=60i,speed_kmh=50.0,"
         f"occupancy_pct=3.0 {(h + 120) * 10**9}" for h in hours],
        retention_policy="raw",
    )  # fmt: skip

    messages: list[str] = []
    issued = ensure(influx_db, raw_retention="30d", rollup_retention="INF", progress=messages.append)

    rows = influx_db.series(f'SELECT "vehicles", "speed_kmh" FROM "{ROLLUP_RP}"."traffic"')
    assert [r[0] // 1000 for r in rows[0]["values"]] == hours
    assert [r[1:] for r in rows[0]["values"]] == [[7, 50.0]] * 3
    assert any("rollup traffic_1h backfilled" in m and ": 3 points" in m for m in messages), messages
    daily = influx_db.series(f'SELECT "vehicles", "samples" FROM "{DAILY_RP}"."traffic"')
    assert sum(r[1] for r in daily[0]["values"]) == 21  # the three hours' vehicles, summed per day
    assert sum(r[2] for r in daily[0]["values"]) == 3
    assert any(s.startswith("CREATE CONTINUOUS QUERY") for s in issued)
    messages.clear()
    assert ensure(influx_db, raw_retention="30d", rollup_retention="INF", progress=messages.append) == []
    assert messages == []


def test_the_rp_choice_sends_short_ranges_to_raw_and_long_ones_to_the_rollups(
    influx_db: InfluxClient,
) -> None:
    ensure(influx_db, raw_retention="30d", rollup_retention="INF")

    def chosen(range_s: int) -> list[str]:
        to_ms = 1_800_000_000_000
        span = f"{to_ms} - {to_ms - range_s * 1000}"  # ${__to} - ${__from}, as Grafana sends them
        where = f'"from_ms" < {span} AND "to_ms" >= {span}'
        q = f'SELECT "rp" FROM "{META_RP}"."{RP_CHOICE_MEASUREMENT}" WHERE {where}'
        return [row[1] for s in influx_db.series(q) for row in s["values"]]

    assert chosen(6 * 3600) == ["raw"]
    assert chosen(RAW_UP_TO_S) == ["raw"]
    assert chosen(7 * 86400) == ["rollup"]
    assert chosen(HOURLY_UP_TO_S) == ["rollup"]
    assert chosen(30 * 86400) == ["rollup_1d"]


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


def test_a_retention_shorter_than_a_week_keeps_influxdbs_own_shard_length(influx_db: InfluxClient) -> None:
    issued = ensure(influx_db, raw_retention="2d", rollup_retention="INF")

    raw = next(s for s in issued if '"raw"' in s)
    assert raw == f'CREATE RETENTION POLICY "raw" ON "{influx_db.database}" DURATION 2d REPLICATION 1 DEFAULT'
    assert ensure(influx_db, raw_retention="2d", rollup_retention="INF") == []


def test_the_rules_service_writes_the_park_and_ride_points_as_a_write_only_user(
    settings: CloudSettings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The park-and-ride picture learns the car parks from the stream (cloud/transit/
    # intermodality.py): the service's user may write points, never read them back.
    admin, writer = InfluxUser("admin", "a-pass"), InfluxUser("sitroom-writer", "w-pass")
    influxd = AuthInfluxd(tmp_path / "influxd-auth").start()
    transit_db = f"sqlite:///{tmp_path / 'transit.db'}"
    buses = TransitStore.open(transit_db)
    buses.import_feed(prato_feed_zip(), operator=OPERATOR, area=PRATO_AREA)
    buses.close()
    publisher = mqtt.Client(CallbackAPIVersion.VERSION2)
    try:
        ensure_users(influxd.url, "sitroom", admin=admin, writer=writer, reader=InfluxUser("reader", "r"))
        as_writer = settings.model_copy(
            update={"influx_url": influxd.url, "influx_db": "sitroom", "influx_username": writer.name,
                    "influx_password": writer.password, "transit_db": transit_db}
        )  # fmt: skip
        alerts_db = f"sqlite:///{tmp_path / 'alerts.db'}"
        service = build_rules_service(as_writer, rules_file=None, alerts_db=alerts_db, reload=False)
        thread = threading.Thread(target=service.run, daemon=True)
        with caplog.at_level(logging.WARNING, logger="cloud.transit.intermodality"):
            thread.start()
            wait_until(service.conn.connected.is_set, 20, what="rules connected")
            broker = BrokerAddress.parse(settings.mqtt_url)
            publisher.connect(broker.host, broker.port)
            publisher.loop_start()
            org, now = settings.org_filter, datetime.now(UTC)
            full, free = parking(org, "p-mercatale", now, 516, 520), parking(org, "p-serraglio", now, 50, 150)
            batch = Batch(
                v=SCHEMA_VERSION, org=org, gateway="gw-parking", kind=SensorKind.PARKING, seq=1,
                sent_at=now, readings=(full, free),
            )  # fmt: skip
            topic = topics.data(org, "gw-parking", SensorKind.PARKING)
            publisher.publish(topic, encode(batch), qos=1).wait_for_publish(30)

            as_admin = InfluxClient(influxd.url, "sitroom", username=admin.name, password=admin.password)
            query = 'SELECT last("free") FROM "park_and_ride" GROUP BY "sensor", "toward"'
            rows = wait_until(lambda: as_admin.series(query), 30, what="park-and-ride points")
            as_admin.close()
            service.stop()
            thread.join(30)
        assert {(s["tags"]["sensor"], s["tags"]["toward"]): s["values"][0][1] for s in rows}[
            ("p-serraglio", "p-mercatale")
        ] == 100
        assert "park-and-ride points not written" not in caplog.text
    finally:
        publisher.loop_stop()
        influxd.stop()


def parking(org: str, sensor: str, ts: datetime, occupied: int, capacity: int) -> Reading:
    pct = round(100 * occupied / capacity, 1)
    return Reading(
        kind=SensorKind.PARKING, org=org, gateway="gw-parking", sensor=sensor, ts=ts,
        fields={"occupied": occupied, "capacity": capacity, "occupancy_pct": pct},
    )  # fmt: skip
