"""The relational alert store: SQLite by default, PostgreSQL in production (SQLAlchemy Core).

One active alert per (rule, org, entity) is enforced by the database itself, with a unique
partial index on the rows whose state is not `resolved`: two engines firing the same alert at
the same instant race to one INSERT, and the loser reads the winner's row. History is kept:
every transition is a row of `alert_events`, and a resolved alert stays in `alerts`.

Silences and maintenance windows are rows of `silences`: a time window and optional matchers
(org, rule, entity, gateway); an alert they match is stored as silenced and not notified.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from cloud.core.alerts import (
    ENGINE,
    Alert,
    AlertNotFoundError,
    OperatorMove,
    Outcome,
    Silence,
    StoredAlert,
    Transition,
)
from cloud.core.lifecycle import Event, InvalidTransitionError, next_state
from cloud.io.db import Migration, make_engine, migrate

COMPONENT = "rules"
metadata = sa.MetaData()

alerts_table = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("rule", sa.String(64), nullable=False),
    sa.Column("org", sa.String(64), nullable=False),
    sa.Column("entity", sa.String(64), nullable=False),
    sa.Column("gateway", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("since", sa.DateTime(timezone=True), nullable=False),
    sa.Column("fired_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("acked_at", sa.DateTime(timezone=True)),
    sa.Column("acked_by", sa.String(200)),
    sa.Column("resolved_at", sa.DateTime(timezone=True)),
    sa.Column("resolved_by", sa.String(200)),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("value", sa.Float),
    sa.Column("threshold", sa.Float),
    sa.Column("context", sa.Text, nullable=False, server_default="{}"),
    sa.Column("duplicates", sa.Integer, nullable=False, server_default="0"),
    sa.Column("is_silenced", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("is_flapping", sa.Boolean, nullable=False, server_default=sa.false()),
)
# The heart of deduplication: at most one row per key that is not resolved.
active_index = sa.Index(
    "alerts_one_active",
    alerts_table.c.rule,
    alerts_table.c.org,
    alerts_table.c.entity,
    unique=True,
    sqlite_where=alerts_table.c.state != "resolved",
    postgresql_where=alerts_table.c.state != "resolved",
)
events_table = sa.Table(
    "alert_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("alert_id", sa.Integer, sa.ForeignKey("alerts.id"), nullable=False, index=True),
    sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
    sa.Column("event", sa.String(16), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("note", sa.Text, nullable=False, server_default=""),
)
silences_table = sa.Table(
    "silences",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(16), nullable=False),  # silence | maintenance
    sa.Column("org", sa.String(64)),
    sa.Column("rule", sa.String(64)),
    sa.Column("entity", sa.String(64)),
    sa.Column("gateway", sa.String(64)),
    sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
)


def _create_v1(conn: Connection) -> None:
    metadata.create_all(conn)


MIGRATIONS = [Migration(1, "alerts, alert events, silences", _create_v1)]


def _utc(ts: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes: they were stored as UTC.
    if ts is None:
        return None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _row(row: Any) -> StoredAlert:
    m = row._mapping
    return StoredAlert(
        id=m["id"],
        rule=m["rule"],
        org=m["org"],
        entity=m["entity"],
        gateway=m["gateway"],
        kind=m["kind"],
        severity=m["severity"],
        state=m["state"],
        since=_utc(m["since"]),  # type: ignore[arg-type]
        fired_at=_utc(m["fired_at"]),  # type: ignore[arg-type]
        updated_at=_utc(m["updated_at"]),  # type: ignore[arg-type]
        acked_at=_utc(m["acked_at"]),
        acked_by=m["acked_by"],
        resolved_at=_utc(m["resolved_at"]),
        resolved_by=m["resolved_by"],
        message=m["message"],
        value=m["value"],
        threshold=m["threshold"],
        context=orjson.loads(m["context"] or "{}"),
        duplicates=m["duplicates"],
        is_silenced=bool(m["is_silenced"]),
        is_flapping=bool(m["is_flapping"]),
    )


class AlertStore:
    """Alerts, their history and silences in one relational database.

    Flapping: an alert opened more than `flap_max` times within `flap_window` (for one key) is
    stored with `is_flapping` and not notified until the key settles.
    """

    def __init__(
        self, url_or_engine: str | Engine, *, flap_max: int = 3, flap_window: timedelta = timedelta(hours=1)
    ) -> None:
        self.engine = make_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
        migrate(self.engine, COMPONENT, MIGRATIONS)
        self.flap_max = flap_max
        self.flap_window = flap_window
        self._opened: dict[tuple[str, str, str], deque[datetime]] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self.engine.dispose()

    # --- reads ---------------------------------------------------------------------------------

    def get(self, alert_id: int) -> StoredAlert:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(alerts_table).where(alerts_table.c.id == alert_id)).first()
        if row is None:
            raise AlertNotFoundError(alert_id)
        return _row(row)

    def active(self, org: str | None = None) -> list[StoredAlert]:
        q = sa.select(alerts_table).where(alerts_table.c.state != "resolved")
        if org is not None:
            q = q.where(alerts_table.c.org == org)
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(q.order_by(alerts_table.c.id))]

    def history(self, org: str | None = None, limit: int = 100) -> list[StoredAlert]:
        q = sa.select(alerts_table)
        if org is not None:
            q = q.where(alerts_table.c.org == org)
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(q.order_by(alerts_table.c.id.desc()).limit(limit))]

    def events(self, alert_id: int) -> list[tuple[str, str, str]]:
        q = sa.select(events_table.c.event, events_table.c.actor, events_table.c.note).where(
            events_table.c.alert_id == alert_id
        )
        with self.engine.connect() as conn:
            return [(r[0], r[1], r[2]) for r in conn.execute(q.order_by(events_table.c.id))]

    def last_event_id(self, before: datetime | None = None) -> int:
        """The id of the newest history row (written before `before`), 0 when there is none."""
        q = sa.select(sa.func.max(events_table.c.id))
        if before is not None:
            q = q.where(events_table.c.ts < before)
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar() or 0)

    def operator_moves_after(self, event_id: int, limit: int = 500) -> list[OperatorMove]:
        """Acknowledgements, and resolutions not made by the engine, after history row
        `event_id`, oldest first."""
        is_operator_move = sa.or_(
            events_table.c.event == Event.ACK.value,
            sa.and_(events_table.c.event == Event.RESOLVE.value, events_table.c.actor != ENGINE),
        )
        q = (
            sa.select(
                events_table.c.id.label("event_id"),
                events_table.c.event,
                events_table.c.actor,
                events_table.c.note,
                events_table.c.ts.label("event_ts"),
                alerts_table,
            )
            .join(alerts_table, alerts_table.c.id == events_table.c.alert_id)
            .where(events_table.c.id > event_id, is_operator_move)
            .order_by(events_table.c.id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            rows = list(conn.execute(q))
        return [
            OperatorMove(
                event_id=r.event_id,
                event="ack" if r.event == Event.ACK.value else "resolve",
                actor=r.actor,
                note=r.note,
                ts=_utc(r.event_ts),  # type: ignore[arg-type]
                alert=_row(r),
            )
            for r in rows
        ]

    def _active_row(self, conn: Connection, rule: str, org: str, entity: str) -> StoredAlert | None:
        row = conn.execute(
            sa.select(alerts_table).where(
                alerts_table.c.rule == rule,
                alerts_table.c.org == org,
                alerts_table.c.entity == entity,
                alerts_table.c.state != "resolved",
            )
        ).first()
        return None if row is None else _row(row)

    # --- silences ------------------------------------------------------------------------------

    def add_silence(
        self,
        *,
        starts_at: datetime,
        ends_at: datetime,
        reason: str,
        created_by: str,
        kind: Literal["silence", "maintenance"] = "silence",
        org: str | None = None,
        rule: str | None = None,
        entity: str | None = None,
        gateway: str | None = None,
    ) -> Silence:
        if ends_at <= starts_at:
            raise ValueError(f"ends_at {ends_at.isoformat()} must be after starts_at {starts_at.isoformat()}")
        values = {
            "kind": kind,
            "org": org,
            "rule": rule,
            "entity": entity,
            "gateway": gateway,
            "starts_at": starts_at,
            "ends_at": ends_at,
            "reason": reason,
            "created_by": created_by,
        }
        with self.engine.begin() as conn:
            new_id = conn.execute(silences_table.insert().values(**values)).inserted_primary_key[0]  # type: ignore[index]
        return Silence(id=int(new_id), **values)  # type: ignore[arg-type]

    def silences(self, at: datetime | None = None) -> list[Silence]:
        q = sa.select(silences_table)
        if at is not None:
            q = q.where(silences_table.c.starts_at <= at, silences_table.c.ends_at > at)
        with self.engine.connect() as conn:
            rows = list(conn.execute(q.order_by(silences_table.c.id)))
        out = []
        for r in rows:
            m = dict(r._mapping)
            m["starts_at"], m["ends_at"] = _utc(m["starts_at"]), _utc(m["ends_at"])
            out.append(Silence(**m))
        return out

    def is_silenced(self, a: Alert, at: datetime) -> bool:
        return any(s.matches(a, at) for s in self.silences(at))

    # --- transitions ---------------------------------------------------------------------------

    def _is_flapping(self, a: Alert) -> bool:
        with self._lock:
            opened = self._opened.setdefault(a.key, deque())
            opened.append(a.ts)
            while opened and a.ts - opened[0] > self.flap_window:
                opened.popleft()
            return len(opened) > self.flap_max

    def fire(self, a: Alert, context: dict[str, Any] | None = None, actor: str = ENGINE) -> Transition:
        """Open an alert for `a.key`, or count a duplicate of the active one."""
        with self.engine.connect() as conn:
            existing = self._active_row(conn, a.rule, a.org, a.entity)
        if existing is not None:
            return self._duplicate(existing, a)
        is_silenced = self.is_silenced(a, a.ts)
        is_flapping = self._is_flapping(a)
        values = {
            "rule": a.rule,
            "org": a.org,
            "entity": a.entity,
            "gateway": a.gateway,
            "kind": a.kind,
            "severity": a.severity,
            "state": next_state(None, Event.FIRE),
            "since": a.since,
            "fired_at": a.ts,
            "updated_at": a.ts,
            "message": a.message,
            "value": a.value,
            "threshold": a.threshold,
            "context": orjson.dumps(context if context is not None else (a.context or {})).decode(),
            "is_silenced": is_silenced,
            "is_flapping": is_flapping,
        }
        try:
            with self.engine.begin() as conn:
                new_id = conn.execute(alerts_table.insert().values(**values)).inserted_primary_key[0]  # type: ignore[index]
                conn.execute(
                    events_table.insert().values(
                        alert_id=new_id, ts=a.ts, event="fire", actor=actor, note=a.message
                    )
                )
                row = conn.execute(sa.select(alerts_table).where(alerts_table.c.id == new_id)).one()
            return Transition("opened", _row(row))
        except sa.exc.IntegrityError:
            # Another engine opened it between our read and our insert: the index said no.
            with self.engine.connect() as conn:
                existing = self._active_row(conn, a.rule, a.org, a.entity)
            if existing is None:  # resolved in between: rare, and firing again is then right
                return self.fire(a, context, actor)
            return self._duplicate(existing, a)

    def _duplicate(self, existing: StoredAlert, a: Alert) -> Transition:
        with self.engine.begin() as conn:
            conn.execute(
                alerts_table.update()
                .where(alerts_table.c.id == existing.id)
                .values(duplicates=alerts_table.c.duplicates + 1)
            )
        return Transition("duplicate", existing)

    def acknowledge(self, alert_id: int, by: str, note: str = "", at: datetime | None = None) -> Transition:
        return self._move(alert_id, Event.ACK, by, note, at or datetime.now(UTC))

    def resolve(self, alert_id: int, by: str, note: str = "", at: datetime | None = None) -> Transition:
        return self._move(alert_id, Event.RESOLVE, by, note, at or datetime.now(UTC))

    def resolve_key(self, a: Alert, actor: str = ENGINE) -> Transition | None:
        """Resolve the active alert of `a.key`, if any (the engine's condition ended)."""
        with self.engine.connect() as conn:
            existing = self._active_row(conn, a.rule, a.org, a.entity)
        if existing is None:
            return None
        return self._move(existing.id, Event.RESOLVE, actor, a.message, a.ts)

    def _move(self, alert_id: int, event: Event, by: str, note: str, at: datetime) -> Transition:
        # Optimistic: the UPDATE only applies to the state we read, so two operators (or the
        # engine and an operator) moving one alert at once cannot both win; the loser re-reads.
        for _attempt in range(5):
            with self.engine.begin() as conn:
                row = conn.execute(sa.select(alerts_table).where(alerts_table.c.id == alert_id)).first()
                if row is None:
                    raise AlertNotFoundError(alert_id)
                current = _row(row)
                new = next_state(current.state, event)
                if new == current.state:
                    return Transition("unchanged", current)
                values: dict[str, Any] = {"state": new, "updated_at": at}
                if event is Event.ACK:
                    values |= {"acked_at": at, "acked_by": by}
                else:
                    values |= {"resolved_at": at, "resolved_by": by}
                done = conn.execute(
                    alerts_table.update()
                    .where(alerts_table.c.id == alert_id, alerts_table.c.state == current.state)
                    .values(**values)
                )
                if done.rowcount != 1:
                    continue
                conn.execute(
                    events_table.insert().values(
                        alert_id=alert_id, ts=at, event=event.value, actor=by, note=note
                    )
                )
                row = conn.execute(sa.select(alerts_table).where(alerts_table.c.id == alert_id)).one()
            outcome: Outcome = "acknowledged" if event is Event.ACK else "resolved"
            return Transition(outcome, _row(row))
        raise InvalidTransitionError(current.state, event)

    def active_keys(self) -> Sequence[tuple[str, str, str]]:
        with self.engine.connect() as conn:
            q = sa.select(alerts_table.c.rule, alerts_table.c.org, alerts_table.c.entity).where(
                alerts_table.c.state != "resolved"
            )
            return [(r[0], r[1], r[2]) for r in conn.execute(q)]
