"""Operator console load: N connected consoles (SSE) receiving live updates at the demo's rate.

The server runs in its own process (this script with `--serve`): the API app with the console,
demo worksites and a SQLite alert store, like `sitroom demo`. The demo's live picture is replayed
at `--scale` times its size: a sensors snapshot every 2 s (the live feed's refresh) with about
10 vehicles, 10 car parks and 8 counters per scale unit, an alert every 5 s fired into the alert
store (found by the live feed), and `--post-rate` operator posts per second through the HTTP API
(database write + broadcast). The clients — `--consoles` raw SSE connections in one asyncio
process — count what arrives and how late. Prints the delivery ratio and latency, and the
server's CPU (share of one core) and memory (RSS) over the measured window.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson

from cloud.apps.demo import running_console
from cloud.core.alerts import Alert
from cloud.core.geo import ServiceAreas
from cloud.dev.demo_data import load_demo
from cloud.dev.servers import free_port
from cloud.rules.store import AlertStore
from cloud.worksites.store import WorksiteStore

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _sensors(scale: int, rng: random.Random) -> dict[str, object]:
    now = int(time.time() * 1000)
    fleet = [
        {"id": f"bus-{i}", "org": "autolinee-toscane", "lat": 43.86 + rng.random() * 0.04,
         "lon": 11.06 + rng.random() * 0.08, "speed_kmh": rng.random() * 50, "time": now}
        for i in range(10 * scale)
    ]  # fmt: skip
    parking = [
        {"id": f"p-{i}", "org": "comune-prato", "name": f"Parcheggio {i}", "lat": 43.88, "lon": 11.1,
         "occupancy_pct": rng.random() * 100, "occupied": 100, "capacity": 200, "time": now}
        for i in range(10 * scale)
    ]  # fmt: skip
    traffic = [
        {"id": f"t-{i}", "org": "comune-prato", "name": f"Contatore {i}", "lat": 43.87, "lon": 11.1,
         "vehicles": rng.randrange(200), "baseline": 100.0, "ratio": 1.0, "time": now}
        for i in range(8 * scale)
    ]  # fmt: skip
    return {"parking": parking, "traffic": traffic, "fleet": fleet}


def serve(port: int, data_dir: Path, scale: int) -> None:

    ws = WorksiteStore.open(f"sqlite:///{data_dir / 'ws.db'}", areas=ServiceAreas.load())
    load_demo(ws, datetime.now(UTC))
    alerts = AlertStore(f"sqlite:///{data_dir / 'alerts.db'}")
    rng = random.Random(1)
    with running_console(data_dir / "console", worksites=ws, alerts=alerts, influx=None, port=port) as (
        _,
        console,
    ):
        print("ready", flush=True)
        n = 0
        next_alert = time.monotonic() + 5
        while True:
            console.broadcaster.publish("sensors", _sensors(scale, rng))
            if time.monotonic() >= next_alert:
                n += 1
                now = datetime.now(UTC)
                alerts.fire(
                    Alert(rule="bench", org="publiacqua", entity=f"e-{n}", gateway="g", kind="traffic",
                          severity="warning", state="firing", since=now, ts=now, message=f"bench alert {n}")
                )  # fmt: skip
                next_alert += 5
            time.sleep(2.0)


def _proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime, proc(5) fields 14 and 15


def _proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Tally:
    def __init__(self) -> None:
        self.connected = 0
        self.events: dict[str, int] = {}
        self.post_latency_ms: list[float] = []
        self.measuring = False


async def sse_client(port: int, cookie: str, tally: Tally, stop: asyncio.Event) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET /console/api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: sitroom_console={cookie}\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    await writer.drain()
    event = ""
    counted = False
    try:
        while not stop.is_set():
            line = await asyncio.wait_for(reader.readline(), 60)
            if not line:
                break
            text = line.decode().rstrip("\r\n")
            if text.startswith("event: "):
                event = text[7:]
                if event == "hello" and not counted:
                    counted = True
                    tally.connected += 1
            elif text.startswith("data: ") and tally.measuring:
                tally.events[event] = tally.events.get(event, 0) + 1
                if event == "post":
                    sent = datetime.fromisoformat(orjson.loads(text[6:])["created_at"])
                    tally.post_latency_ms.append((datetime.now(UTC) - sent).total_seconds() * 1000)
    except (TimeoutError, ConnectionError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def poster(base: str, rate: float, stop: threading.Event, sent: list[int]) -> None:
    with httpx.Client(base_url=base, headers={"X-Sitroom-Console": "1"}, timeout=30) as c:
        c.post("/console/api/login", json={"username": "anna", "password": "demo"})
        n = 0
        t0 = time.monotonic()
        while not stop.is_set():
            n += 1
            c.post("/console/api/threads/city/posts", json={"text": f"bench post {n} @publiacqua"})
            sent.append(n)
            delay = t0 + n / rate - time.monotonic()
            if delay > 0:
                stop.wait(delay)


async def run(args: argparse.Namespace) -> None:

    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(port), "--dir", tmp, "--scale", str(args.scale)],
            stdout=subprocess.PIPE,
        )
        try:
            assert server.stdout is not None
            if server.stdout.readline().strip() != b"ready":
                raise SystemExit("server did not start")
            base = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=base) as c:
                cookie = c.post(
                    "/console/api/login", json={"username": "parete", "password": "demo"}
                ).cookies["sitroom_console"]
            tally = Tally()
            stop = asyncio.Event()
            clients = [
                asyncio.create_task(sse_client(port, cookie, tally, stop)) for _ in range(args.consoles)
            ]
            deadline = time.monotonic() + 60
            while tally.connected < args.consoles and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            print(f"{tally.connected} consoles connected")
            rss_idle = _proc_rss_mb(server.pid)
            stop_posts = threading.Event()
            sent: list[int] = []
            t = threading.Thread(target=poster, args=(base, args.post_rate, stop_posts, sent), daemon=True)
            tally.measuring = True
            cpu0, t0 = _proc_cpu_s(server.pid), time.monotonic()
            t.start()
            await asyncio.sleep(args.duration)
            stop_posts.set()
            cpu1, t1 = _proc_cpu_s(server.pid), time.monotonic()
            rss = _proc_rss_mb(server.pid)
            await asyncio.sleep(2)  # let the last posts arrive
            tally.measuring = False
            stop.set()
            for c in clients:
                c.cancel()
            await asyncio.gather(*clients, return_exceptions=True)
            t.join(5)
        finally:
            server.terminate()
            server.wait(10)
    window = t1 - t0
    posts_expected = len(sent) * args.consoles
    lat = sorted(tally.post_latency_ms) or [0.0]
    kinds = ", ".join(f"{k} {v:,}" for k, v in sorted(tally.events.items()))
    print(
        f"window {window:.1f} s: {len(sent)} posts ({len(sent) / window:.1f}/s), "
        f"sensors every 2 s at scale x{args.scale}, an alert every 5 s\n"
        f"events delivered: {sum(tally.events.values()):,} ({kinds}); "
        f"posts {tally.events.get('post', 0):,} of {posts_expected:,} expected "
        f"({100 * tally.events.get('post', 0) / max(posts_expected, 1):.1f} %)\n"
        f"post delivery latency: median {statistics.median(lat):.0f} ms, "
        f"p95 {lat[int(0.95 * (len(lat) - 1))]:.0f} ms, max {lat[-1]:.0f} ms\n"
        f"server CPU {100 * (cpu1 - cpu0) / window:.0f} % of one core; "
        f"RSS {rss_idle:.0f} MB with {args.consoles} consoles idle, {rss:.0f} MB after the run"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--consoles", type=int, default=200)
    p.add_argument("--duration", type=float, default=20.0)
    p.add_argument("--post-rate", type=float, default=1.0, help="operator posts per second")
    p.add_argument("--scale", type=int, default=1, help="the demo's vehicles/parks/counters times this")
    p.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    p.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        serve(args.serve, args.dir, args.scale)
        return
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
