"""Retention policies and rollup continuous queries, created idempotently when ingest starts.

- RP `raw` (DEFAULT, duration `raw_retention`, 30 days unless configured): every reading, and
  whatever is written without naming an RP (dashboards read it without naming one either).
- RP `rollup` (duration `rollup_retention`, kept for ever unless configured): hourly means.
- CQ `{kind}_1h` per sensor kind: `mean()` of each numeric field and `count()` of each boolean
  field over an hour, `GROUP BY time(1h), *` so every series keeps its tags, into
  `"rollup"."{kind}_1h"`. Long-range panels read `"rollup"."parking_1h"` instead of scanning raw
  points (shared/NOTES.md: a city-wide aggregation over raw data takes ~0.5 s).

InfluxDB 1.x refuses `CREATE RETENTION POLICY` for an existing name with other settings and has
no `ALTER CONTINUOUS QUERY`, so each object is read first and only created, altered or replaced
when it differs: a second start issues no writing statement at all.
"""

from __future__ import annotations

from dataclasses import dataclass

from cloud.io.influx.client import InfluxClient
from edge.contract import KINDS

RAW_RP = "raw"
ROLLUP_RP = "rollup"
ROLLUP_INTERVAL = "1h"


@dataclass(frozen=True, slots=True)
class Rollup:
    name: str  # also the CQ's name and the measurement it writes in RP `rollup`
    source: str  # the raw measurement
    select: str  # the SELECT list


def rollups() -> list[Rollup]:
    out = []
    for kind, spec in KINDS.items():
        # Ids and labels (`str` fields) have no hourly summary: mean() refuses strings.
        parts = [
            f'count("{f.name}") AS "{f.name}_count"'
            if f.type == "bool"
            else f'mean("{f.name}") AS "{f.name}"'
            for f in spec.fields
            if f.type != "str"
        ]
        out.append(Rollup(f"{kind.value}_{ROLLUP_INTERVAL}", kind.value, ", ".join(parts)))
    return out


def _duration_text(influx_duration: str) -> str:
    """What `SHOW RETENTION POLICIES` prints for a duration we set (`30d` -> `720h0m0s`)."""
    if influx_duration == "INF":
        return "0s"
    n, unit = int(influx_duration[:-1]), influx_duration[-1]
    hours = n * {"h": 1, "d": 24, "w": 168}[unit]
    return f"{hours}h0m0s"


def cq_text(db: str, r: Rollup) -> str:
    # Names come from KINDS and the database name from a pattern-checked setting, not from users.
    return (
        f'CREATE CONTINUOUS QUERY "{r.name}" ON "{db}" BEGIN SELECT {r.select} '  # noqa: S608
        f'INTO "{db}"."{ROLLUP_RP}"."{r.name}" FROM "{db}"."{RAW_RP}"."{r.source}" '
        f"GROUP BY time({ROLLUP_INTERVAL}), * END"
    )


def ensure(influx: InfluxClient, *, raw_retention: str, rollup_retention: str) -> list[str]:
    """Create or correct the RPs and CQs of `influx.database`; return the statements issued."""
    db = influx.database
    issued: list[str] = []

    def run(statement: str) -> None:
        influx.query(statement, database=db)
        issued.append(statement)

    existing = {
        row[0]: row
        for s in influx.series(f'SHOW RETENTION POLICIES ON "{db}"', database=db)
        for row in s.get("values", [])
    }
    # Columns: name, duration, shardGroupDuration, replicaN, default.
    for name, duration, is_default in ((RAW_RP, raw_retention, True), (ROLLUP_RP, rollup_retention, False)):
        row = existing.get(name)
        default = " DEFAULT" if is_default else ""
        if row is None:
            run(f'CREATE RETENTION POLICY "{name}" ON "{db}" DURATION {duration} REPLICATION 1{default}')
        elif row[1] != _duration_text(duration) or (is_default and not row[4]):
            run(f'ALTER RETENTION POLICY "{name}" ON "{db}" DURATION {duration}{default}')

    cqs: dict[str, str] = {}
    for s in influx.series("SHOW CONTINUOUS QUERIES", database=db):
        if s.get("name") == db:
            cqs.update({row[0]: row[1] for row in s.get("values", [])})
    for r in rollups():
        wanted = cq_text(db, r)
        have = cqs.get(r.name)
        if have is not None and _same_cq(have, wanted):
            continue
        if have is not None:
            run(f'DROP CONTINUOUS QUERY "{r.name}" ON "{db}"')
        run(wanted)
    return issued


def _same_cq(have: str, wanted: str) -> bool:
    # InfluxDB prints the CQ back re-rendered (quoting and spacing may differ): compare loosely.
    def norm(q: str) -> str:
        return "".join(q.replace('"', "").split()).lower()

    return norm(have) == norm(wanted)


__all__ = ["RAW_RP", "ROLLUP_RP", "Rollup", "cq_text", "ensure", "rollups"]
