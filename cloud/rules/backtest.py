"""Backtesting: the same engine and rules over history, from InfluxDB or a CSV of readings.

Readings are fed in time order (event time drives every rule, so holds and staleness behave as
they did live); the result is every alert transition that would have been raised.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from cloud.core.alerts import Alert
from cloud.io.influx.client import InfluxClient
from cloud.rules.base import Rule
from cloud.rules.detectors.replay import parse_ts
from cloud.rules.engine import Engine
from edge.contract import ID_PATTERN, KINDS, Reading, is_id

TAGS = ("org", "gateway", "sensor")


@dataclass(frozen=True, slots=True)
class Skipped:
    where: str
    reason: str


def _reading(kind: str, ts: datetime, tags: dict[str, str], fields: dict[str, Any]) -> Reading:
    return Reading.model_validate(
        {"kind": kind, "ts": ts, "fields": fields, **{t: tags.get(t, "") for t in TAGS}}
    )


def readings_from_influx(
    client: InfluxClient,
    since: datetime,
    until: datetime,
    report: Callable[[Skipped], None],
    org: str | None = None,
) -> list[Reading]:
    """Every reading stored between `since` and `until` (every kind), in time order."""
    out: list[Reading] = []
    where = f"time >= '{since.isoformat()}' AND time < '{until.isoformat()}'"
    if org is not None:
        if not is_id(org):
            raise ValueError(f"org: {org!r} is not an id ({ID_PATTERN})")
        where += f" AND \"org\" = '{org}'"
    for kind, spec in KINDS.items():
        names = [f.name for f in spec.fields]
        select = ", ".join(f'"{n}"' for n in names)
        # Only contract names, ISO timestamps and a checked id go into the query.
        q = f'SELECT {select} FROM "{kind.value}" WHERE {where} GROUP BY "org", "gateway", "sensor"'  # noqa: S608
        for series in client.series(q):
            tags = series.get("tags", {})
            columns = series["columns"]
            for row in series["values"]:
                values = dict(zip(columns, row, strict=True))
                fields = {n: values[n] for n in names if values.get(n) is not None}
                try:
                    ts = datetime.fromtimestamp(values["time"] / 1000, UTC)
                    out.append(_reading(kind.value, ts, tags, fields))
                except (ValidationError, ValueError) as exc:
                    report(Skipped(f"{kind.value} {tags} {values['time']}", str(exc).splitlines()[0]))
    out.sort(key=lambda r: r.ts)
    return out


def readings_from_csv(path: Path, report: Callable[[Skipped], None]) -> list[Reading]:
    """Readings from a CSV with header `timestamp,kind,org,gateway,sensor,<field>,...` (empty
    cells are absent fields); bad rows are reported with their line and skipped."""
    out: list[Reading] = []
    with path.open(newline="", encoding="utf-8-sig") as f:
        rows = csv.DictReader(f)
        for line, row in enumerate(rows, start=2):
            try:
                fields: dict[str, Any] = {
                    k: float(v)
                    for k, v in row.items()
                    if k not in ("timestamp", "kind", *TAGS) and v not in ("", None)
                }
                out.append(_reading(row["kind"], parse_ts(row["timestamp"]), row, fields))
            except (ValidationError, ValueError, KeyError, TypeError) as exc:
                report(Skipped(f"{path}:{line}", str(exc).splitlines()[0]))
    out.sort(key=lambda r: r.ts)
    return out


def backtest(rules: list[Rule[Any]], readings: Iterable[Reading]) -> list[Alert]:
    engine = Engine(rules)
    out: list[Alert] = []
    for r in readings:
        out.extend(engine.observe(r))
    return out
