"""Ingest at scale, measured against the machine's own limit, in one self-contained run.

    .venv/bin/python bench/ingest.py --seconds 30 --json out.json [--plot out.png]

1. Starts its own Mosquitto, and a fresh InfluxDB for each phase (cloud.dev.servers), in a temp dir.
2. Broker limit: Mosquitto's C clients (`mosquitto_pub -l` → broker → `mosquitto_sub`, QoS 1)
   with messages of exactly the size the pipeline phase sends; msgs/s.
3. InfluxDB limit: line protocol of the pipeline's shape (same series, same 5,000-point
   batches of whole gateway blocks) written for as long as the pipeline phase by as many
   concurrent connections as ingest uses (`write_workers`); points/s sustained, compactions
   included; measured before and after the pipeline phase, the mean is the limit. The same
   with gzip (a quarter of the time) is reported too, to decide whether gzip helps here.
4. Pipeline: `sitroom cloud ingest` worker processes (the real CLI, SITROOM_* env), publisher
   processes (multiprocessing) sending batches of `--readings-per-message` readings at QoS 1
   from several gateways each, through one `mosquitto_pub -l` per gateway. The publishers are
   flow-controlled by a window over what ingest reports written (its health topic), so the run
   measures the highest rate the pipeline sustains without an unbounded backlog, not how fast a
   broker queue can fill.
   The rate is what ingest wrote in a window of `--seconds` that opens after `--warmup`
   (the flow-control window grows with the rate, so the first seconds are a ramp).
   A probe publishes one reading every 0.2 s through the same broker and ingest, and is timed
   until a query (every 0.1 s) finds it in InfluxDB: the publish-to-queryable latency (of the
   probes sent in the window).
5. Counts every reading in InfluxDB at the end; `lost` must be 0.

With `--private-orgs N` the gateways belong to N organisations and a data policy keeps their
readings private (decision 0017): ingest writes each round of messages to N databases, one
write per database (the metropolitan path with several write streams); the counts add them up.

Prints and writes (`--json`) readings_per_s, p50_latency_ms, p99_latency_ms,
influx_limit_readings_per_s, broker_limit_msgs_per_s, ratio_to_limit (readings_per_s over the
lower of the two limits, the broker's multiplied by readings per message) and lost, plus
context (machine, load average, settings).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cloud.dev.servers import Influxd, Mosquitto, env_without_proxies  # noqa: E402
from cloud.io.influx.client import InfluxClient, QueryError  # noqa: E402
from edge.contract import SensorKind, format_ts, topics  # noqa: E402

ORG = "bench"
KIND = SensorKind.PARKING
PROBE_GATEWAY = "gw-probe"
SENSORS_PER_GATEWAY = 2000


def reading(sensor: int, ts: str) -> dict[str, Any]:
    occupied = (sensor * 7) % 400
    return {
        "sensor": f"p-{sensor}",
        "ts": ts,
        "fields": {"occupied": occupied, "capacity": 400, "occupancy_pct": occupied / 4},
        "tags": {"zone": "centro"},
    }


def org_of(gateway_number: int, orgs: int) -> str:
    """The organisation of the n-th gateway: ORG, or one of `orgs` of its own (`--private-orgs`)."""
    return f"{ORG}-{gateway_number % orgs}" if orgs else ORG


def message(gateway: str, seq: int, ts: datetime, n: int, first_sensor: int = 0) -> bytes:
    wire_ts = format_ts(ts)
    return orjson.dumps(
        {
            "v": 1,
            "org": ORG,
            "gateway": gateway,
            "kind": KIND,
            "seq": seq,
            "sent_at": format_ts(datetime.now(UTC)),
            "readings": [reading((first_sensor + i) % SENSORS_PER_GATEWAY, wire_ts) for i in range(n)],
        }
    )


class MessageTemplate:
    """`message()`'s bytes with the per-message values left as markers, filled by `bytes.replace`.

    The publishers stand in for gateways, which run on their own machines: building 1,000 dicts
    and encoding them per message cost them 2.6 µs per reading of this machine's two cores,
    CPU that would otherwise go to the pipeline under test. Filling a template costs ~0.1 µs.
    """

    def __init__(self, gateway: str, n: int, org: str = ORG) -> None:
        body = orjson.dumps(
            {
                "v": 1,
                "org": org,
                "gateway": gateway,
                "kind": KIND,
                "seq": "@SEQ@",
                "sent_at": "@SENT@",
                "readings": [reading(i % SENSORS_PER_GATEWAY, "@TS@") for i in range(n)],
            }
        )
        self.head, self.tail = body.split(b'"@SEQ@"')

    def fill(self, seq: int, ts: datetime) -> bytes:
        tail = self.tail.replace(b"@SENT@", format_ts(datetime.now(UTC)).encode())
        return self.head + str(seq).encode() + tail.replace(b"@TS@", format_ts(ts).encode())


# -- publisher processes -------------------------------------------------------------------------


@dataclass
class Flow:
    """Shared between the main process and the publishers: a window of readings in flight."""

    allowed: Synchronized[int]  # cumulative readings the publishers may have published
    claimed: Synchronized[int]  # cumulative readings claimed by publishers
    stop: Any  # mp.Event


def publisher(
    index: int,
    port: int,
    gateways: int,
    per_message: int,
    flow: Flow,
    published: Synchronized[int],
    children: Any,  # mp.Queue: the pids of this publisher's mosquitto_pub processes
    orgs: int = 0,
) -> None:
    """Stands in for `gateways` gateways: fills each one's template and hands the message to a
    `mosquitto_pub -l -q 1` of its own (one topic each), so the MQTT client work is done in C,
    as on a gateway's own machine, not in Python on the two cores under test."""
    names = [f"gw-b{index}-{g}" for g in range(gateways)]
    owners = [org_of(index * gateways + g, orgs) for g in range(gateways)]
    templates = [MessageTemplate(name, per_message, org) for name, org in zip(names, owners, strict=True)]
    pubs = [
        subprocess.Popen(
            ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-l", "-i", f"bench-{name}",
             "-t", topics.data(org, name, KIND)],
            stdin=subprocess.PIPE,
        )
        for name, org in zip(names, owners, strict=True)
    ]  # fmt: skip
    children.put([p.pid for p in pubs])
    seqs = [0] * gateways
    last_ts = [datetime.now(UTC) - timedelta(seconds=1)] * gateways
    g = 0
    try:
        while not flow.stop.is_set():
            with flow.claimed.get_lock():
                ok = flow.claimed.value + per_message <= flow.allowed.value
                if ok:
                    flow.claimed.value += per_message
            if not ok:
                time.sleep(0.005)
                continue
            # Every reading is its own point: same sensor, later millisecond on each message.
            now = datetime.now(UTC)
            ts = max(
                now.replace(microsecond=now.microsecond // 1000 * 1000),
                last_ts[g] + timedelta(milliseconds=1),
            )
            last_ts[g] = ts
            stdin = pubs[g].stdin
            assert stdin is not None
            stdin.write(templates[g].fill(seqs[g], ts) + b"\n")  # orjson writes no newline
            stdin.flush()
            seqs[g] += 1
            with published.get_lock():
                published.value += per_message
            g = (g + 1) % gateways
    finally:
        for p in pubs:
            if p.stdin is not None:
                p.stdin.close()  # at EOF mosquitto_pub disconnects once every message is acked
        for p in pubs:
            p.wait(120)


# -- limits ----------------------------------------------------------------------------------------


def broker_limit(mq: Mosquitto, payload: bytes, seconds: float) -> float:
    """msgs/s through Mosquitto with its C clients at QoS 1, with the pipeline's message size."""
    n = int(max(200, min(60_000, 150_000_000 // len(payload))))
    common = ["-h", "127.0.0.1", "-p", str(mq.port), "-q", "1", "-t", "bench/limit"]
    # A persistent session subscribed in advance: nothing is missed while the timed sub connects.
    subprocess.run(["mosquitto_sub", *common, "-c", "-i", "bench-limit-sub", "-E"], check=True)
    sub = subprocess.Popen(
        ["mosquitto_sub", *common, "-c", "-i", "bench-limit-sub", "-C", str(n)], stdout=subprocess.DEVNULL
    )
    data = payload.replace(b"\n", b" ") + b"\n"
    t0 = time.perf_counter()
    subprocess.run(["mosquitto_pub", *common, "-l"], input=data * n, check=True)
    sub.wait(max(60.0, seconds * 10))
    return n / (time.perf_counter() - t0)


def influx_limit(
    ix: Influxd, seconds: float, writers: int, *, gzip: bool, gateways: int, sensors: int, per_batch: int
) -> tuple[float, float, float]:
    """points/s InfluxDB sustains for `seconds` from `writers` connections, fed what ingest feeds it.

    The same series (`gateways` x `sensors`), the same batches (`per_batch` readings, whole
    gateway blocks of one instant each, like ingest's 5 messages per write) and the same length
    of time as the pipeline phase: a short burst would miss the cache snapshots and compactions
    that sustained writing costs InfluxDB. Lines come from per-gateway templates whose
    timestamp is filled per batch (~0.1 µs per point), so the feeder takes almost no CPU.
    """
    db = f"limit_{'gz' if gzip else 'plain'}"
    admin = InfluxClient(ix.url, db)
    admin.create_database()
    blocks = []
    for gateway in range(gateways):
        lines = []
        for sensor in range(sensors):
            occupied = (sensor * 7) % 400
            lines.append(
                f"parking,gateway=gw-l{gateway},org=limit,sensor=p-{sensor},zone=centro "
                f"occupied={occupied}i,capacity=400i,occupancy_pct={occupied / 4!r} @TS@"
            )
        blocks.append("\n".join(lines).encode())
    per_write = max(1, per_batch // sensors)
    t0_ns = (time.time_ns() // 1_000_000 - 3_600_000) * 1_000_000
    counter = iter(range(10**12))
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds
    written = [0] * writers
    done_at: list[tuple[float, int]] = []

    def work(n: int) -> None:
        client = InfluxClient(ix.url, db, gzip_min_bytes=1 if gzip else 2**62, timeout_s=60)
        try:
            while time.perf_counter() < deadline:
                with lock:
                    first = next(counter) * per_write
                    next_ = [first + k for k in range(per_write)]
                # Block i: gateway i % gateways at tick i // gateways (1 ms apart): new points.
                body = b"\n".join(
                    blocks[i % gateways].replace(b"@TS@", str(t0_ns + (i // gateways) * 1_000_000).encode())
                    for i in next_
                )
                client.write([body.decode()])
                written[n] += len(next_) * sensors
                with lock:
                    done_at.append((time.perf_counter(), len(next_) * sensors))
        finally:
            client.close()

    assert ix.proc is not None
    cpu0, t = cpu_s(ix.proc.pid), time.perf_counter()
    with ThreadPoolExecutor(writers) as pool:
        list(pool.map(work, range(writers)))
    elapsed = time.perf_counter() - t
    points = sum(written)
    cpu_us_per_point = (cpu_s(ix.proc.pid) - cpu0) / points * 1e6
    stored = admin.series('SELECT count("occupied") FROM "parking"')
    if int(stored[0]["values"][0][1]) != points:
        raise SystemExit(f"influx limit run stored {stored} points, not {points}")
    admin.drop_database()
    admin.close()
    # What a short burst would have reported (the first 5 s), for comparison with the sustained rate.
    burst = sum(n for at, n in done_at if at <= t + 5) / min(5.0, elapsed)
    return points / elapsed, cpu_us_per_point, burst


# -- pipeline ----------------------------------------------------------------------------------------


@dataclass
class Probe:
    """One reading every `interval_s` through broker and ingest, timed until InfluxDB returns it."""

    port: int
    influx: InfluxClient
    interval_s: float = 0.2
    sent: dict[int, float] = field(default_factory=dict)  # ts ms -> perf_counter at publish
    timed: list[tuple[float, float]] = field(default_factory=list)  # (perf_counter at publish, ms)
    stop: threading.Event = field(default_factory=threading.Event)

    def run_publisher(self) -> None:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-probe")
        client.connect("127.0.0.1", self.port)
        client.loop_start()
        seq = 0
        while not self.stop.wait(self.interval_s):
            ts = datetime.now(UTC).replace(microsecond=0) + timedelta(milliseconds=seq % 1000)
            ts_ms = int(ts.timestamp() * 1000)
            payload = orjson.dumps(
                {
                    "v": 1,
                    "org": ORG,
                    "gateway": PROBE_GATEWAY,
                    "kind": KIND,
                    "seq": seq,
                    "sent_at": format_ts(datetime.now(UTC)),
                    "readings": [reading(0, format_ts(ts))],
                }
            )
            self.sent[ts_ms] = time.perf_counter()
            client.publish(topics.data(ORG, PROBE_GATEWAY, KIND), payload, qos=1).wait_for_publish(10)
            seq += 1
        client.disconnect()
        client.loop_stop()

    def run_poller(self) -> None:
        seen: set[int] = set()
        while not self.stop.is_set() or len(seen) < len(self.sent):
            try:
                q = (
                    f'SELECT "occupied" FROM "{KIND}" '
                    f"WHERE \"gateway\"='{PROBE_GATEWAY}' AND time > now() - 10m"
                )
                rows = self.influx.series(q)
            except QueryError:  # its database is created with its first write (--private-orgs)
                rows = []
            now = time.perf_counter()
            for s in rows:
                for t_ms, _ in s["values"]:
                    if t_ms not in seen and t_ms in self.sent:
                        seen.add(t_ms)
                        self.timed.append((self.sent[t_ms], (now - self.sent[t_ms]) * 1000))
            if self.stop.is_set() and len(seen) >= len(self.sent):
                return
            time.sleep(0.1)  # latencies are upper bounds by up to this much

    @property
    def count(self) -> int:
        return len(self.sent)


class IngestWatch:
    """Sums `readings_written` over the ingest workers' health messages."""

    def __init__(self, port: int) -> None:
        self.written: dict[str, int] = {}
        self.reports: list[dict[str, Any]] = []
        self.recording = False
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-watch")
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *_: c.subscribe(f"{topics.ROOT}/services/ingest/+/health", 0)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, _c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        body = orjson.loads(msg.payload)
        with self.lock:
            self.written[msg.topic.split("/")[-2]] = int(body["readings_written"])
            if self.recording and body["writes"]:
                self.reports.append(body)

    def view(self) -> dict[str, float]:
        """Ingest's own view of the timed phase (its self-monitoring), as medians of its reports."""
        with self.lock:
            reports = [r for r in self.reports if r["batch_points_mean"]]

        def median(key: str) -> float:
            values = sorted(float(r[key]) for r in reports)
            return round(values[len(values) // 2], 1) if values else 0.0

        keys = ("batch_points_mean", "write_ms_p50", "write_ms_max", "buffered", "writes_in_flight")
        return {k: median(k) for k in keys}

    def total(self) -> int:
        with self.lock:
            return sum(self.written.values())

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: timed out waiting for {what}")
        time.sleep(0.02)


def pipeline(args: argparse.Namespace, mq: Mosquitto, ix: Influxd, tmp: Path) -> dict[str, Any]:  # noqa: PLR0912, PLR0915  (one linear script)
    db = "bench"
    orgs = [org_of(k, args.private_orgs) for k in range(args.private_orgs)] if args.private_orgs else [ORG]
    # Where the readings land: the one database, or each organisation's (the probe's is ORG's).
    databases = [f"{db}_{org}" for org in orgs] if args.private_orgs else [db]
    influx = InfluxClient(ix.url, f"{db}_{ORG}" if args.private_orgs else db)
    watch = IngestWatch(mq.port)
    env = env_without_proxies() | {
        "SITROOM_MQTT_URL": mq.url,
        "SITROOM_INFLUX_URL": ix.url,
        "SITROOM_INFLUX_DB": db,
        "SITROOM_STATS_INTERVAL_S": "0.25",
        "SITROOM_WRITE_WORKERS": str(args.write_workers),
        "SITROOM_WRITE_BATCH_POINTS": str(args.batch_points),
        "SITROOM_WRITE_LINGER_MS": "50",
        "SITROOM_MAX_PAYLOAD_BYTES": str(16 * 1_048_576),
    }
    if args.workers > 1:
        env["SITROOM_SHARE_GROUP"] = "ingest"
    if args.private_orgs:
        policy = yaml.safe_load((REPO / "deploy" / "data-policy.yaml").read_text())
        policy["measurements"][KIND.value] = "private"
        (tmp / "policy.yaml").write_text(yaml.safe_dump(policy))
        env["SITROOM_DATA_POLICY"] = str(tmp / "policy.yaml")
    workers = []
    for n in range(args.workers):
        log = (tmp / f"ingest-{n}.log").open("wb")
        workers.append(
            subprocess.Popen(
                [sys.executable, "-m", "edge.cli", "cloud", "ingest"],
                env=env | {"SITROOM_INSTANCE": f"bench-{n}"},
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
        )
    try:
        wait_for(lambda: len(watch.written) == args.workers, 60, "ingest workers' first health report")
        ctx = mp.get_context("spawn")
        flow = Flow(ctx.Value("q", args.window), ctx.Value("q", 0), ctx.Event())
        counts = [ctx.Value("q", 0) for _ in range(args.publishers)]
        children = ctx.Queue()
        pubs = [
            ctx.Process(
                target=publisher,
                args=(
                    i,
                    mq.port,
                    args.gateways,
                    args.readings_per_message,
                    flow,
                    counts[i],
                    children,
                    args.private_orgs,
                ),
                daemon=True,
            )
            for i in range(args.publishers)
        ]
        for p in pubs:
            p.start()
        clients = [pid for _ in pubs for pid in children.get(timeout=60)]
        probe = Probe(mq.port, influx)
        probe_threads = [
            threading.Thread(target=probe.run_publisher),
            threading.Thread(target=probe.run_poller),
        ]
        for t in probe_threads:
            t.start()
        assert ix.proc is not None
        assert mq.proc is not None
        pids = {
            "ingest": [w.pid for w in workers],
            "influxd": [ix.proc.pid],
            "mosquitto": [mq.proc.pid],
            # The load generator shares the machine: its cost is the gateways', not the pipeline's.
            "publishers": [*(p.pid for p in pubs if p.pid is not None), *clients],
        }

        def cpu_now() -> dict[str, float]:
            return {k: sum(cpu_s(p) for p in v) for k, v in pids.items()}

        begin = time.perf_counter()
        written_at_start = watch.total()
        history: list[tuple[float, int]] = [(begin, 0)]
        next_progress = begin + 5.0
        timeline: list[tuple[float, float]] = []  # (s since the start, readings/s over the last 2 s)
        # The measured window opens after the warm-up (the window below grows with the rate, as
        # TCP's does, so the first seconds are a ramp, not the pipeline's sustained rate).
        window_open: tuple[float, int, dict[str, float]] | None = None
        now, written = begin, 0
        while now - begin < args.warmup + args.seconds:
            # The window: publishers may run ahead of what ingest has written by `window_s` of
            # the recent write rate (at least `window` readings, enough to keep every writer busy).
            now, written = time.perf_counter(), watch.total() - written_at_start
            history.append((now, written))
            while len(history) > 2 and history[1][0] < now - 2.0:
                history.pop(0)
            rate = (written - history[0][1]) / max(now - history[0][0], 1e-3)
            flow.allowed.value = written + max(args.window, int(rate * args.window_s))
            if window_open is None and now - begin >= args.warmup:
                window_open = (now, written, cpu_now())
                watch.recording = True
            if not timeline or now - begin >= timeline[-1][0] + 0.5:
                timeline.append((now - begin, rate))
            if now >= next_progress:
                print(
                    f"  pipeline {now - begin:4.0f} s: {written:,} readings written, {rate:,.0f}/s",
                    flush=True,
                )
                next_progress += 5.0
            time.sleep(0.01)
        assert window_open is not None
        t0, written0, cpu0 = window_open
        t1, written1, cpu1 = now, written, cpu_now()
        watch.recording = False
        flow.stop.set()
        for p in pubs:
            p.join(120)
        published = sum(c.value for c in counts)
        probe.stop.set()
        probe_threads[0].join(30)
        expected_written = published + probe.count
        wait_for(
            lambda: watch.total() - written_at_start >= expected_written, 120, "ingest to write everything"
        )
        probe_threads[1].join(60)
        stored = sum(
            int(s["values"][0][1])
            for database in databases
            for s in influx.series(
                f'SELECT count("occupied") FROM "{KIND}" WHERE "gateway" != \'{PROBE_GATEWAY}\'',
                database=database,
            )
        )
        measured = max(written1 - written0, 1)
        lat = sorted(ms for sent, ms in probe.timed if t0 <= sent <= t1)
        return {
            # What ingest wrote in the measured window, per second of it (its own counter, which
            # the final count in InfluxDB checks).
            "readings_per_s": measured / (t1 - t0),
            "p50_latency_ms": lat[len(lat) // 2] if lat else None,
            "p99_latency_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else None,
            "latency_probes": len(lat),
            "published_readings": published,
            "stored_readings": stored,
            "lost": published - stored,
            "pipeline_seconds": t1 - t0,
            # CPU per reading is steadier than rates on a shared machine: it predicts the rate
            # a quiet machine sustains (cores * 1e6 / the sum of the parts' µs per reading).
            "cpu_us_per_reading": {k: round((cpu1[k] - cpu0[k]) / measured * 1e6, 2) for k in pids},
            "ingest_view": watch.view(),
            "timeline": timeline,
            "window": (t0 - begin, t1 - begin),
            "latencies_ms": lat,
        }
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            try:
                w.wait(30)
            except subprocess.TimeoutExpired:
                w.kill()
        watch.close()
        influx.close()


def plot(path: Path, out: dict[str, Any], result: dict[str, Any]) -> None:
    """The run as a picture: the pipeline's rate against InfluxDB's limit and the target, and
    the publish-to-queryable latencies."""
    import matplotlib as mpl  # noqa: PLC0415  (loads slowly; only when asked)

    mpl.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    timeline, latencies = result["timeline"], result["latencies_ms"]
    fig, (rate_ax, lat_ax) = plt.subplots(1, 2, figsize=(12, 4.5), width_ratios=(2, 1))
    limit = out["influx_limit_readings_per_s"]
    rate_ax.plot([t for t, _ in timeline], [r / 1000 for _, r in timeline], color="#0072B2", label="pipeline")
    rate_ax.axhline(limit / 1000, color="#000000", linestyle="--", label="InfluxDB alone (sustained)")
    rate_ax.axhline(0.6 * limit / 1000, color="#D55E00", linestyle=":", label="target: 0.6 of it")
    rate_ax.axvspan(*result["window"], color="#56B4E9", alpha=0.15, label="measured window")
    rate_ax.set(xlabel="s", ylabel="k readings/s", ylim=(0, limit / 1000 * 1.15))
    rate, ratio = out["readings_per_s"], out["ratio_to_limit"]
    rate_ax.set_title(f"{rate:,.0f} readings/s = {ratio:.2f} of the limit, lost {out['lost']}")
    rate_ax.legend(loc="lower right")
    lat_ax.hist(latencies, bins=30, color="#009E73")
    for q, style in (("p50_latency_ms", "--"), ("p99_latency_ms", ":")):
        if out[q] is not None:
            lat_ax.axvline(out[q], color="#000000", linestyle=style, label=f"{q[:3]} {out[q]:,.0f} ms")
    lat_ax.set(xlabel="publish → queryable, ms", ylabel="probes")
    lat_ax.legend()
    fig.suptitle(f"bench/ingest.py on {out['machine']}, {out['measured_at']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="length of the pipeline's measured window")
    ap.add_argument("--warmup", type=float, default=5.0, help="seconds of pipeline before the window opens")
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument("--plot", type=Path, help="draw the run (rate over time, latencies) as a PNG here")
    ap.add_argument("--publishers", type=int, default=2, help="publisher processes")
    ap.add_argument("--gateways", type=int, default=8, help="gateways simulated per publisher")
    ap.add_argument("--readings-per-message", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=1, help="ingest processes (shared subscription when > 1)")
    ap.add_argument(
        "--write-workers", type=int, default=2, help="concurrent InfluxDB writes per ingest process"
    )
    ap.add_argument("--batch-points", type=int, default=5000, help="readings per InfluxDB write")
    ap.add_argument(
        "--private-orgs",
        type=int,
        default=0,
        help="gateways of this many organisations, their readings private (one database each)",
    )
    ap.add_argument(
        "--window", type=int, default=30_000, help="least readings publishers may run ahead of ingest"
    )
    ap.add_argument(
        "--window-s", type=float, default=0.6, help="seconds of write rate publishers may run ahead"
    )
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="sitroom-bench-") as tmp_name:
        tmp = Path(tmp_name)
        with Mosquitto(tmp / "mq") as mq:
            sample = message("gw-b0-0", 0, datetime.now(UTC), args.readings_per_message)
            print(f"message: {args.readings_per_message} readings, {len(sample):,} bytes", flush=True)
            print("broker limit: mosquitto_pub -> mosquitto -> mosquitto_sub …", flush=True)
            broker_msgs = broker_limit(mq, sample, args.seconds)
            print(f"broker limit (C clients, QoS 1): {broker_msgs:,.0f} msgs/s", flush=True)
            shape = {
                "writers": args.write_workers,
                "gateways": args.publishers * args.gateways,
                "sensors": min(args.readings_per_message, SENSORS_PER_GATEWAY),
                "per_batch": args.batch_points,
            }
            print(
                f"influx limit: {args.seconds:g} s, {args.seconds / 4:g} s gzip, again after the pipeline …",
                flush=True,
            )
            # Each phase on a fresh influxd of the same config: the limit run's millions of points
            # (dropped after it) would otherwise still be compacting under the pipeline phase.
            # The limit is measured before *and* after the pipeline, and their mean is the one
            # the ratio uses: a VM's speed drifts over minutes, and bracketing the pipeline
            # in time keeps that drift out of the ratio.
            with Influxd(tmp / "ix-limit") as ix:
                before, influx_limit_cpu, influx_burst = influx_limit(ix, args.seconds, gzip=False, **shape)
                influx_gz, _, _ = influx_limit(ix, args.seconds / 4, gzip=True, **shape)
            print(
                f"influx limit ({args.write_workers} writers, {args.batch_points:,}-point batches, "
                f"{args.seconds:g} s): {before:,.0f} points/s (gzip: {influx_gz:,.0f})",
                flush=True,
            )
            print(
                f"pipeline: {args.publishers} publishers → mosquitto → {args.workers} ingest → influxd …",
                flush=True,
            )
            with Influxd(tmp / "ix") as ix:
                result = pipeline(args, mq, ix, tmp)
            print(f"influx limit again: {args.seconds:g} s plain …", flush=True)
            with Influxd(tmp / "ix-limit-after") as ix:
                after, _, _ = influx_limit(ix, args.seconds, gzip=False, **shape)
            influx_plain = (before + after) / 2
    broker_readings = broker_msgs * args.readings_per_message
    limit = min(influx_plain, broker_readings)
    out = {
        "readings_per_s": round(result["readings_per_s"], 1),
        "p50_latency_ms": result["p50_latency_ms"] and round(result["p50_latency_ms"], 1),
        "p99_latency_ms": result["p99_latency_ms"] and round(result["p99_latency_ms"], 1),
        "influx_limit_readings_per_s": round(influx_plain, 1),
        "broker_limit_msgs_per_s": round(broker_msgs, 1),
        "ratio_to_limit": round(result["readings_per_s"] / limit, 3),
        "lost": result["lost"],
        "influx_limit_gzip_readings_per_s": round(influx_gz, 1),
        "influx_limit_before_after_readings_per_s": [round(before, 1), round(after, 1)],
        "influx_limit_first_5s_readings_per_s": round(influx_burst, 1),
        "broker_limit_readings_per_s": round(broker_readings, 1),
        "readings_per_message": args.readings_per_message,
        "published_readings": result["published_readings"],
        "stored_readings": result["stored_readings"],
        "latency_probes": result["latency_probes"],
        "pipeline_seconds": round(result["pipeline_seconds"], 2),
        "warmup_seconds": args.warmup,
        "cpu_us_per_reading": result["cpu_us_per_reading"],
        "ingest_view_medians": result["ingest_view"],
        "influx_limit_cpu_us_per_point": round(influx_limit_cpu, 2),
        "publishers": args.publishers,
        "gateways": args.publishers * args.gateways,
        "ingest_workers": args.workers,
        "write_workers": args.write_workers,
        "private_orgs": args.private_orgs,
        "window_readings_min": args.window,
        "window_s": args.window_s,
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cpus",
        "python": platform.python_version(),
        "load_average_after": os.getloadavg(),
        "measured_at": format_ts(datetime.now(UTC)),
    }
    for k, v in out.items():
        print(f"{k}: {v}")
    if args.json:
        args.json.write_text(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())
    if args.plot:
        plot(args.plot, out, result)
        print(f"picture of the run: {args.plot}")
    if out["lost"]:
        raise SystemExit(f"LOST {out['lost']} readings")


if __name__ == "__main__":
    main()
