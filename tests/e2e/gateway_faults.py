"""Helpers of the gateway fault tests: the readings a simulated gateway must have produced,
the readings InfluxDB holds, and a gateway run as a process (`sitroom gateway run`)."""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from cloud.dev.servers import Mosquitto, env_without_proxies
from cloud.io.influx.client import InfluxClient
from cloud.io.influx.lineprotocol import timestamp_ns
from edge.contract import SensorKind
from edge.drivers import SourceContext, get
from gateway.config import GatewayConfig, parse
from gateway.spool import Spool

from support import wait_until

SEED = 3
SPEED = 600.0  # ten simulated minutes per second

Key = tuple[str, str, int]  # kind, sensor, ts in ms


def gateway_config(org: str, gateway: str = "gw-faults") -> dict[str, Any]:
    return {
        "id": gateway,
        "org": org,
        "health_interval_s": 1,
        "batch": {"max_readings": 200, "max_interval_s": 0.3},
        "broker": {"reconnect_min_s": 1, "reconnect_max_s": 2, "keepalive_s": 5},
        "sensors": [
            {"driver": "sim_parking", "id": "p-mercatale", "place": "mercatale"},
            {"driver": "sim_parking_spot", "id": "s-mazzoni-01", "street": "via-mazzoni", "zone": "centro"},
            {"driver": "sim_traffic", "id": "t-repubblica-in", "site": "repubblica",
             "direction": "inbound", "interval_s": 60},
            {"driver": "sim_fleet", "id": "v-bus-101", "route": "lam-blu"},
            {"driver": "sim_fleet", "id": "v-bus-102", "route": "lam-blu", "speed_kmh": 20},
        ],
    }  # fmt: skip


def sim_start(hours_back: float = 24.0) -> datetime:
    """A whole second in the past, far enough back (x600: 144 s of wall time) that the accelerated
    clock stays behind the present however slow a loaded machine runs the test."""
    return (datetime.now(UTC) - timedelta(hours=hours_back)).replace(microsecond=0)


def clock_position(state_dir: Path, gateway: str) -> datetime:
    """The simulated instant of the gateway's last committed poll (read from its spool)."""
    spool = Spool(state_dir / f"{gateway}.spool.sqlite")
    try:
        us = int(spool.get_meta("clock_us") or 0)
    finally:
        spool.close()
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


def expected(config: GatewayConfig, start: datetime, end: datetime, seed: int = SEED) -> set[Key]:
    """Every reading the simulated sensors produce in [start, end]: they are pure in (seed, ts)."""
    ctx = SourceContext(org=config.org, gateway=config.id, seed=seed, start=start)
    out: set[Key] = set()
    for sensor in config.sensors:
        source = get(sensor.driver).open(sensor, ctx)
        while readings := source.poll(end):
            out |= {(r.kind.value, r.sensor, timestamp_ns(r.ts) // 1_000_000) for r in readings}
    return out


def stored(influx: InfluxClient) -> tuple[set[Key], int]:
    """The (kind, sensor, ts) InfluxDB holds, and how many points (duplicates would count twice)."""
    keys: set[Key] = set()
    points = 0
    for kind in SensorKind:
        for s in influx.series(f'SELECT * FROM "{kind.value}"'):
            cols = s["columns"]
            for row in s["values"]:
                rec = dict(zip(cols, row, strict=True))
                keys.add((kind.value, rec["sensor"], rec["time"]))
                points += 1
    return keys, points


def wait_for_broker_save(broker: Mosquitto) -> None:
    """Until the broker saved its state once more (Mosquitto saves every `autosave_interval`).

    A broker SIGKILLed before it saved a subscriber's session forgets the subscription, and
    drops what gateways publish until that subscriber reconnects: no gateway can prevent that
    loss, so the tests kill the broker only after it saved ingest's session.
    """
    saved = broker.log().count("Saving in-memory database")
    wait_until(lambda: broker.log().count("Saving in-memory database") > saved, 30, what="a broker save")


def load_config(raw: dict[str, Any]) -> GatewayConfig:
    return parse(raw, "test")


class GatewayProcess:
    """`python -m edge.cli gateway run ...`, as on a street box, with its log in a file."""

    def __init__(self, config_file: Path, broker_url: str, start: datetime, state_dir: Path) -> None:
        self.args = [
            sys.executable, "-m", "edge.cli", "gateway", "run",
            "--config", str(config_file), "--broker", broker_url, "--speed", str(SPEED),
            "--sim-start", start.strftime("%Y-%m-%dT%H:%M:%S%z"), "--state-dir", str(state_dir),
            "--seed", str(SEED),
        ]  # fmt: skip
        self.log_path = state_dir.parent / "gateway.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def write_config(cls, raw: dict[str, Any], path: Path) -> Path:
        path.write_text(yaml.safe_dump(raw))
        return path

    def start(self) -> GatewayProcess:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.args, stdout=log, stderr=subprocess.STDOUT, env=env_without_proxies()
            )
        return self

    def kill(self) -> None:
        """SIGKILL: no flush, no goodbye, like a power cut."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]
