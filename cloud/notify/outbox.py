"""The notification outbox: deliveries waiting to go out, one row per (alert, channel).

The notifier writes a delivery here when an alert is routed, and deletes it once its channel
took it: a process killed in between delivers it after its restart (at least once: a delivery
made just before the kill, not yet deleted, goes again). `SqlOutbox` keeps the rows in the
alert store's database (SQLite beside it, or the same PostgreSQL), `MemoryOutbox` in memory for
what does not need to outlive the process (tests, the console). Several processes may share a
SQL outbox: a delivery is claimed for `lease` by one owner (an UPDATE that checks again that
the row is free, so two claims never take one row, whatever the isolation level), and an owner
that died leaves its claims to expire — or takes them back at once when it restarts under the
same name.

Rows of a first attempt go out together once the oldest of them has waited its group time (a
storm is one message per channel); a failed delivery waits for its retry time alone.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from cloud.core.alerts import Alert
from cloud.io.db import Migration, UTCDateTime, migrate

COMPONENT = "notify"
metadata = sa.MetaData()
outbox_table = sa.Table(
    "notify_outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("channel", sa.String(64), nullable=False),
    sa.Column("alert", sa.Text, nullable=False),  # the alert as JSON (`encode_alert`)
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("due_at", UTCDateTime, nullable=False, index=True),  # group time passed, or retry time
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("claimed_by", sa.String(128)),
    sa.Column("claimed_until", UTCDateTime),
    sa.Column("claim", sa.String(64)),  # the claim's own token: which rows this claim took
    sa.Column("last_error", sa.Text),
)


def _create_v1(conn: Connection) -> None:
    metadata.create_all(conn)


MIGRATIONS = [Migration(1, "notification outbox", _create_v1)]


def encode_alert(alert: Alert) -> str:
    return orjson.dumps(asdict(alert)).decode()


def decode_alert(text: str) -> Alert:
    body: dict[str, Any] = orjson.loads(text)
    body["since"] = datetime.fromisoformat(body["since"])
    body["ts"] = datetime.fromisoformat(body["ts"])
    return Alert(**body)


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    channel: str
    alert: Alert
    created_at: datetime
    attempts: int


class Outbox(Protocol):
    def add(self, deliveries: Sequence[tuple[str, Alert]], now: datetime, due_at: datetime) -> None: ...

    def claim(self, owner: str, now: datetime, lease: timedelta, limit: int) -> list[Delivery]:
        """What is due: every first attempt once the oldest is due, and retries that are due."""
        ...

    def next_due(self, owner: str, now: datetime) -> datetime | None:
        """When `owner` may next claim something (None: nothing waits)."""
        ...

    def done(self, ids: Iterable[int]) -> None: ...

    def retry(self, ids: Iterable[int], due_at: datetime, error: str) -> None: ...

    def waiting_first_attempt(self) -> int: ...

    def close(self) -> None: ...


class SqlOutbox:
    """The outbox in a SQL database (SQLite or PostgreSQL), created by its migration."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        migrate(engine, COMPONENT, MIGRATIONS)

    def add(self, deliveries: Sequence[tuple[str, Alert]], now: datetime, due_at: datetime) -> None:
        rows = [
            {"channel": c, "alert": encode_alert(a), "created_at": now, "due_at": due_at, "attempts": 0}
            for c, a in deliveries
        ]
        with self.engine.begin() as conn:
            conn.execute(outbox_table.insert(), rows)

    def claim(self, owner: str, now: datetime, lease: timedelta, limit: int) -> list[Delivery]:
        t = outbox_table.c
        free = sa.or_(t.claimed_by.is_(None), t.claimed_until < now, t.claimed_by == owner)
        token = uuid.uuid4().hex
        with self.engine.begin() as conn:
            first_due = conn.execute(
                sa.select(t.id).where(free, t.attempts == 0, t.due_at <= now).limit(1)
            ).first()
            due = sa.and_(t.attempts > 0, t.due_at <= now)
            if first_due is not None:
                due = sa.or_(due, t.attempts == 0)
            ids = conn.execute(sa.select(t.id).where(free, due).order_by(t.id).limit(limit)).scalars().all()
            if not ids:
                return []
            # `free` again in the UPDATE: a row another owner claimed meanwhile is not taken.
            conn.execute(
                outbox_table.update()
                .where(t.id.in_(ids), free)
                .values(claimed_by=owner, claimed_until=now + lease, claim=token)
            )
            rows = conn.execute(
                sa.select(t.id, t.channel, t.alert, t.created_at, t.attempts)
                .where(t.claim == token)
                .order_by(t.id)
            ).all()
        return [Delivery(r.id, r.channel, decode_alert(r.alert), r.created_at, r.attempts) for r in rows]

    def next_due(self, owner: str, now: datetime) -> datetime | None:
        t = outbox_table.c
        free = sa.or_(t.claimed_by.is_(None), t.claimed_until < now, t.claimed_by == owner)
        when = sa.case((free, t.due_at), else_=t.claimed_until)  # another's claim: when it lapses
        with self.engine.begin() as conn:
            value = conn.execute(sa.select(sa.func.min(when))).scalar()
        if isinstance(value, str):  # SQLite's min() over a CASE loses the column's type
            value = datetime.fromisoformat(value)
        return UTCDateTime().process_result_value(value, self.engine.dialect)

    def done(self, ids: Iterable[int]) -> None:
        with self.engine.begin() as conn:
            conn.execute(outbox_table.delete().where(outbox_table.c.id.in_(list(ids))))

    def retry(self, ids: Iterable[int], due_at: datetime, error: str) -> None:
        t = outbox_table.c
        with self.engine.begin() as conn:
            conn.execute(
                outbox_table.update()
                .where(t.id.in_(list(ids)))
                .values(
                    attempts=t.attempts + 1,
                    due_at=due_at,
                    claimed_by=None,
                    claimed_until=None,
                    last_error=error[:2000],
                )
            )

    def waiting_first_attempt(self) -> int:
        with self.engine.begin() as conn:
            query = sa.select(sa.func.count()).where(outbox_table.c.attempts == 0)
            return int(conn.execute(query).scalar() or 0)

    def close(self) -> None:
        self.engine.dispose()


class MemoryOutbox:
    """The outbox in memory: the same behaviour, gone with the process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # id -> (delivery, due, claimed by, claimed until)
        self._rows: dict[int, tuple[Delivery, datetime, str | None, datetime]] = {}
        self._next_id = 1

    def add(self, deliveries: Sequence[tuple[str, Alert]], now: datetime, due_at: datetime) -> None:
        with self._lock:
            for channel, alert in deliveries:
                delivery = Delivery(self._next_id, channel, alert, now, 0)
                self._rows[self._next_id] = (delivery, due_at, None, now)
                self._next_id += 1

    def claim(self, owner: str, now: datetime, lease: timedelta, limit: int) -> list[Delivery]:
        with self._lock:
            free = {i: row for i, row in self._rows.items() if row[2] in (None, owner) or row[3] < now}
            is_first_due = any(d.attempts == 0 and due <= now for d, due, _, _ in free.values())
            out = [
                d
                for d, due, _, _ in free.values()
                if (d.attempts == 0 and is_first_due) or (d.attempts > 0 and due <= now)
            ][:limit]
            for d in out:
                self._rows[d.id] = (d, self._rows[d.id][1], owner, now + lease)
            return out

    def next_due(self, owner: str, now: datetime) -> datetime | None:
        with self._lock:
            return min(
                (
                    due if by in (None, owner) or until < now else until
                    for _, due, by, until in self._rows.values()
                ),
                default=None,
            )

    def done(self, ids: Iterable[int]) -> None:
        with self._lock:
            for i in ids:
                self._rows.pop(i, None)

    def retry(self, ids: Iterable[int], due_at: datetime, error: str) -> None:
        with self._lock:
            for i in ids:
                d, _, _, until = self._rows[i]
                self._rows[i] = (replace(d, attempts=d.attempts + 1), due_at, None, until)

    def waiting_first_attempt(self) -> int:
        with self._lock:
            return sum(1 for d, _, _, _ in self._rows.values() if d.attempts == 0)

    def close(self) -> None:
        return None


__all__ = ["Delivery", "MemoryOutbox", "Outbox", "SqlOutbox", "decode_alert", "encode_alert"]
