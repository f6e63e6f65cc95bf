"""Store-and-forward under faults: every reading from sensor to InfluxDB, none lost, none twice.

Each test runs a simulated gateway at x600 against its own Mosquitto and the real ingest into a
fresh InfluxDB database, breaks something mid-stream, and then compares what InfluxDB holds
with every reading the simulated sensors produced (they are pure functions of seed and time).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from gateway_faults import (
    SEED,
    SPEED,
    GatewayProcess,
    clock_position,
    expected,
    gateway_config,
    load_config,
    sim_start,
    stored,
    wait_for_broker_save,
)
from support_proxy import CuttableProxy

from cloud.core.settings import CloudSettings
from cloud.dev.servers import Influxd, Mosquitto
from cloud.ingest.consumer import Ingest
from cloud.io.influx.client import InfluxClient
from edge.simulators.clock import SimClock
from gateway.agent import Agent

from support import cloud_services, count_points, unique, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def ingest_settings(
    restartable_broker: Mosquitto, influxd: Influxd, influx_db: InfluxClient, org: str
) -> CloudSettings:
    return CloudSettings(
        mqtt_url=restartable_broker.url,
        influx_url=influxd.url,
        influx_db=influx_db.database,
        org_filter=org,
        instance=unique("i-"),
        stats_interval_s=1.0,
        write_linger_ms=50,
    )


@pytest.fixture
def proxy(restartable_broker: Mosquitto) -> Iterator[CuttableProxy]:
    with CuttableProxy(restartable_broker.port) as p:
        yield p


def assert_every_reading_stored_once(
    influx: InfluxClient, ingest: Ingest, org: str, want: set[tuple[str, str, int]]
) -> None:
    try:
        wait_until(lambda: count_points(influx) >= len(want), 60, what=f"{len(want)} readings stored")
    finally:
        keys, points = stored(influx)
        missing = sorted(want - keys, key=lambda k: k[2])
        if missing:
            print(
                "MISSING",
                len(missing),
                missing[:3],
                missing[-3:],
                "of",
                min(w[2] for w in want),
                max(w[2] for w in want),
            )
            print("EXTRA", len(keys - want), points)
            print(ingest.stats.snapshot()["gateways"])
    assert keys - want == set(), "InfluxDB holds readings no sensor produced"
    assert want - keys == set(), f"{len(want - keys)} readings lost"
    assert points == len(want), "duplicates in InfluxDB"
    gateways = ingest.stats.snapshot()["gateways"]
    assert gateways[f"{org}/gw-faults"]["gaps"] == 0, "a batch seq never arrived"


def test_broker_killed_and_restarted_mid_stream_loses_no_reading(
    restartable_broker: Mosquitto, ingest_settings: CloudSettings, influx_db: InfluxClient, org: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    start = sim_start()
    agent = Agent(
        load_config(gateway_config(org)),
        clock=SimClock(SPEED, start),
        state_dir=tmp_path / "state",
        broker_url=restartable_broker.url,
        seed=SEED,
    )
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    with cloud_services(ingest_settings) as (ingest, _rules):
        thread.start()
        wait_until(lambda: agent.counters.readings_published > 200, 30, what="readings flowing")
        wait_for_broker_save(restartable_broker)
        restartable_broker.kill()
        read_at_kill = agent.counters.readings_read
        wait_until(lambda: agent.counters.readings_read > read_at_kill + 300, 30, what="reading on, offline")
        assert agent.queue_depth > 0, "readings wait in the spool while the broker is gone"
        restartable_broker.start()
        wait_until(lambda: agent.link.connects >= 2 and agent.queue_depth < 50, 60, what="backlog drained")
        stop.set()
        thread.join(60)
        assert agent.spool.messages == 0
        want = expected(agent.config, start, clock_position(tmp_path / "state", "gw-faults"))
        assert len(want) > 500
        assert_every_reading_stored_once(influx_db, ingest, org, want)


def test_broker_unreachable_for_many_simulated_minutes_loses_no_reading(
    restartable_broker: Mosquitto, proxy: CuttableProxy, ingest_settings: CloudSettings,
    influx_db: InfluxClient, org: str, tmp_path: Path,
) -> None:  # fmt: skip
    start = sim_start()
    agent = Agent(
        load_config(gateway_config(org)),
        clock=SimClock(SPEED, start),
        state_dir=tmp_path / "state",
        broker_url=proxy.url,
        seed=SEED,
    )
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    with cloud_services(ingest_settings) as (ingest, _rules):
        thread.start()
        wait_until(lambda: agent.counters.readings_published > 200, 30, what="readings flowing")
        proxy.cut()
        cut_at = agent.clock.now()
        wait_until(
            lambda: agent.clock.now() - cut_at > timedelta(minutes=20), 30, what="20 simulated minutes"
        )
        wait_until(lambda: not agent.link.is_connected, 30, what="the gateway noticing the cut")
        backlog = agent.queue_depth
        assert backlog > 100
        published_before = agent.counters.readings_published
        proxy.restore()
        wait_until(lambda: agent.queue_depth < 50, 60, what="backlog drained")
        assert agent.counters.readings_published >= published_before + backlog
        stop.set()
        thread.join(60)
        want = expected(agent.config, start, clock_position(tmp_path / "state", "gw-faults"))
        assert_every_reading_stored_once(influx_db, ingest, org, want)


def test_gateway_killed_mid_stream_and_restarted_loses_no_reading(
    restartable_broker: Mosquitto, ingest_settings: CloudSettings, influx_db: InfluxClient, org: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    raw = gateway_config(org)
    config_file = GatewayProcess.write_config(raw, tmp_path / "gw-faults.yaml")
    start = sim_start()
    state = tmp_path / "state"
    gateway = GatewayProcess(config_file, restartable_broker.url, start, state)
    with cloud_services(ingest_settings) as (ingest, _rules):
        gateway.start()
        wait_until(lambda: count_points(influx_db) > 300, 60, what=f"readings stored\n{gateway.log()}")
        gateway.kill()
        stored_at_kill = count_points(influx_db)
        gateway.start()  # same state dir and --sim-start: the simulated timeline continues
        wait_until(lambda: count_points(influx_db) > stored_at_kill + 300, 60, what="readings after restart")
        assert gateway.stop() == 0, gateway.log()
        want = expected(load_config(raw), start, clock_position(state, "gw-faults"))
        assert_every_reading_stored_once(influx_db, ingest, org, want)


def test_gateway_and_broker_killed_during_a_network_cut_lose_no_reading(
    restartable_broker: Mosquitto, proxy: CuttableProxy, ingest_settings: CloudSettings,
    influx_db: InfluxClient, org: str, tmp_path: Path,
) -> None:  # fmt: skip
    raw = gateway_config(org)
    config_file = GatewayProcess.write_config(raw, tmp_path / "gw-faults.yaml")
    start = sim_start()
    state = tmp_path / "state"
    gateway = GatewayProcess(config_file, proxy.url, start, state)
    with cloud_services(ingest_settings) as (ingest, _rules):
        gateway.start()
        wait_until(lambda: count_points(influx_db) > 300, 60, what=f"readings stored\n{gateway.log()}")
        proxy.cut()
        # The gateway reads on into its spool (x600: a wall second is ten simulated minutes).
        position = clock_position(state, "gw-faults")
        wait_until(
            lambda: clock_position(state, "gw-faults") - position > timedelta(minutes=10),
            30,
            what="ten simulated minutes offline",
        )
        gateway.kill()
        wait_for_broker_save(restartable_broker)
        restartable_broker.kill()
        restartable_broker.start()
        proxy.restore()
        stored_before = count_points(influx_db)
        gateway.start()
        wait_until(lambda: count_points(influx_db) > stored_before + 1000, 60, what="backlog and live data")
        assert gateway.stop() == 0, gateway.log()
        want = expected(load_config(raw), start, clock_position(state, "gw-faults"))
        assert_every_reading_stored_once(influx_db, ingest, org, want)


def test_a_silent_network_is_noticed_by_keepalive_and_loses_no_reading(
    restartable_broker: Mosquitto, proxy: CuttableProxy, ingest_settings: CloudSettings,
    influx_db: InfluxClient, org: str, tmp_path: Path,
) -> None:  # fmt: skip
    start = sim_start()
    agent = Agent(
        load_config(gateway_config(org)),  # keepalive 5 s
        clock=SimClock(SPEED, start),
        state_dir=tmp_path / "state",
        broker_url=proxy.url,
        seed=SEED,
    )
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    with cloud_services(ingest_settings) as (ingest, _rules):
        thread.start()
        wait_until(lambda: agent.counters.readings_published > 200, 30, what="readings flowing")
        proxy.stall()  # no RST, no FIN: bytes just vanish, as on a dead cellular link
        wait_until(lambda: not agent.link.is_connected, 30, what="keepalive noticing the silent link")
        assert agent.queue_depth > 0
        proxy.restore()
        wait_until(
            lambda: agent.link.is_connected and agent.queue_depth < 50, 60, what="reconnected and drained"
        )
        stop.set()
        thread.join(60)
        want = expected(agent.config, start, clock_position(tmp_path / "state", "gw-faults"))
        assert_every_reading_stored_once(influx_db, ingest, org, want)
