"""Months of history, fast: every dashboard panel over 24 h, 7 days and 30 days, raw vs rollup.

    .venv/bin/python bench/queries.py [--series 50000] [--days 30] [--json out.json] [--plot out.png]

1. Starts its own InfluxDB (cloud.dev.servers) in a temp dir.
2. Loads `--days` of metropolitan-scale data through line protocol (the same `line()` ingest
   uses), oldest first, in 5,000-point writes from two connections, into RP `raw`: `--series`
   series in all — on-street bays (most of them, a state change every ~12 h), car parks and
   traffic counters (every 30 min), fleet vehicles (every 30 min in service hours), the
   gateways' health and sequence accounting, worksite snapshots and their nearby sensors,
   alerts, dead letters and ingest's own counters — over a dozen organisations of both areas.
   Raw rates are lower than a real deployment's (a counter every 5 min, a bus every 10 s would
   be 20-100x the points, which this two-core machine cannot load in a bench); the rollups have
   the real size (one point per series and hour, or day), so the rollup figures are the
   deployment's and the raw ones are a lower bound.
3. Creates the retention policies' CQs only then, as a deployment that adds rollups late does:
   `retention.ensure` backfills them (timed).
4. Runs every panel's queries of every dashboard in dashboards/json, with every variable on
   "All" as Grafana sends them, over 24 h, 7 days and 30 days, once reading raw and once the
   rollup tier for that range beyond raw (hourly up to 10 days, daily over them), for panels on
   rolled-up measurements, `--runs` times each, and records p50/p95 per panel (a panel's time
   is the sum of its targets'). "As shown" is what the dashboard runs: the `$rp` variable's
   pick for that range (raw up to 2 days).

Prints a table and `worst_p95_ms_30d` (the slowest panel as shown at 30 days; target < 1000),
writes the figures with `--json` (keys include `series`, `points_raw`, `points_rollup`,
`worst_p95_ms_30d`, `panels`) and a picture of p95 per panel at 30 days with `--plot`.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import queue
import random
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cloud.dashboards.check import Dashboard, all_values, load_dashboards, panel_range_s  # noqa: E402
from cloud.dashboards.queries import expand, grafana_interval, variable_names  # noqa: E402
from cloud.dev.servers import Influxd  # noqa: E402
from cloud.io.influx import retention  # noqa: E402
from cloud.io.influx.client import InfluxClient, QueryError  # noqa: E402

RANGES = (("24h", 86_400), ("7d", 7 * 86_400), ("30d", 30 * 86_400))
ORGS = {
    "municipality": ["comune-prato", "comune-firenze"],
    "parking": ["comune-prato", "comune-firenze", "firenze-parcheggi", "prato-parcheggi"],
    "fleet": ["alia", "autolinee-toscane", "publiacqua", "toscana-energia", "consiag", "gest"],
}
TARGET_MS = 1000.0
HOUR = 3600


@dataclass(slots=True)
class Mix:
    """How many series of each kind, and one point every how many seconds (raw)."""

    bays: int
    car_parks: int
    counters: int
    vehicles: int
    gateways: int
    worksites: int

    @classmethod
    def for_series(cls, series: int) -> Mix:
        f = series / 50_000
        car_parks, counters, vehicles = round(1000 * f), round(2000 * f), round(2000 * f)
        gateways, worksites = max(2, round(250 * f)), max(2, round(300 * f))
        others = car_parks + counters + vehicles + 2 * gateways + 4 * worksites + 2  # + ingest instances
        return cls(max(series - others, 1), car_parks, counters, vehicles, gateways, worksites)


def daily(hour: float, peaks: tuple[float, ...] = (8.5, 18.0)) -> float:
    """A working day's shape, 0..1: two rush hours over a quiet night."""
    return max(0.05, *(math.exp(-(((hour - p) / 2.2) ** 2)) for p in peaks))


class Loader:
    """Writes line protocol from a generator through `writers` connections, with progress."""

    def __init__(self, url: str, database: str, writers: int = 2) -> None:
        self.jobs: queue.Queue[list[str] | None] = queue.Queue(maxsize=4 * writers)
        self.written = 0
        self.lock = threading.Lock()
        self.errors: list[str] = []
        self.threads = [
            threading.Thread(
                target=self._write, args=(InfluxClient(url, database, timeout_s=120),), daemon=True
            )
            for _ in range(writers)
        ]
        for t in self.threads:
            t.start()

    def _write(self, influx: InfluxClient) -> None:
        while (lines := self.jobs.get()) is not None:
            try:
                influx.write(lines, retention_policy=retention.RAW_RP)
            except Exception as exc:  # noqa: BLE001  (reported at the end; the bench goes on)
                self.errors.append(str(exc)[:300])
            with self.lock:
                self.written += len(lines)
        influx.close()

    def load(self, lines: Iterator[str], total: int, batch: int = 5000) -> float:
        t0 = last = time.monotonic()
        chunk: list[str] = []
        for line in lines:
            chunk.append(line)
            if len(chunk) == batch:
                self.jobs.put(chunk)
                chunk = []
                if time.monotonic() - last >= 10:
                    last = time.monotonic()
                    done = self.written
                    rate = done / max(last - t0, 1e-6)
                    print(
                        f"  loaded {done:,} of ~{total:,} points ({100 * done / total:.0f} %), "
                        f"{rate:,.0f}/s, ~{(total - done) / max(rate, 1):.0f} s left",
                        flush=True,
                    )
        if chunk:
            self.jobs.put(chunk)
        for _ in self.threads:
            self.jobs.put(None)
        for t in self.threads:
            t.join()
        return time.monotonic() - t0


@dataclass(slots=True)
class Generator:
    mix: Mix
    days: int
    now_s: int
    rng: random.Random = field(default_factory=lambda: random.Random(19))

    @property
    def start_s(self) -> int:
        return (self.now_s - self.days * 86_400) // HOUR * HOUR + HOUR

    def estimate(self) -> int:
        m, d = self.mix, self.days
        return (
            m.bays * 2 * d + (m.car_parks + m.counters) * 48 * d + m.vehicles * 32 * d
            + 2 * m.gateways * 48 * d + m.worksites * 48 * d + 3 * m.worksites * 12 * d + 2 * 1440 * d
        )  # fmt: skip

    def lines(self) -> Iterator[str]:
        """Every point, in time order, an hour at a time (as a live deployment writes them)."""
        phases = [self.rng.uniform(0, 43_200) for _ in range(self.mix.bays)]
        for hour_s in range(self.start_s, self.now_s, HOUR):
            load = daily((hour_s % 86_400) / HOUR)
            yield from self._bays(hour_s, phases)
            for half in (0, 1800):
                yield from self._every_half_hour(hour_s + half, load)
            if hour_s % (2 * HOUR) == 0:
                yield from self._near_worksites(hour_s)
            yield from self._ingest(hour_s)
            yield from self._events(hour_s)

    def _bays(self, hour_s: int, phases: list[float]) -> Iterator[str]:
        # On-street bays: a state change every ~12 hours, each at its own phase.
        for i, phase in enumerate(phases):
            offset = (phase - hour_s) % 43_200
            if offset < HOUR:
                state = "true" if (hour_s // 43_200 + i) % 2 else "false"
                yield (
                    f"parking_spot,gateway=gw-b{i // 400},org={ORGS['parking'][i % 4]},sensor=s-{i},"
                    f"street=st-{i // 20},zone=z-{i % 40} occupied={state} {(hour_s + int(offset)) * 10**9}"
                )

    def _every_half_hour(self, t_s: int, load: float) -> Iterator[str]:
        m, rng, t = self.mix, self.rng, t_s * 10**9
        for i in range(m.car_parks):
            capacity = 200 + (i % 9) * 100
            occupied = min(capacity, int(capacity * (0.15 + 0.8 * load) * (0.9 + 0.2 * rng.random())))
            yield (
                f"parking,gateway=gw-p{i // 10},org={ORGS['parking'][i % 4]},sensor=p-{i},zone=z-{i % 40} "
                f"occupied={occupied}i,capacity={capacity}i,occupancy_pct={100 * occupied / capacity:.1f} {t}"
            )
        for i in range(m.counters):
            vehicles = int(600 * load * (0.8 + 0.4 * rng.random()))
            speed = 0.0 if vehicles == 0 else 50 - 20 * load + 5 * rng.random()
            yield (
                f"traffic,direction={('inbound', 'outbound')[i % 2]},gateway=gw-t{i // 20},lane={i % 3},"
                f"org={ORGS['municipality'][i % 2]},sensor=t-{i},site=site-{i // 6} vehicles={vehicles}i,"
                f"heavy={vehicles // 12}i,interval_s=1800i,speed_kmh={speed:.1f},"
                f"occupancy_pct={min(100.0, 25 * load):.1f} {t}"
            )
        if 6 <= (t_s % 86_400) / HOUR < 22:  # vehicles in service
            for i in range(m.vehicles):
                lat = 43.72 + 0.24 * ((i * 0.618 + t_s / 86_400 * 0.01) % 1)
                lon = 10.99 + 0.35 * ((i * 0.414 + t_s / 86_400 * 0.013) % 1)
                yield (
                    f"fleet,gateway=fleet,org={ORGS['fleet'][i % 6]},route=r-{i % 50},sensor=v-{i},"
                    f"vehicle_type={('bus', 'waste', 'van', 'car')[i % 4]} lat={lat:.5f},lon={lon:.5f},"
                    f"speed_kmh={30 * rng.random():.1f},heading_deg={rng.uniform(0, 360):.0f} {t}"
                )
        for i in range(m.gateways):
            org = ORGS["parking"][i % 4]
            yield (
                f"sitroom_gateway_health,gateway=gw-{i},org={org} uptime_s={t_s - self.start_s}.0,"
                f"readings_read={t_s // 10}.0,readings_published={t_s // 10}.0,"
                f"batches_published={t_s // 600}.0,queue_depth={rng.choice((0.0, 0.0, 0.0, 120.0))},"
                f"oldest_queued_age_s=0.0,dropped_readings=0.0,source_errors=0.0,"
                f"cpu_pct={5 + 10 * load:.1f},rss_mb=48.0,disk_free_mb=900.0 {t}"
            )
            yield (
                f"sitroom_gateway_seq,gateway=gw-{i},org={org} highest_seq={t_s // 60}i,gaps={i % 3}i,"
                f"duplicates={i % 2}i,lag_s=0.4,clock_offset_s=0.1,clock_suspect=false {t}"
            )
        for i in range(m.worksites):
            state = ("planned", "active", "suspended", "ended")[(i + t_s // 86_400) % 4]
            yield (
                f"worksite,id=ws-{i},org={ORGS['fleet'][i % 6]},street=st-{i},work_type=water "
                f'state="{state}",title="Lavori {i}",active={int(state == "active")}i,'
                f"planned={int(state == 'planned')}i,lanes_closed={i % 3}i,road_closed=0i,"
                f"parking_spaces_removed={i % 20}i,bus_lines={i % 2}i,days_to_start=-1.0,days_to_end=4.0 {t}"
            )

    def _near_worksites(self, hour_s: int) -> Iterator[str]:
        counters = max(self.mix.counters, 1)
        for i in range(self.mix.worksites):
            for k in range(3):
                yield (
                    f"worksite_sensor,id=ws-{i},org={ORGS['fleet'][i % 6]},sensor=t-{(i * 3 + k) % counters} "
                    f"distance_m={50.0 * (k + 1)},active=1i {hour_s * 10**9}"
                )

    def _ingest(self, hour_s: int) -> Iterator[str]:
        for minute in range(60):
            done = (hour_s - self.start_s + minute * 60) * 400
            for instance in ("ingest-a", "ingest-b"):
                yield (
                    f"sitroom_ingest,instance={instance} messages={done // 500}i,readings_received={done}i,"
                    f"readings_written={done}i,readings_rejected=0i,deadletters=0i,writes={done // 5000}i,"
                    f"write_retries=0i,fast_path_fallbacks=0i,last_batch_points=5000i,buffered=0i,"
                    f"buffered_bytes=0i,writes_in_flight=1i,last_write_ms=120.0,write_ms_max=300.0,"
                    f"buffer_fill_pct=1.0,readings_per_s=400.0,write_ms_p50=110.0,batch_points_mean=5000.0 "
                    f"{(hour_s + minute * 60) * 10**9}"
                )

    def _events(self, hour_s: int) -> Iterator[str]:
        """A few alerts and dead letters an hour; every 6 hours, the gateways' birth or will."""
        ns, rng = hour_s * 10**9, self.rng
        for k in range(rng.randint(0, 6)):
            state = ("firing", "acknowledged", "resolved")[k % 3]
            yield (
                f"alerts,entity=p-{k},gateway=gw-{k},kind=parking,org={ORGS['parking'][k % 4]},"
                f'rule=parking-full,severity=warning,state={state} message="full",active={int(k % 3 != 2)}i,'
                f"unacked={int(k % 3 == 0)}i,since_ms={hour_s * 1000}i,value=97.0,threshold=95.0"
                f"{',ack_s=300.0' if k % 3 == 1 else ''} {ns + k * 10**9}"
            )
        for k in range(rng.randint(0, 3)):
            yield (
                f"sitroom_deadletter,gateway=gw-{k},instance=ingest-a,org=comune-prato,reason=schema "
                f'count=1i,field="readings[0]",value="x",message="bad",topic="sr/v1",sensor="p-1",'
                f'payload_size=10i,payload_sha256="00" {ns + k * 10**9 + 7}'
            )
        if hour_s % (6 * HOUR) == 0:
            for i in range(self.mix.gateways):
                yield (
                    f"sitroom_gateway_status,gateway=gw-{i},org={ORGS['parking'][i % 4]} "
                    f'online={int(i % 17 != 0)}i,reason="" {ns}'
                )


@dataclass(slots=True)
class PanelResult:
    dashboard: str
    panel: str
    range: str
    raw_ms: list[float]
    rollup_ms: list[float] | None  # None: the panel reads no rolled-up measurement
    shown_rp: str
    errors: list[str] = field(default_factory=list)

    @staticmethod
    def p(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]

    def figures(self) -> dict[str, Any]:
        shown = self.rollup_ms if (self.shown_rp != retention.RAW_RP and self.rollup_ms) else self.raw_ms
        out: dict[str, Any] = {
            "dashboard": self.dashboard,
            "panel": self.panel,
            "range": self.range,
            "raw_p50_ms": round(statistics.median(self.raw_ms), 1),
            "raw_p95_ms": round(self.p(self.raw_ms, 0.95), 1),
            "shown_rp": self.shown_rp if self.rollup_ms is not None else "default",
            "shown_p50_ms": round(statistics.median(shown), 1),
            "shown_p95_ms": round(self.p(shown, 0.95), 1),
        }
        if self.rollup_ms is not None:
            out["rollup_p50_ms"] = round(statistics.median(self.rollup_ms), 1)
            out["rollup_p95_ms"] = round(self.p(self.rollup_ms, 0.95), 1)
        if self.errors:
            out["errors"] = self.errors
        return out


def timed(influx: InfluxClient, queries: list[str], runs: int, errors: list[str]) -> list[float]:
    """Milliseconds per run of all `queries` in a row; a run over 20 s is not repeated."""
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        for q in queries:
            try:
                influx.query(q, epoch="ms")
            except QueryError as exc:
                errors.append(str(exc)[:300])
        out.append((time.perf_counter() - t0) * 1000)
        if out[-1] > 20_000:
            break
    return out


def run_panel(
    influx: InfluxClient, where: tuple[str, str], panel: dict[str, Any], values: dict[str, Any], runs: int
) -> PanelResult | None:
    """One panel over one range, raw and (when it reads a rolled-up measurement) rollup."""
    (dashboard, label), dashboard_range_s = where, dict(RANGES)[where[1]]
    range_s = panel_range_s(panel, dashboard_range_s)  # a latest-value panel covers its own day
    targets = [t["query"] for t in panel.get("targets", []) if t.get("query")]
    if not targets:
        return None
    interval = grafana_interval(
        range_s, int(panel.get("maxDataPoints") or 1000), str(panel.get("interval") or "")
    )

    def expanded(rp: str) -> list[str]:
        chosen = {**values, "rp": rp}
        return [expand(q, range_s=range_s, interval=interval, variables=chosen) for q in targets]

    errors: list[str] = []
    raw = timed(influx, expanded(retention.RAW_RP), runs, errors)
    uses_rp = any("rp" in variable_names(q) for q in targets)
    # The rollup tier this range would read beyond raw: hourly up to ten days, daily over them.
    tier = retention.ROLLUP_RP if dashboard_range_s <= retention.HOURLY_UP_TO_S else retention.DAILY_RP
    rollup = timed(influx, expanded(tier), runs, errors) if uses_rp else None
    shown = str(values.get("rp", retention.RAW_RP))
    return PanelResult(dashboard, str(panel.get("title")), label, raw, rollup, shown, errors)


def run_panels(influx: InfluxClient, dashboards: list[Dashboard], runs: int) -> list[PanelResult]:
    results = []
    for label, range_s in RANGES:
        for d in dashboards:
            values = all_values(d, influx, range_s=range_s)
            for panel in d.panels:
                result = run_panel(influx, (d.name.removesuffix(".json"), label), panel, values, runs)
                if result is None:
                    continue
                results.append(result)
                f = result.figures()
                rollup = (
                    f"{f['rollup_p50_ms']:>6.0f}/{f['rollup_p95_ms']:>6.0f}" if "rollup_p50_ms" in f else "-"
                )
                print(
                    f"  {label:>4} {f['dashboard'][:14]:<14} {f['panel'][:44]:<44} "
                    f"raw {f['raw_p50_ms']:>7.0f}/{f['raw_p95_ms']:>7.0f}  rollup {rollup:>13}  "
                    f"shown ({f['shown_rp']}) {f['shown_p95_ms']:>6.0f}"
                    + ("  ERRORS" if result.errors else ""),
                    flush=True,
                )
    return results


# A field of each rolled-up measurement, to count its points.
COUNTED = {
    "parking": "occupied", "parking_spot": "occupied", "traffic": "vehicles", "fleet": "lat",
    "sitroom_gateway_health": "cpu_pct", "sitroom_gateway_seq": "gaps", "worksite": "active",
    "worksite_sensor": "distance_m", "sitroom_ingest": "writes",
}  # fmt: skip


def count_points(influx: InfluxClient, rp: str) -> int:
    total = 0
    for measurement, field_name in COUNTED.items():
        for s in influx.series(f'SELECT count("{field_name}") FROM "{rp}"."{measurement}"'):
            total += int(s["values"][0][1])
    return total


def plot(out: dict[str, Any], path: Path) -> None:
    import matplotlib  # noqa: PLC0415  (only for --plot)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    rows = [p for p in out["panels"] if p["range"] == "30d"]
    rows.sort(key=lambda p: p["raw_p95_ms"])
    labels = [f"{p['dashboard']}: {p['panel'][:40]}" for p in rows]
    fig, ax = plt.subplots(figsize=(11, 0.28 * len(rows) + 1.8))
    y = range(len(rows))
    ax.barh([i + 0.2 for i in y], [p["raw_p95_ms"] for p in rows], height=0.4, color="#D55E00", label="raw")
    ax.barh(
        [i - 0.2 for i in y],
        [p["shown_p95_ms"] for p in rows],
        height=0.4,
        color="#0072B2",
        label="as shown ($rp: rollup)",
    )
    ax.axvline(TARGET_MS, color="#000", linestyle="--", linewidth=1, label="target 1 s")
    ax.set_xscale("log")
    ax.set_yticks(list(y), labels, fontsize=7)
    ax.set_xlabel("p95 over 30 days, ms (log)")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(
        f"bench/queries.py: {out['series']:,} series, {out['points_raw']:,} raw points, {out['days']} days "
        f"(load avg {out['load_average_before'][0]:.1f})",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)


@dataclass(slots=True)
class Loaded:
    series: int
    points_raw: int
    points_rollup: int
    points_rollup_1d: int
    load_s: float
    backfill_s: float


def load(influx: InfluxClient, url: str, gen: Generator, days: int) -> Loaded:
    """Raw data first (RP raw as a deployment without rollups had it), then the rollups late."""
    influx.create_database()
    raw = f"{days + 1}d"
    influx.query(f'CREATE RETENTION POLICY "raw" ON "sitroom" DURATION {raw} REPLICATION 1 DEFAULT')
    print(f"loading ~{gen.estimate():,} raw points …", flush=True)
    load_s = Loader(url, "sitroom").load(gen.lines(), gen.estimate())
    points_raw = count_points(influx, retention.RAW_RP)
    print(f"  loaded {points_raw:,} points in {load_s:.0f} s ({points_raw / load_s:,.0f}/s)")
    print("creating the rollups late: retention.ensure backfills them …", flush=True)
    t0 = time.monotonic()
    retention.ensure(
        influx,
        raw_retention=raw,
        rollup_retention="INF",
        progress=lambda text: print(f"  {text}", flush=True),
    )
    backfill_s = time.monotonic() - t0
    points_rollup = count_points(influx, retention.ROLLUP_RP)
    points_daily = count_points(influx, retention.DAILY_RP)
    cardinality = influx.series('SHOW SERIES CARDINALITY ON "sitroom"')
    series = int(sum(s["values"][0][0] for s in cardinality))
    print(
        f"  {points_rollup:,} hourly and {points_daily:,} daily rollup points in {backfill_s:.0f} s; "
        f"{series:,} series in the database"
    )
    return Loaded(series, points_raw, points_rollup, points_daily, load_s, backfill_s)


def figures(args: argparse.Namespace, mix: Mix, loaded: Loaded, results: list[PanelResult]) -> dict[str, Any]:
    panels = [r.figures() for r in results]
    at_30d = [p for p in panels if p["range"] == "30d"]
    worst = max(at_30d, key=lambda p: p["shown_p95_ms"])
    return {
        "series": loaded.series,
        "series_requested": args.series,
        "mix": {k: getattr(mix, k) for k in mix.__slots__},
        "days": args.days,
        "points_raw": loaded.points_raw,
        "points_rollup": loaded.points_rollup,
        "points_rollup_1d": loaded.points_rollup_1d,
        "load_s": round(loaded.load_s, 1),
        "load_points_per_s": round(loaded.points_raw / loaded.load_s),
        "backfill_s": round(loaded.backfill_s, 1),
        "runs": args.runs,
        "raw_up_to_s": retention.RAW_UP_TO_S,
        "hourly_up_to_s": retention.HOURLY_UP_TO_S,
        "worst_p95_ms_30d": worst["shown_p95_ms"],
        "worst_panel_30d": f"{worst['dashboard']}: {worst['panel']}",
        "worst_raw_p95_ms_30d": max(p["raw_p95_ms"] for p in at_30d),
        "panels_over_target_30d": [
            f"{p['dashboard']}: {p['panel']}" for p in at_30d if p["shown_p95_ms"] >= TARGET_MS
        ],
        "errors": sorted({e for r in results for e in r.errors}),
        "panels": panels,
        "load_average_before": list(args.load_before),
        "load_average_after": list(os.getloadavg()),
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cpus",
        "python": platform.python_version(),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--series", type=int, default=50_000, help="series in all (default 50,000)")
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--runs", type=int, default=5, help="runs of each query (p95 of these)")
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument("--plot", type=Path, help="draw p95 per panel at 30 days (PNG)")
    ap.add_argument("--dashboards", type=Path, default=REPO / "dashboards" / "json")
    args = ap.parse_args()
    # Stopped by a signal, the `finally` below still stops our InfluxDB.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args.load_before = os.getloadavg()
    mix = Mix.for_series(args.series)
    gen = Generator(mix, args.days, int(time.time()))
    print(
        f"bench/queries.py: {args.series:,} series, {args.days} days; load average {args.load_before[0]:.2f}"
    )
    print(f"  mix: {mix}")
    with tempfile.TemporaryDirectory(prefix="sitroom-bench-queries-") as tmp:
        influxd = Influxd(Path(tmp) / "influxd").start()
        influx = InfluxClient(influxd.url, "sitroom", timeout_s=300)
        try:
            loaded = load(influx, influxd.url, gen, args.days)
            dashboards = load_dashboards(args.dashboards)
            print(
                f"running every panel of {len(dashboards)} dashboards, {args.runs} runs each "
                "(p50/p95 ms; raw, rollup, and as the dashboard shows it):",
                flush=True,
            )
            results = run_panels(influx, dashboards, args.runs)
        finally:
            influx.close()
            influxd.stop()
    out = figures(args, mix, loaded, results)
    print(
        f"series: {out['series']:,}; raw points {out['points_raw']:,}; rollup points {out['points_rollup']:,}"
    )
    print(
        f"worst_p95_ms_30d: {out['worst_p95_ms_30d']} ({out['worst_panel_30d']}); worst raw p95 at 30 d: "
        f"{out['worst_raw_p95_ms_30d']} — target < {TARGET_MS:.0f}: "
        + ("OK" if out["worst_p95_ms_30d"] < TARGET_MS else f"MISSED: {out['panels_over_target_30d']}")
    )
    if out["errors"]:
        print(f"query errors: {out['errors']}")
    print(f"load average after: {out['load_average_after'][0]:.2f}")
    if args.json:
        args.json.write_bytes(orjson.dumps(out, option=orjson.OPT_INDENT_2))
        print(f"wrote {args.json}")
    if args.plot:
        plot(out, args.plot)
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
