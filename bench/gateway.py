# ruff: noqa: E402  (imports follow the sys.path fix below)
"""Gateway benchmark: footprint at 200 sensors, backlog drain, spool cost per reading.

    .venv/bin/python bench/gateway.py [--json FILE] [--backlog 1000000] [--footprint-s 60]

1. Footprint: `sitroom gateway run` as a process (as on a street box) with 200 simulated sensors
   reporting every 10 s in real time, against a local Mosquitto; its RSS and CPU (percent of
   one core) are read from /proc over the last `--footprint-s` seconds after a warm-up.
2. Drain: a spool holding `--backlog` readings (full batches, as a gateway builds them while
   offline), drained by the agent to a local Mosquitto; a subscriber counts what arrives.
   `lost` = readings spooled - readings the subscriber received.
3. Spool cost: wall time of staging and sealing, per reading, in the live pattern of (1)
   (a commit per 0.1 s tick with the readings of that tick, a batch per kind per second),
   with the default durability (every commit fsynced).

Targets (issue 4): RSS < 60 MB, CPU < 5 % of a core, drain >= 20,000 readings/s.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named like the package it measures: run as a script, its own folder comes first
# on sys.path and `import gateway` would find this file instead of the package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import json
import os
import subprocess
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from cloud.dev.servers import Mosquitto, env_without_proxies
from edge.contract import SensorKind
from edge.drivers import SourceContext, get
from edge.simulators.clock import WallClock
from edge.simulators.places import ROUTES, SITES, ZONES
from gateway import batches
from gateway.agent import Agent
from gateway.config import GatewayConfig, parse
from gateway.spool import OutgoingMessage, Spool

ORG = "bench"


def sensors_200(interval_s: int = 10) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    zones, sites, routes = list(ZONES), list(SITES), list(ROUTES)
    for i in range(100):
        out.append({"driver": "sim_parking_spot", "id": f"s-{i:03d}", "street": f"via-bench-{i % 20}",
                    "zone": zones[i % len(zones)], "interval_s": interval_s})  # fmt: skip
    for i in range(60):
        out.append({"driver": "sim_traffic", "id": f"t-{i:03d}", "site": sites[i % len(sites)],
                    "lane": 1 + i % 9, "direction": "inbound" if i % 2 else "outbound",
                    "interval_s": interval_s})  # fmt: skip
    for i in range(40):
        out.append({"driver": "sim_fleet", "id": f"v-{i:03d}", "route": routes[i % len(routes)],
                    "interval_s": interval_s})  # fmt: skip
    return out


def proc_stats(pid: int) -> tuple[float, float]:
    """(RSS in MB, CPU seconds user+system) of a process."""
    rss_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu_s = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return rss_pages * os.sysconf("SC_PAGE_SIZE") / 1_048_576, cpu_s


def footprint(broker: Mosquitto, work: Path, warmup_s: float, measure_s: float) -> dict[str, float]:
    config = {"id": "gw-bench", "org": ORG, "sensors": sensors_200()}
    path = work / "gw-bench.yaml"
    path.write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "edge.cli", "gateway", "run", "--config", str(path),
           "--broker", broker.url, "--state-dir", str(work / "footprint-state")]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env_without_proxies(), stderr=subprocess.DEVNULL)
    try:
        time.sleep(warmup_s)
        _, cpu0 = proc_stats(proc.pid)
        t0 = time.monotonic()
        peak_rss = 0.0
        while time.monotonic() - t0 < measure_s:
            time.sleep(1.0)
            peak_rss = max(peak_rss, proc_stats(proc.pid)[0])
        _, cpu1 = proc_stats(proc.pid)
        cpu_pct = 100.0 * (cpu1 - cpu0) / (time.monotonic() - t0)
    finally:
        proc.terminate()
        proc.wait(60)
    return {"rss_mb": round(peak_rss, 1), "cpu_pct_of_core": round(cpu_pct, 2)}


def fill(spool: Spool, n_readings: int, per_batch: int) -> int:
    """Spool `n_readings` real simulated readings as full batches; returns readings spooled."""
    config = parse({"id": "gw-drain", "org": ORG, "sensors": sensors_200(60)}, "bench")
    start = datetime(2026, 11, 1, tzinfo=UTC)
    ctx = SourceContext(org=ORG, gateway="gw-drain", seed=1, start=start)
    # 200 sensors once a minute: `span` minutes hold n_readings; encode one sample window and
    # shift it in time so that filling stays quick.
    sample: dict[SensorKind, list[bytes]] = {}
    for sensor in config.sensors:
        source = get(sensor.driver).open(sensor, ctx)
        for r in source.poll(start + timedelta(minutes=59)):
            sample.setdefault(r.kind, []).append(batches.fragment([r]))
    kinds = list(sample)
    spooled = 0
    seq = spool.next_seq
    rows: list[OutgoingMessage] = []
    k = 0
    while spooled < n_readings:
        kind = kinds[k % len(kinds)]
        k += 1
        frags = sample[kind]
        group = [frags[j % len(frags)] for j in range(min(per_batch, n_readings - spooled))]
        data, offset = batches.payload(
            org=ORG,
            gateway="gw-drain",
            kind=kind,
            seq=seq,
            sent_at=datetime.now(UTC),
            readings=b",".join(group),
        )
        topic = f"sr/v1/{ORG}/gw-drain/data/{kind.value}"
        rows.append(OutgoingMessage(topic, data, readings=len(group), sent_at_offset=offset))
        seq += 1
        spooled += len(group)
        if len(rows) >= 200:
            spool.append(rows)
            rows = []
    if rows:
        spool.append(rows)
    spool.set_meta({"next_seq": str(seq)})
    return spooled


class Counter:
    def __init__(self, broker: Mosquitto) -> None:
        self.readings = 0
        self.messages = 0
        self.ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-counter", clean_session=True)
        self.client.on_connect = lambda c, *_: c.subscribe(f"sr/v1/{ORG}/gw-drain/data/+", qos=1)
        self.client.on_subscribe = lambda *_: self.ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        self.ready.wait(10)

    def _on_message(self, _c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        self.messages += 1
        self.readings += msg.payload.count(b'"sensor":')

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def drain(broker: Mosquitto, work: Path, n_readings: int, per_batch: int) -> dict[str, float]:
    idle = {"driver": "sim_parking", "id": "p-idle", "place": "mercatale", "interval_s": 3600}
    raw = {"id": "gw-drain", "org": ORG, "health_interval_s": 3600, "sensors": [idle]}
    config: GatewayConfig = parse(raw, "bench")
    state = work / "drain-state"
    spool = Spool(state / "gw-drain.spool.sqlite")
    t0 = time.perf_counter()
    spooled = fill(spool, n_readings, per_batch)
    fill_s = time.perf_counter() - t0
    messages = spool.messages
    spool.close()
    counter = Counter(broker)
    agent = Agent(config, clock=WallClock(), state_dir=state, broker_url=broker.url)
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    thread.start()
    while not agent.link.is_connected:
        time.sleep(0.005)
    t0 = time.perf_counter()
    while agent.spool.message_readings > 0 and time.perf_counter() - t0 < 600:
        time.sleep(0.01)
    drain_s = time.perf_counter() - t0
    stop.set()
    thread.join(60)
    deadline = time.monotonic() + 30
    while counter.readings < spooled and time.monotonic() < deadline:
        time.sleep(0.05)
    counter.stop()
    return {
        "backlog_readings": spooled,
        "backlog_messages": messages,
        "fill_s": round(fill_s, 2),
        "drain_s": round(drain_s, 2),
        "drain_readings_per_s": round(spooled / drain_s),
        "lost": spooled - counter.readings,
    }


def spool_cost(work: Path, per_tick: int, ticks: int) -> tuple[float, float, int]:
    """Stage `per_tick` readings per 0.1 s tick, seal each kind each second (10 ticks), as the
    agent does; returns (wall us, CPU us) per reading and the readings measured."""
    spool = Spool(work / f"cost-{per_tick}.spool.sqlite")
    config = parse({"id": "gw-cost", "org": ORG, "sensors": sensors_200()}, "bench")
    start = datetime(2026, 11, 1, tzinfo=UTC)
    ctx = SourceContext(org=ORG, gateway="gw-cost", seed=1, start=start)
    sources = [get(s.driver).open(s, ctx) for s in config.sensors]
    readings = [r for s in sources for r in s.poll(start + timedelta(seconds=per_tick * ticks // 20))]
    frags = [(r.kind, batches.fragment([r])) for r in readings]
    spooled = 0
    t_cpu, t0 = time.process_time(), time.perf_counter()
    pending: dict[SensorKind, list[tuple[int, bytes]]] = {}
    seq = 0
    for tick in range(ticks):
        chunk = frags[per_tick * tick : per_tick * (tick + 1)]
        if not chunk:
            break
        spool.stage([(k.value, 1, f) for k, f in chunk], {"clock_us": str(tick)})
        for k, f in chunk:
            pending.setdefault(k, []).append((1, f))
        spooled += len(chunk)
        if tick % 10 == 9:
            for kind, pieces in pending.items():
                msgs = []
                for n, body in batches.chunks(pieces, 500, 262_144):
                    data, off = batches.payload(
                        org=ORG,
                        gateway="gw-cost",
                        kind=kind,
                        seq=seq,
                        sent_at=datetime.now(UTC),
                        readings=body,
                    )
                    msgs.append(
                        OutgoingMessage(
                            f"sr/v1/{ORG}/gw-cost/data/{kind.value}", data, readings=n, sent_at_offset=off
                        )
                    )
                    seq += 1
                spool.seal(kind.value, msgs, seq)
            pending = {}
    wall = time.perf_counter() - t0
    cpu = time.process_time() - t_cpu
    spool.close()
    return round(wall / spooled * 1e6, 1), round(cpu / spooled * 1e6, 1), spooled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--backlog", type=int, default=1_000_000)
    parser.add_argument("--footprint-s", type=float, default=60.0)
    parser.add_argument(
        "--backlog-batch", type=int, default=500, help="readings per spooled batch (offline, batches fill up)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sitroom-bench-") as tmp:
        work = Path(tmp)
        figures: dict[str, Any] = {}
        with Mosquitto(work / "broker") as broker:
            # The live pattern of the footprint (200 sensors every 10 s: 2 readings a tick), and
            # a busy gateway (2,000 readings/s: 200 a tick), where the commit cost is shared.
            wall, cpu, n = spool_cost(work, per_tick=2, ticks=3000)
            figures |= {"spool_us_per_reading": wall, "spool_cpu_us_per_reading": cpu}
            print(f"spool, 2 readings per commit (20/s): {wall} us/reading wall, {cpu} us CPU ({n:,})")
            wall, cpu, n = spool_cost(work, per_tick=200, ticks=500)
            figures |= {
                "spool_us_per_reading_at_2000_per_s": wall,
                "spool_cpu_us_per_reading_at_2000_per_s": cpu,
            }
            print(f"spool, 200 readings per commit (2,000/s): {wall} us/reading wall, {cpu} us CPU ({n:,})")
            figures |= drain(broker, work, args.backlog, args.backlog_batch)
            f = figures
            print(
                f"drain: {f['backlog_readings']:,} readings in {f['backlog_messages']:,} messages, "
                f"{f['drain_s']} s = {f['drain_readings_per_s']:,} readings/s, lost {f['lost']}"
            )
            figures |= footprint(broker, work, warmup_s=10.0, measure_s=args.footprint_s)
            print(f"footprint at 200 sensors / 10 s: RSS {figures['rss_mb']} MB, "
                  f"CPU {figures['cpu_pct_of_core']} % of one core")  # fmt: skip
    figures["targets"] = {"rss_mb": 60, "cpu_pct_of_core": 5, "drain_readings_per_s": 20_000, "lost": 0}
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
