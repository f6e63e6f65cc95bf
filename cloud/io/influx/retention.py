"""Retention policies, hourly and daily rollups and their backfill, created idempotently when
ingest starts (or by `sitroom provision apply`).

- RP `raw` (DEFAULT, duration `raw_retention`, 30 days unless configured): every reading, and
  whatever is written without naming an RP.
- RP `rollup` (duration `rollup_retention`, kept for ever unless configured): one point per
  series and hour, in a measurement named as the raw one (`"rollup"."traffic"`), so that a
  panel's query reads either RP by changing only the RP (`FROM "$rp"."traffic"`).
- RP `rollup_1d` (the same duration): one point per series and day, from the hourly rollup.
- RP `meta` (kept for ever): `sitroom_rp`, which RP a dashboard reads for a time range (the
  dashboards' `$rp` variable, cloud/dashboards/build.py): raw up to two days, hourly up to ten,
  daily beyond. Grafana-native: a query variable refreshed when the time range changes.

Each field is aggregated as the contract declares it (edge.contract `FieldSpec.rollup`): counts
are summed (`vehicles`, `heavy`, `interval_s`: the flow stays exact), levels averaged with the
period's peak beside (`occupancy_pct`, `occupancy_pct_max`), states and positions keep their
last value (`occupied` of a bay, `lat`, `lon`); `samples` counts the raw points. A field that
only means something when a count is above 0 (a counter's mean speed, 0 when no vehicle
passed) is averaged by a second hourly CQ over those intervals only, into the same points. The
daily tier aggregates the hourly one the same way (sums of sums, means of means, peaks of
peaks, last of last, `samples` summed).

An hourly CQ covers the two hours that just ended (`RESAMPLE FOR 2h`: a straggler spooled on a
gateway is still rolled up), the daily one the current and the previous day, every hour. So
when a rollup is created (or its definition changes) after raw data exists, it is backfilled:
the CQ's own SELECT ... INTO runs over the raw retention window, a day at a time (`backfill`).

InfluxDB 1.x refuses `CREATE RETENTION POLICY` for an existing name with other settings and has
no `ALTER CONTINUOUS QUERY`, so each object is read first and only created, altered or replaced
when it differs: a second start issues no writing statement at all.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from cloud.io.influx.client import InfluxClient
from cloud.io.influx.schema import SAMPLES_FIELD, Field, measurements

log = logging.getLogger(__name__)

RAW_RP = "raw"
ROLLUP_RP = "rollup"
DAILY_RP = "rollup_1d"
META_RP = "meta"
ROLLUP_INTERVAL = "1h"
ROLLUP_S = 3600
# The dashboards read raw data for ranges up to two days, hourly rollups up to ten, daily ones
# beyond: a chart draws 100 points per line (cloud/dashboards/build.py), i.e. 2-hour steps over
# a week and 12-hour steps over a month, and InfluxDB's cost is the points it reads. Over a month
# the daily tier reads 1/24 of the hourly one (bench/queries.py measures all three).
RAW_UP_TO_S = 2 * 86_400
HOURLY_UP_TO_S = 10 * 86_400
RP_CHOICE_MEASUREMENT = "sitroom_rp"
_NO_LIMIT_MS = 2**62


@dataclass(frozen=True, slots=True)
class Rollup:
    name: str  # the CQ's name
    source: str  # the measurement, named the same in every RP
    select: str  # the SELECT list
    where: str = ""  # an extra condition on the points read (`"vehicles" > 0`)
    tags: tuple[str, ...] = ()  # the measurement's declared tags: each series keeps them
    source_rp: str = RAW_RP  # read from
    target_rp: str = ROLLUP_RP  # written to
    interval: str = ROLLUP_INTERVAL
    resample: str = "RESAMPLE FOR 2h"


def _select(f: Field) -> list[str]:
    name = f.name
    match f.aggregate:
        case "sum":
            return [f'sum("{name}") AS "{name}"']
        case "mean":
            return [f'mean("{name}") AS "{name}"']
        case "mean_max":
            return [f'mean("{name}") AS "{name}"', f'max("{name}") AS "{name}_max"']
        case "max":
            return [f'max("{name}") AS "{name}"']
        case "last":
            return [f'last("{name}") AS "{name}"']
        case None:
            return []


def _reselect(f: Field) -> list[str]:
    """The daily tier's SELECT of a field of the hourly one."""
    name = f.name
    match f.aggregate:
        case "mean_max":
            return [f'mean("{name}") AS "{name}"', f'max("{name}_max") AS "{name}_max"']
        case None:
            return []
        case _:
            return _select(f)


def rollups() -> list[Rollup]:
    """Every CQ: per rolled-up measurement (cloud/io/influx/schema.py) one hourly from raw, one
    more hourly per condition its fields share (`meaningful_if`), and one daily from the hourly."""
    out = []
    for m in measurements().values():
        if not m.is_rolled_up:
            continue
        plain = [f for f in m.fields if f.meaningful_if is None]
        first = next(f.name for f in m.fields if f.aggregate is not None)
        parts = [p for f in plain for p in _select(f)] + [f'count("{first}") AS "{SAMPLES_FIELD}"']
        out.append(Rollup(f"{m.name}_{ROLLUP_INTERVAL}", m.name, ", ".join(parts), tags=m.tags))
        for bound in sorted({f.meaningful_if for f in m.fields if f.meaningful_if}):
            fields = [f for f in m.fields if f.meaningful_if == bound]
            out.append(
                Rollup(
                    f"{m.name}_{ROLLUP_INTERVAL}_{bound}",
                    m.name,
                    ", ".join(p for f in fields for p in _select(f)),
                    f'"{bound}" > 0',
                    m.tags,
                )
            )
        daily = [p for f in m.fields for p in _reselect(f)] + [f'sum("{SAMPLES_FIELD}") AS "{SAMPLES_FIELD}"']
        out.append(
            Rollup(
                f"{m.name}_1d",
                m.name,
                ", ".join(daily),
                tags=m.tags,
                source_rp=ROLLUP_RP,
                target_rp=DAILY_RP,
                interval="1d",
                resample="RESAMPLE EVERY 1h FOR 2d",
            )
        )
    return out


def _duration_text(influx_duration: str) -> str:
    """What `SHOW RETENTION POLICIES` prints for a duration we set (`30d` -> `720h0m0s`)."""
    if influx_duration == "INF":
        return "0s"
    n, unit = int(influx_duration[:-1]), influx_duration[-1]
    hours = n * {"h": 1, "d": 24, "w": 168}[unit]
    return f"{hours}h0m0s"


def _seconds(influx_duration: str) -> int | None:
    if influx_duration == "INF":
        return None
    n, unit = int(influx_duration[:-1]), influx_duration[-1]
    return n * {"h": 3600, "d": 86_400, "w": 604_800}[unit]


def _group_by(tags: tuple[str, ...]) -> str:
    # The declared tags, not `*`: every rollup series keeps exactly its measurement's tag set
    # (what InfluxDB 3 wants), and InfluxDB 1.6 groups a known list faster than a wildcard.
    return ", ".join(f'"{t}"' for t in tags) or "*"


def _select_into(db: str, r: Rollup, time_range: str = "") -> str:
    # Names come from the schema and the database name from a pattern-checked setting, not users.
    conditions = " AND ".join(c for c in (r.where, time_range) if c)
    return (
        f'SELECT {r.select} INTO "{db}"."{r.target_rp}"."{r.source}" '  # noqa: S608
        f'FROM "{db}"."{r.source_rp}"."{r.source}"' + (f" WHERE {conditions}" if conditions else "") + " "
        f"GROUP BY time({r.interval}), {_group_by(r.tags)}"
    )


def cq_text(db: str, r: Rollup) -> str:
    return f'CREATE CONTINUOUS QUERY "{r.name}" ON "{db}" {r.resample} BEGIN {_select_into(db, r)} END'


def ensure(
    influx: InfluxClient,
    *,
    raw_retention: str,
    rollup_retention: str,
    database: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[str]:
    """Create or correct the RPs, CQs and RP choice of `database` (default: the client's), and
    backfill the rollups it created; return the statements issued."""
    db = database or influx.database
    issued: list[str] = []

    def run(statement: str) -> None:
        influx.query(statement, database=db)
        issued.append(statement)

    existing = {
        row[0]: row
        for s in influx.series(f'SHOW RETENTION POLICIES ON "{db}"', database=db)
        for row in s.get("values", [])
    }
    # Columns: name, duration, shardGroupDuration, replicaN, default. InfluxDB 1.x opens a
    # cursor per series and shard a query touches: raw data in weeks, not the default day of a
    # 30-day RP (data then lives up to a week past its retention), the hourly tier in 4 weeks
    # and the daily one in a year, not the default 7 days of an RP kept for ever
    # (bench/queries.py: half the time of a month over 2,000 series, or less).
    policies = (
        (RAW_RP, raw_retention, "7d", True),
        (ROLLUP_RP, rollup_retention, "4w", False),
        (DAILY_RP, rollup_retention, "52w", False),
        (META_RP, "INF", "", False),
    )
    for name, duration, wanted_shard, is_default in policies:
        kept, length = _seconds(duration), _seconds(wanted_shard) if wanted_shard else None
        # A shard may not outlive its RP: a short retention keeps InfluxDB's own shard length.
        shard = wanted_shard if length is not None and (kept is None or kept >= length) else ""
        row = existing.get(name)
        default = " DEFAULT" if is_default else ""
        shards = f" SHARD DURATION {shard}" if shard else ""
        if row is None:
            policy = f'RETENTION POLICY "{name}" ON "{db}" DURATION {duration} REPLICATION 1'
            run(f"CREATE {policy}{shards}{default}")
        elif (
            row[1] != _duration_text(duration)
            or (shard and row[2] != _duration_text(shard))
            or (is_default and not row[4])
        ):
            run(f'ALTER RETENTION POLICY "{name}" ON "{db}" DURATION {duration}{shards}{default}')

    cqs: dict[str, str] = {}
    for s in influx.series("SHOW CONTINUOUS QUERIES", database=db):
        if s.get("name") == db:
            cqs.update({row[0]: row[1] for row in s.get("values", [])})
    created = []
    for r in rollups():
        wanted = cq_text(db, r)
        have = cqs.get(r.name)
        if have is not None and _same_cq(have, wanted):
            continue
        if have is not None:
            run(f'DROP CONTINUOUS QUERY "{r.name}" ON "{db}"')
        run(wanted)
        created.append(r)
    _ensure_rp_choice(influx, db)
    if created:
        backfill(influx, created, database=db, window_s=_seconds(raw_retention), progress=progress)
    return issued


def _same_cq(have: str, wanted: str) -> bool:
    # InfluxDB prints the CQ back re-rendered (quoting and spacing may differ): compare loosely.
    def norm(q: str) -> str:
        return "".join(q.replace('"', "").split()).lower()

    return norm(have) == norm(wanted)


# (range tag, RP, time ranges it serves from, to in ms: from < range <= to)
_RP_CHOICE = (
    ("short", RAW_RP, 0, RAW_UP_TO_S * 1000),
    ("medium", ROLLUP_RP, RAW_UP_TO_S * 1000, HOURLY_UP_TO_S * 1000),
    ("long", DAILY_RP, HOURLY_UP_TO_S * 1000, _NO_LIMIT_MS),
)


def rp_choice_lines() -> list[str]:
    """The points of `sitroom_rp`: each RP with the range of time ranges (ms) it serves."""
    # At time 0 in an RP kept for ever: the variable's query needs no time condition.
    return [
        f'{RP_CHOICE_MEASUREMENT},range={tag} rp="{rp}",from_ms={lo}i,to_ms={hi}i 0'
        for tag, rp, lo, hi in _RP_CHOICE
    ]


def _ensure_rp_choice(influx: InfluxClient, db: str) -> None:
    q = f'SELECT "rp", "from_ms", "to_ms" FROM "{META_RP}"."{RP_CHOICE_MEASUREMENT}"'  # noqa: S608  (constants)
    have = sorted(tuple(row[1:]) for s in influx.series(q, database=db) for row in s.get("values", []))
    if have != sorted((rp, lo, hi) for _, rp, lo, hi in _RP_CHOICE):
        influx.write(rp_choice_lines(), database=db, retention_policy=META_RP)


def backfill(
    influx: InfluxClient,
    targets: list[Rollup] | None = None,
    *,
    database: str | None = None,
    window_s: int | None = 30 * 86_400,
    until_s: int | None = None,
    progress: Callable[[str], None] | None = None,
    parallel: int = 2,
) -> int:
    """Run each rollup's SELECT ... INTO over the data of the last `window_s` seconds (None:
    since the oldest point), up to the start of the current hour (`until_s`), one day per
    statement so that no query holds a month of points at once, `parallel` rollups at a time
    (InfluxDB spends most of a SELECT ... INTO on one core): the hourly tier first, then the
    daily one from it. Returns the points written."""
    db = database or influx.database
    until = until_s if until_s is not None else int(time.time()) // ROLLUP_S * ROLLUP_S
    since = until - window_s if window_s is not None else 0
    say = progress or (lambda text: log.info("%s", text))

    def one(r: Rollup) -> int:
        oldest = _oldest_s(influx, db, r.source, since, r.source_rp)
        if oldest is None or oldest >= until:
            return 0  # nothing to roll up (a fresh database: one query, no day-by-day walk)
        t0 = time.monotonic()
        points = 0
        # Whole periods of the target: hours, or UTC days (GROUP BY time(1d)'s boundaries).
        step = ROLLUP_S if r.interval == ROLLUP_INTERVAL else 86_400
        for lo in range(oldest // step * step, until, 86_400):
            hi = min(lo + 86_400, until)
            statement = _select_into(db, r, f"time >= {lo}s AND time < {hi}s")
            for s in influx.series(statement, database=db):
                points += sum(int(row[1]) for row in s["values"])
        say(f"rollup {r.name} backfilled on {db}: {points:,} points in {time.monotonic() - t0:.1f} s")
        return points

    chosen = targets if targets is not None else rollups()
    written = 0
    with ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="rollup-backfill") as pool:
        for tier in (RAW_RP, ROLLUP_RP):
            written += sum(pool.map(one, [r for r in chosen if r.source_rp == tier]))
    return written


def _oldest_s(influx: InfluxClient, db: str, measurement: str, since_s: int, rp: str = RAW_RP) -> int | None:
    """The time of the oldest point of `measurement` in `rp` since `since_s`, None when none."""
    m = measurements()[measurement]
    counted = next(f.name for f in m.fields if f.aggregate is not None)
    q = f'SELECT first("{counted}") FROM "{rp}"."{measurement}" WHERE time >= {since_s}s'  # noqa: S608
    times = [int(s["values"][0][0]) for s in influx.series(q, database=db) if s.get("values")]
    return min(times) // 1000 if times else None


__all__ = [
    "DAILY_RP",
    "HOURLY_UP_TO_S",
    "META_RP",
    "RAW_RP",
    "RAW_UP_TO_S",
    "ROLLUP_RP",
    "RP_CHOICE_MEASUREMENT",
    "SAMPLES_FIELD",
    "Rollup",
    "backfill",
    "cq_text",
    "ensure",
    "rollups",
]
