"""What the reader keeps in the relational store: its seq and outbox, each URL's validators and
header time, the service alerts, and the entities it refused.

One processed body is kept in one transaction (`keep`): its batches get the next sequence
numbers and wait in the outbox, the URL's state moves on, alerts are updated, refusals written.
Batches leave the outbox only once the broker acknowledged them (`sent`): a crash or a broker
outage loses nothing, and the seq, like a gateway's, survives restarts, so ingest counts gaps
and repeats for this source as for any gateway.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from cloud.transit import schema
from cloud.transit.realtime.alerts import ServiceAlert
from cloud.transit.realtime.refusals import Refusal
from cloud.transit.realtime.wire import Wire
from edge.contract import short_repr


@dataclass(slots=True)
class UrlState:
    etag: str | None = None
    last_modified: str | None = None
    header_ts: int | None = None
    body_sha256: str | None = None
    advanced_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Outgoing:
    seq: int
    kind: str
    readings: bytes  # the JSON array
    count: int


@dataclass(slots=True)
class Kept:
    """One processed body's results, to keep together."""

    url: str
    state: UrlState
    now_ms: int
    batches: list[tuple[str, list[Wire]]] = field(default_factory=list)  # (kind, readings)
    alerts: list[ServiceAlert] | None = None  # the URL's whole current set; None: leave them
    refusals: list[Refusal] = field(default_factory=list)


class RealtimeStore:
    def __init__(self, engine: Engine, source: str, operator: str) -> None:
        self.engine = engine
        self.source = source
        self.operator = operator

    def url_state(self, url: str) -> UrlState:
        u = schema.rt_urls
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(u).where(u.c.source == self.source, u.c.url == url)).first()
        if row is None:
            return UrlState()
        return UrlState(row.etag, row.last_modified, row.header_ts, row.body_sha256, row.advanced_ms)

    def seq(self) -> int:
        with self.engine.connect() as conn:
            value = conn.execute(
                sa.select(schema.rt_sources.c.seq).where(schema.rt_sources.c.source == self.source)
            ).scalar()
        return int(value) if value is not None else -1

    def keep(self, kept: Kept) -> list[Outgoing]:
        with self.engine.begin() as conn:
            out = self._outbox(conn, kept)
            self._url(conn, kept)
            if kept.alerts is not None:
                self._alerts(conn, kept)
            if kept.refusals:
                self._refusals(conn, kept)
        return out

    def _outbox(self, conn: Connection, kept: Kept) -> list[Outgoing]:
        s = schema.rt_sources
        row = conn.execute(sa.select(s.c.seq).where(s.c.source == self.source).with_for_update()).first()
        seq = int(row[0]) if row is not None else -1
        out = []
        for kind, readings in kept.batches:
            seq += 1
            out.append(Outgoing(seq, kind, orjson.dumps(readings), len(readings)))
        if out:
            conn.execute(
                schema.rt_outbox.insert(),
                [
                    {
                        "source": self.source,
                        "seq": o.seq,
                        "kind": o.kind,
                        "readings": o.readings,
                        "n_readings": o.count,
                        "created_ms": kept.now_ms,
                    }
                    for o in out
                ],
            )
        values = {"operator": self.operator, "seq": seq, "updated_ms": kept.now_ms}
        if row is None:
            conn.execute(s.insert().values(source=self.source, **values))
        elif out:
            conn.execute(s.update().where(s.c.source == self.source).values(**values))
        return out

    def _url(self, conn: Connection, kept: Kept) -> None:
        u = schema.rt_urls
        st = kept.state
        values = {
            "etag": (st.etag or "")[:500] or None,
            "last_modified": (st.last_modified or "")[:100] or None,
            "header_ts": st.header_ts,
            "body_sha256": st.body_sha256,
            "advanced_ms": st.advanced_ms,
        }
        where = (u.c.source == self.source, u.c.url == kept.url)
        if conn.execute(sa.select(u.c.url).where(*where)).first() is None:
            conn.execute(u.insert().values(source=self.source, url=kept.url, **values))
        else:
            conn.execute(u.update().where(*where).values(**values))

    def _alerts(self, conn: Connection, kept: Kept) -> None:
        a = schema.rt_alerts
        assert kept.alerts is not None
        rows = {
            r.alert_id: r
            for r in conn.execute(
                sa.select(a.c.alert_id, a.c.content_sha256, a.c.ended_ms).where(
                    a.c.source == self.source, a.c.url == kept.url
                )
            )
        }
        current = {al.alert_id: al for al in kept.alerts}
        gone = [i for i, r in rows.items() if i not in current and r.ended_ms is None]
        if gone:
            conn.execute(
                a.update()
                .where(a.c.source == self.source, a.c.alert_id.in_(gone))
                .values(ended_ms=kept.now_ms)
            )
        for alert_id, al in current.items():
            old = rows.get(alert_id)
            key = (a.c.source == self.source, a.c.alert_id == alert_id)
            if old is not None and old.content_sha256 == al.content_sha256:
                conn.execute(a.update().where(*key).values(last_seen_ms=kept.now_ms, ended_ms=None))
                continue
            values = {
                "url": kept.url,
                "cause": al.cause,
                "effect": al.effect,
                "severity": al.severity,
                "header_text": al.header_text,
                "description_text": al.description_text,
                "link": al.url or None,
                "content_sha256": al.content_sha256,
                "last_seen_ms": kept.now_ms,
                "ended_ms": None,
            }
            if old is None:
                conn.execute(
                    a.insert().values(
                        source=self.source, alert_id=alert_id, first_seen_ms=kept.now_ms, **values
                    )
                )
            else:
                conn.execute(a.update().where(*key).values(**values))
            self._alert_parts(conn, al)

    def _alert_parts(self, conn: Connection, al: ServiceAlert) -> None:
        """An alert's active periods and informed entities, replaced whole."""
        p, e = schema.rt_alert_periods, schema.rt_alert_entities
        for table in (p, e):
            conn.execute(table.delete().where(table.c.source == self.source, table.c.alert_id == al.alert_id))
        common = {"source": self.source, "alert_id": al.alert_id}
        if al.periods:
            conn.execute(
                p.insert(),
                [
                    {**common, "n": n, "start_ms": start, "end_ms": end}
                    for n, (start, end) in enumerate(al.periods)
                ],
            )
        conn.execute(
            e.insert(),
            [
                {
                    **common,
                    "n": n,
                    "agency_id": ie.agency_id,
                    "route_id": ie.route_id,
                    "route_type": ie.route_type,
                    "direction_id": ie.direction_id,
                    "trip_id": ie.trip_id,
                    "stop_id": ie.stop_id,
                }
                for n, ie in enumerate(al.informed)
            ],
        )

    def _refusals(self, conn: Connection, kept: Kept) -> None:
        conn.execute(
            schema.rt_rejects.insert(),
            [
                {
                    "source": self.source,
                    "at_ms": kept.now_ms,
                    "reason": r.reason,
                    "field": r.field[:200],
                    "value": short_repr(r.value),
                    "message": r.message[:1000],
                    "entity_id": r.entity_id[:255] or None,
                    "url": kept.url,
                    "body_sha256": kept.state.body_sha256 or "",
                }
                for r in kept.refusals
            ],
        )

    # -- the outbox ----------------------------------------------------------------------------

    def pending(self, limit: int = 100) -> list[Outgoing]:
        o = schema.rt_outbox
        q = sa.select(o).where(o.c.source == self.source).order_by(o.c.seq).limit(limit)
        with self.engine.connect() as conn:
            return [Outgoing(r.seq, r.kind, bytes(r.readings), r.n_readings) for r in conn.execute(q)]

    def sent(self, seqs: Sequence[int]) -> None:
        o = schema.rt_outbox
        with self.engine.begin() as conn:
            conn.execute(o.delete().where(o.c.source == self.source, o.c.seq.in_(list(seqs))))

    def queued(self) -> tuple[int, int]:
        """(batches, readings) waiting in the outbox."""
        o = schema.rt_outbox
        q = sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(o.c.n_readings), 0)).where(
            o.c.source == self.source
        )
        with self.engine.connect() as conn:
            batches, readings = conn.execute(q).one()
        return int(batches), int(readings)

    # -- reading back (tests, CLI, API) ----------------------------------------------------------

    def alerts(self, *, active_only: bool = True) -> list[dict[str, Any]]:
        a, p, e = schema.rt_alerts, schema.rt_alert_periods, schema.rt_alert_entities
        q = sa.select(a).where(a.c.source == self.source).order_by(a.c.alert_id)
        if active_only:
            q = q.where(a.c.ended_ms.is_(None))
        with self.engine.connect() as conn:
            out = []
            for row in conn.execute(q):
                key = (p.c.source == self.source, p.c.alert_id == row.alert_id)
                periods = [
                    (r.start_ms, r.end_ms) for r in conn.execute(sa.select(p).where(*key).order_by(p.c.n))
                ]
                ekey = (e.c.source == self.source, e.c.alert_id == row.alert_id)
                informed = [
                    {
                        k: v
                        for k, v in r._mapping.items()
                        if k not in ("source", "alert_id", "n") and v is not None
                    }
                    for r in conn.execute(sa.select(e).where(*ekey).order_by(e.c.n))
                ]
                out.append({**row._asdict(), "periods": periods, "informed": informed})
        return out

    def refusals(self) -> list[dict[str, Any]]:
        r = schema.rt_rejects
        with self.engine.connect() as conn:
            return [
                dict(row._mapping)
                for row in conn.execute(sa.select(r).where(r.c.source == self.source).order_by(r.c.id))
            ]
