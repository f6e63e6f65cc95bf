"""The push API's throughput: readings accepted per second into a real InfluxDB, with per-reading verdicts.

    .venv/bin/python bench/push.py [--seconds 20] [--batch 5000] [--clients 4] [--json FILE]

1. Starts its own InfluxDB (cloud/dev/servers.py) in a temp dir.
2. Starts the API as production does, `sitroom cloud api --push` (the real CLI in a process of
   its own, SITROOM_* settings, a SQLite registry, a fresh organisation token, no rate limit).
3. `--clients` threads post wire-contract batches of `--batch` fleet readings (a utility's
   platform feeding positions: 5,000 vehicles, one fix each per batch), each with its own batch
   id, over keep-alive connections; every answer is read, verdicts included, and every reading
   must be accepted. The bodies are encoded before the run, so the client's own JSON costs are
   not measured.
4. The rate is the readings accepted in a window of `--seconds` after `--warmup`; the latency
   of a batch is from sending its request to reading its answer (stored in InfluxDB by then).
5. Counts every reading in InfluxDB at the end: `lost` = accepted - stored, must be 0.

Prints and writes (`--json`) readings_per_s, p50_latency_ms, p99_latency_ms, lost, and context.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cloud.core.orgs import Organisation, Role  # noqa: E402
from cloud.dev.servers import Influxd, env_without_proxies, free_port  # noqa: E402
from cloud.io.influx.client import InfluxClient  # noqa: E402
from cloud.io.orgstore import OrgStore  # noqa: E402
from edge.contract import format_ts  # noqa: E402

ORG = "bench-utility"
DATABASE = "bench_push"
TARGET = 20_000


def body(n: int, batch_no: int, at: datetime) -> bytes:
    ts = format_ts(at + timedelta(milliseconds=batch_no))
    readings = [
        {
            "sensor": f"v-{i}",
            "ts": ts,
            "fields": {
                "lat": 43.85 + (i % 100) * 0.001,
                "lon": 11.05 + (i // 100) * 0.001,
                "speed_kmh": float(i % 60),
                "heading_deg": float((i * 7) % 360),
            },
        }
        for i in range(n)
    ]
    batch = {"v": 1, "org": ORG, "gateway": "fleet", "kind": "fleet", "seq": batch_no,
             "sent_at": ts, "readings": readings}  # fmt: skip
    return orjson.dumps(batch)


def start_api(influxd: Influxd, work: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    port = free_port()
    env = {
        **env_without_proxies(),
        "SITROOM_INFLUX_URL": influxd.url,
        "SITROOM_INFLUX_DB": DATABASE,
    }
    cmd = [sys.executable, "-m", "edge.cli", "cloud", "api", "--push", "--port", str(port),
           "--db", f"sqlite:///{work / 'api.db'}", "--token-for", ORG,
           "--push-rate", "1e9", "--push-burst", "1e9"]  # fmt: skip
    # The organisation must exist before `--token-for` issues its token.
    orgs = OrgStore.open(f"sqlite:///{work / 'api.db'}")
    orgs.add(Organisation(id=ORG, name="Bench utility", role=Role.UTILITY))
    orgs.close()
    log = (work / "api.log").open("wb")
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stderr=log, stdout=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    token = ""
    while time.monotonic() < deadline:
        text = (work / "api.log").read_text(errors="replace")
        found = re.search(rf"token {ORG} (srt_\S+)", text)
        token = found.group(1) if found else ""
        try:
            if token and httpx.get(url + "/openapi.json", timeout=1, trust_env=False).status_code == 200:
                return proc, url, token
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"the API exited: {text[-2000:]}")
        time.sleep(0.2)
    proc.terminate()
    raise SystemExit("the API did not start within 60 s")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] if ordered else 0.0


class Load:
    """A producer encoding batches ahead of `clients` threads that post them and time the answers."""

    def __init__(self, args: argparse.Namespace, url: str, token: str, n_bodies: int = 4000) -> None:
        self.args = args
        self.url = url
        self.token = token
        self.n_bodies = n_bodies
        self.start = datetime.now(UTC) - timedelta(minutes=10)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.results: list[tuple[float, float, int]] = []  # (answered at, latency s, accepted)
        self.errors: list[str] = []
        self._next = iter(range(n_bodies))
        self._bodies: dict[int, bytes] = {}
        self._ready = threading.Condition()
        self.threads = [threading.Thread(target=self._produce, daemon=True)]
        self.threads += [threading.Thread(target=self._post, daemon=True) for _ in range(args.clients)]

    def _produce(self) -> None:
        for k in range(self.n_bodies):
            payload = body(self.args.batch, k, self.start)
            with self._ready:
                while len(self._bodies) > self.args.clients * 4 and not self.stop.is_set():
                    self._ready.wait(0.1)
                if self.stop.is_set():
                    return
                self._bodies[k] = payload
                self._ready.notify_all()

    def _take(self) -> tuple[int, bytes] | None:
        with self.lock:
            k = next(self._next, None)
        if k is None:
            return None
        with self._ready:
            while k not in self._bodies and not self.stop.is_set():
                self._ready.wait(0.1)
            payload = self._bodies.pop(k, b"")
            self._ready.notify_all()
        return (k, payload) if payload else None

    def _post(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        with httpx.Client(base_url=self.url, timeout=120, trust_env=False) as http:
            while not self.stop.is_set():
                taken = self._take()
                if taken is None:
                    return
                k, payload = taken
                t0 = time.perf_counter()
                sent = {**headers, "Idempotency-Key": f"bench-{k}"}
                response = http.post("/push/v1/readings", content=payload, headers=sent)
                answer = orjson.loads(response.content)  # every verdict read, as a client would
                latency = time.perf_counter() - t0
                accepted = int(answer.get("accepted", 0)) if response.status_code == 200 else 0
                with self.lock:
                    self.results.append((time.monotonic(), latency, accepted))
                    if response.status_code != 200 or accepted != self.args.batch:
                        self.errors.append(f"{response.status_code}: {response.text[:200]}")

    def accepted(self) -> int:
        with self.lock:
            return sum(r[2] for r in self.results)


def measure(load: Load, args: argparse.Namespace) -> tuple[float, list[float]]:
    """Run the load; the rate and latencies (ms) of the batches answered in the window."""
    t_start = time.monotonic()
    for t in load.threads:
        t.start()
    window_start = t_start + args.warmup
    window_end = window_start + args.seconds
    while time.monotonic() < window_end and any(t.is_alive() for t in load.threads[1:]):
        time.sleep(1.0)
        print(
            f"  {time.monotonic() - t_start:5.1f} s: {load.accepted():,} readings accepted", file=sys.stderr
        )
    load.stop.set()
    for t in load.threads:
        t.join(180)
    in_window = [r for r in load.results if window_start <= r[0] <= window_end]
    span = min(window_end, max((r[0] for r in in_window), default=window_end)) - window_start
    rate = sum(r[2] for r in in_window) / span if span > 0 else 0.0
    return rate, [r[1] * 1000 for r in in_window]


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="sitroom-bench-push-") as tmp:
        work = Path(tmp)
        influxd = Influxd(work / "influxdb").start()
        influx = InfluxClient(influxd.url, DATABASE)
        influx.create_database()
        proc, url, token = start_api(influxd, work)
        try:
            load = Load(args, url, token)
            rate, latencies = measure(load, args)
            q = f'SELECT count("lat") FROM "fleet" WHERE "org" = \'{ORG}\''
            stored = int(influx.series(q)[0]["values"][0][1])
        finally:
            proc.terminate()
            proc.wait(30)
            influx.close()
            influxd.stop()
    accepted_total = load.accepted()
    return {
        "readings_per_s": round(rate),
        "p50_latency_ms": round(percentile(latencies, 0.50), 1),
        "p99_latency_ms": round(percentile(latencies, 0.99), 1),
        "lost": accepted_total - stored,
        "errors": len(load.errors),
        "first_error": load.errors[0] if load.errors else "",
        "batches_in_window": len(latencies),
        "readings_accepted": accepted_total,
        "readings_stored": stored,
        "batch_readings": args.batch,
        "clients": args.clients,
        "seconds": args.seconds,
        "target_readings_per_s": TARGET,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the measured window")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--batch", type=int, default=5000, help="readings per batch (at most 10,000)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent connections")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    figures = run(args)
    print(
        f"push API: {figures['readings_per_s']:,} readings/s accepted with per-reading verdicts "
        f"(target {TARGET:,}), p50 {figures['p50_latency_ms']} ms, p99 {figures['p99_latency_ms']} ms "
        f"per {args.batch}-reading batch, lost {figures['lost']}, errors {figures['errors']}"
    )
    if args.json:
        args.json.write_bytes(orjson.dumps(figures, option=orjson.OPT_INDENT_2) + b"\n")
    if figures["lost"] or figures["errors"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
