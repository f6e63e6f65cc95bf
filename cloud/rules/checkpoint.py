"""What the rules service has learnt, kept across restarts: per-series state and the stream's position.

A checkpoint holds, for every rule that learns (`ScoredFieldRule`: a detector and an alert's
hysteresis per series), the state of each series that changed since the previous checkpoint,
the alerts those rules have open, and the *position*: the data messages already taken in, by
their batch's gateway, `seq` and first reading's time (`Delivered`; the time tells a gateway
whose sequence restarted from 0 from a duplicate). It is written in one transaction to
the alert store's database (SQLite or PostgreSQL, tables `rules_series_state` and
`rules_checkpoint`, keyed by the service's `instance`), and restored when the service starts.

Exactness rests on the acknowledgements (decision 0018): the service acknowledges a message only
once a checkpoint that includes it is committed. After a kill, the broker's persistent session
delivers again everything after the last checkpoint ([MQTT-4.4.0-1]), in the order it was first
sent, and the restored state takes it from there, as the uninterrupted service did. A message
taken in by the checkpoint whose acknowledgement was lost (killed between the commit and the
PUBACK, or a reconnection) comes again and is skipped by its (gateway, seq), as a gateway's own
duplicate publish is.

A rule whose config changed since the checkpoint starts from scratch (its rows are ignored), as
on a hot reload; so does a series whose state came from another version of its detector's code.
"""

from __future__ import annotations

import hashlib
import logging
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from cloud.core.alerts import Alert
from cloud.io.db import Migration, UTCDateTime, make_engine, migrate
from cloud.rules.base import Rule
from cloud.rules.detectors import StateError
from cloud.rules.engine import Engine as RulesEngine
from cloud.rules.field import ScoredFieldRule
from cloud.rules.hysteresis import SeriesId

log = logging.getLogger(__name__)

COMPONENT = "rules-state"
SEQ_WINDOW = 4096  # batches remembered per gateway: a duplicate older than this is taken again

metadata = sa.MetaData()
series_table = sa.Table(
    "rules_series_state",
    metadata,
    sa.Column("instance", sa.String(64), primary_key=True),
    sa.Column("rule", sa.String(64), primary_key=True),
    sa.Column("org", sa.String(64), primary_key=True),
    sa.Column("gateway", sa.String(64), primary_key=True),
    sa.Column("sensor", sa.String(64), primary_key=True),
    sa.Column("config", sa.String(64), nullable=False),  # digest of the rule's config
    sa.Column("state", sa.LargeBinary, nullable=False),  # JSON
    sa.Column("updated_at", UTCDateTime, nullable=False),
)
checkpoint_table = sa.Table(
    "rules_checkpoint",
    metadata,
    sa.Column("instance", sa.String(64), primary_key=True),
    sa.Column("position", sa.LargeBinary, nullable=False),  # JSON: Delivered and open alerts
    sa.Column("taken_at", UTCDateTime, nullable=False),
    sa.Column("number", sa.Integer, nullable=False),
)


def _create_v1(conn: Connection) -> None:
    metadata.create_all(conn)


MIGRATIONS = [Migration(1, "rules' per-series state and checkpoint position", _create_v1)]


class Delivered:
    """The data messages taken in, per gateway: the last SEQ_WINDOW batches' (seq, first
    reading's time in µs)."""

    def __init__(self) -> None:
        self._order: dict[tuple[str, str], deque[tuple[int, int]]] = {}
        self._seen: dict[tuple[str, str], set[tuple[int, int]]] = {}

    def take(self, org: str, gateway: str, seq: int, first_us: int) -> bool:
        """True the first time a batch is seen (process it), False for a duplicate."""
        key = (org, gateway)
        seen = self._seen.get(key)
        if seen is None:
            seen = self._seen[key] = set()
            self._order[key] = deque()
        batch = (seq, first_us)
        if batch in seen:
            return False
        seen.add(batch)
        order = self._order[key]
        order.append(batch)
        if len(order) > SEQ_WINDOW:
            seen.discard(order.popleft())
        return True

    def state(self) -> list[list[Any]]:
        return [[org, gw, [list(b) for b in order]] for (org, gw), order in self._order.items()]

    @classmethod
    def from_state(cls, data: list[list[Any]]) -> Delivered:
        out = cls()
        for org, gw, batches in data:
            order = deque((int(seq), int(us)) for seq, us in batches)
            out._order[(org, gw)] = order
            out._seen[(org, gw)] = set(order)
        return out


def config_digest(rule: Rule[Any]) -> str:
    return hashlib.sha256(rule.config.model_dump_json().encode()).hexdigest()[:32]


def learning_rules(engine: RulesEngine) -> list[ScoredFieldRule[Any]]:
    return [r for r in engine.rules if isinstance(r, ScoredFieldRule)]


@dataclass(slots=True)
class Restored:
    """What a start found: series restored, series refused (another config or code), alerts."""

    checkpoint: int = 0
    series: int = 0
    refused: int = 0
    open_alerts: int = 0
    delivered: Delivered = field(default_factory=Delivered)


def _alert_data(a: Alert) -> dict[str, Any]:
    return orjson.loads(a.to_json())  # type: ignore[no-any-return]


def _alert(data: dict[str, Any]) -> Alert:
    return Alert(
        rule=data["rule"],
        org=data["org"],
        entity=data["entity"],
        gateway=data["gateway"],
        kind=data["kind"],
        severity=data["severity"],
        state=data["state"],
        since=datetime.fromisoformat(data["since"]),
        ts=datetime.fromisoformat(data["ts"]),
        message=data["message"],
        value=data.get("value"),
        threshold=data.get("threshold"),
        context=data.get("context"),
        id=data.get("id"),
    )


class CheckpointStore:
    """The rules service's checkpoints in a relational database (the alert store's, usually)."""

    def __init__(self, url_or_engine: str | Engine, instance: str = "main") -> None:
        self.engine = make_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
        migrate(self.engine, COMPONENT, MIGRATIONS)
        self.instance = instance
        self.number = 0
        self.series_written = 0

    def close(self) -> None:
        self.engine.dispose()

    def save(self, engine: RulesEngine, delivered: Delivered, *, every_series: bool = False) -> int:
        """Write the series changed since the last save (every one with `every_series`) and
        the position, in one transaction; returns the series written."""
        now = datetime.now(UTC)
        rows: list[dict[str, Any]] = []
        rules = learning_rules(engine)
        for rule in rules:
            digest = config_digest(rule)
            keys: Iterable[SeriesId] = list(rule.detectors) if every_series else rule.dirty
            for key in keys:
                state = orjson.dumps(rule.series_state(key))
                rows.append(
                    {
                        "instance": self.instance,
                        "rule": rule.name,
                        "org": key[0],
                        "gateway": key[1],
                        "sensor": key[2],
                        "config": digest,
                        "state": state,
                        "updated_at": now,
                    }
                )
        names = {r.name for r in rules}
        position = orjson.dumps(
            {
                "delivered": delivered.state(),
                "open": [_alert_data(a) for a in engine.open.values() if a.rule in names],
            }
        )
        self.number += 1
        with self.engine.begin() as conn:
            if rows:
                keys_of = [(r["rule"], r["org"], r["gateway"], r["sensor"]) for r in rows]
                t = series_table.c
                for chunk in range(0, len(keys_of), 500):
                    conn.execute(
                        series_table.delete().where(
                            t.instance == self.instance,
                            sa.tuple_(t.rule, t.org, t.gateway, t.sensor).in_(keys_of[chunk : chunk + 500]),
                        )
                    )
                conn.execute(series_table.insert(), rows)
            conn.execute(checkpoint_table.delete().where(checkpoint_table.c.instance == self.instance))
            conn.execute(
                checkpoint_table.insert().values(
                    instance=self.instance, position=position, taken_at=now, number=self.number
                )
            )
        for rule in rules:
            rule.dirty.clear()
        self.series_written += len(rows)
        return len(rows)

    def _prune(self, current: dict[str, str]) -> None:
        """Forget the series of rules that are gone or changed: they relearn, and their old
        state would never be read again."""
        t = series_table.c
        with self.engine.begin() as conn:
            stale = sa.and_(t.instance == self.instance, t.rule.not_in(list(current)))
            conn.execute(series_table.delete().where(stale))
            for name, digest in current.items():
                conn.execute(
                    series_table.delete().where(
                        t.instance == self.instance, t.rule == name, t.config != digest
                    )
                )

    def restore(self, engine: RulesEngine) -> Restored:
        """Put the last checkpoint's state into `engine`'s learning rules."""
        out = Restored()
        with self.engine.connect() as conn:
            cp = conn.execute(
                sa.select(checkpoint_table).where(checkpoint_table.c.instance == self.instance)
            ).first()
            if cp is None:
                return out
            self.number = out.checkpoint = int(cp.number)
            rules = {r.name: (r, config_digest(r)) for r in learning_rules(engine)}
            restored: set[tuple[str, str, str]] = set()
            rows = conn.execute(sa.select(series_table).where(series_table.c.instance == self.instance))
            for row in rows:
                found = rules.get(row.rule)
                if found is None or found[1] != row.config:
                    out.refused += 1
                    continue
                try:
                    key = engine.series_id(row.org, row.gateway, row.sensor)  # the engine's own tuple
                    found[0].restore_series(key, orjson.loads(row.state))
                except (StateError, ValueError, KeyError, TypeError) as exc:
                    log.warning("relearning %s %s/%s/%s: %s", row.rule, row.org, row.gateway, row.sensor, exc)
                    out.refused += 1
                    continue
                out.series += 1
                restored.add((row.rule, row.org, row.sensor))
        if out.refused:
            self._prune({name: digest for name, (_rule, digest) in rules.items()})
        position = orjson.loads(cp.position)
        out.delivered = Delivered.from_state(position["delivered"])
        for data in position["open"]:
            # Only where the rule's series came back: the hysteresis that resolves it is there.
            if (data["rule"], data["org"], data["entity"]) in restored:
                a = _alert(data)
                engine.open[a.key] = a
                out.open_alerts += 1
        return out


__all__ = ["COMPONENT", "CheckpointStore", "Delivered", "Restored", "config_digest"]
