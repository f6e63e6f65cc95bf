"""The walking skeleton end to end: simulated gateways → Mosquitto → ingest → InfluxDB, and rules."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from cloud.core.settings import CloudSettings
from cloud.dev.servers import Mosquitto
from cloud.io.influx.client import InfluxClient
from cloud.io.influx.lineprotocol import timestamp_ns
from edge.contract import KINDS, Reading, SensorKind, decode
from edge.simulators.clock import SimClock
from gateway.agent import Agent
from gateway.config import GatewayConfig, parse

from support import Recorder, cloud_services, count_points, wait_until

pytestmark = pytest.mark.e2e

SPEED = 300.0  # five simulated minutes per second
RUN_S = 7.0


def configs(org: str) -> list[GatewayConfig]:
    return [
        parse(
            {
                "id": "gw-centro",
                "org": org,
                "health_interval_s": 1,
                "batch": {"max_readings": 50, "max_interval_s": 0.3},
                "sensors": [
                    {"driver": "sim_parking", "id": "p-mercatale", "place": "mercatale",
                     "anomalies": [{"kind": "saturate", "after_min": 2}]},
                    {"driver": "sim_parking", "id": "p-castello", "place": "castello",
                     "anomalies": [{"kind": "silent", "after_min": 4}]},
                    {"driver": "sim_parking_spot", "id": "s-mazzoni-01", "street": "via-mazzoni",
                     "zone": "centro"},
                    {"driver": "sim_traffic", "id": "t-repubblica-in", "site": "repubblica",
                     "direction": "inbound", "interval_s": 60},
                ],
            }
        ),
        parse(
            {
                "id": "gw-bus",
                "org": org,
                "health_interval_s": 1,
                "sensors": [
                    {"driver": "sim_fleet", "id": "v-bus-101", "route": "lam-blu"},
                    {"driver": "sim_fleet", "id": "v-bus-102", "route": "lam-blu", "speed_kmh": 20,
                     "anomalies": [{"kind": "halted", "after_min": 5}]},
                ],
            }
        ),
    ]  # fmt: skip


def run_gateways(
    gateways: list[GatewayConfig], mosquitto: Mosquitto, state_dir: Path, run_s: float
) -> list[Agent]:
    clock = SimClock.replaying(SPEED, horizon_s=run_s + 2)
    agents = [
        Agent(cfg, clock=clock, state_dir=state_dir, broker_url=mosquitto.url, seed=7) for cfg in gateways
    ]
    stop = threading.Event()
    threads = [threading.Thread(target=a.run, args=(stop, run_s)) for a in agents]
    for t in threads:
        t.start()
    for t in threads:
        t.join(run_s + 30)
    return agents


def stored_rows(influx: InfluxClient, kind: SensorKind) -> dict[tuple[str, int], dict[str, Any]]:
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for s in influx.series(f'SELECT * FROM "{kind.value}"'):
        cols = s["columns"]
        for row in s["values"]:
            rec = dict(zip(cols, row, strict=True))
            out[(rec["sensor"], rec["time"])] = {
                f: rec[f] for f in KINDS[kind].by_name if rec.get(f) is not None
            }
    return out


def test_simulated_gateways_reach_influxdb_exactly_as_sent_and_anomalies_raise_alerts(
    settings: CloudSettings, mosquitto: Mosquitto, influx_db: InfluxClient, org: str, tmp_path: Path
) -> None:
    recorder = Recorder("127.0.0.1", mosquitto.port, [f"sr/v1/{org}/#", f"sr/v1/alerts/{org}/#"]).start()
    try:
        with cloud_services(settings) as (ingest, _rules):
            agents = run_gateways(configs(org), mosquitto, tmp_path / "state", RUN_S)
            published = sum(a.counters.readings_published for a in agents)
            assert published > 200
            assert all(a.counters.readings_read == a.counters.readings_published for a in agents)

            # What went over the wire, as a third party on the broker saw it.
            sent: dict[tuple[str, str, int], Reading] = {}
            for topic, payload in recorder.on(f"sr/v1/{org}/"):
                if "/data/" in topic:
                    for r in decode(payload).readings:
                        sent[(r.kind.value, r.sensor, timestamp_ns(r.ts) // 1_000_000)] = r
            assert len(sent) == published

            wait_until(lambda: count_points(influx_db) == published, 30, what="every reading stored")
            for kind in SensorKind:
                rows = stored_rows(influx_db, kind)
                expected = {(s, ts): r.fields for (k, s, ts), r in sent.items() if k == kind.value}
                assert rows == expected, f"{kind.value}: stored rows differ from what was sent"

            alerts = wait_until(
                lambda: (
                    {
                        (b["rule"], b["entity"])
                        for t, p in recorder.on(f"sr/v1/alerts/{org}/")
                        if (b := orjson.loads(p))["state"] == "firing"
                    }
                    >= {("parking-full", "p-mercatale"), ("sensor-silent", "p-castello")}
                    and recorder.on(f"sr/v1/alerts/{org}/")
                ),
                15,
                what="parking-full and sensor-silent alerts",
            )
            assert alerts
            stored_alerts = influx_db.series(
                'SELECT "message", "value" FROM "alerts" WHERE "state" = \'firing\''
            )
            assert stored_alerts, "alerts are written to InfluxDB too"
            assert ingest.stats.snapshot()["deadletters"] == 0
    finally:
        recorder.stop()


def test_gateway_status_is_retained_online_then_offline_after_shutdown(
    mosquitto: Mosquitto, org: str, tmp_path: Path
) -> None:
    run_gateways(configs(org)[1:], mosquitto, tmp_path, 1.0)
    late = Recorder("127.0.0.1", mosquitto.port, [f"sr/v1/{org}/+/status"]).start()
    try:
        msgs = wait_until(lambda: late.on(f"sr/v1/{org}/gw-bus/status"), 5, what="retained status")
        assert orjson.loads(msgs[-1][1])["state"] == "offline"
        assert orjson.loads(msgs[-1][1])["reason"] == "shutdown"
    finally:
        late.stop()


def test_gateway_sequence_numbers_continue_across_restarts(
    mosquitto: Mosquitto, org: str, tmp_path: Path
) -> None:
    recorder = Recorder("127.0.0.1", mosquitto.port, [f"sr/v1/{org}/+/data/+"]).start()
    try:
        for _ in range(2):
            run_gateways(configs(org)[1:], mosquitto, tmp_path, 1.0)
        seqs = [decode(p).envelope.seq for _, p in recorder.on(f"sr/v1/{org}/")]
        assert seqs == list(range(len(seqs))), "seq restarts would look like duplicates to the cloud"
        assert Counter(seqs).most_common(1)[0][1] == 1
    finally:
        recorder.stop()
