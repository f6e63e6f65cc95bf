"""Batches already stored, by the sender's batch id: a redelivered batch is answered, not stored again.

A client that loses the answer to a push (timeout, dropped connection) sends the same batch
again with the same batch id (`Idempotency-Key`, draft-ietf-httpapi-idempotency-key-header);
a context broker resends a notification with the same id. The push API (`cloud.ingest.push`)
and the NGSI-LD receiver (`cloud.exchange.receiver`) share this ledger. InfluxDB alone would
collapse the readings (same series and timestamp), but the dead letters and the counters would
double; so the ledger keeps, per (organisation, batch id), a digest of the body and the
refusals, recorded only once the batch is stored, and the same answer is given again. The
same id with another body is the sender's mistake (the draft's 422).

Rows are kept `keep_days` (a sender retries within minutes, not weeks) and pruned on the way.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from cloud.core.intake import Refusal
from cloud.io.db import Migration, make_engine, migrate

COMPONENT = "push"
_STRIPES = 64

metadata = sa.MetaData()
batches = sa.Table(
    "push_batches",
    metadata,
    sa.Column("org", sa.String(64), primary_key=True),
    sa.Column("batch_id", sa.String(200), primary_key=True),
    sa.Column("body_sha256", sa.String(64), nullable=False),
    sa.Column("received_at", sa.String(40), nullable=False, index=True),  # ISO 8601 UTC
    sa.Column("readings", sa.Integer, nullable=False),
    sa.Column("refusals", sa.Text, nullable=False),  # JSON: the refused readings only
)

MIGRATIONS: Sequence[Migration] = (
    Migration(1, "push batch ledger", lambda conn: metadata.create_all(conn, tables=[batches])),
)


def digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


@dataclass(frozen=True, slots=True)
class Recorded:
    body_sha256: str
    received_at: datetime
    readings: int
    refusals: list[Refusal]


def _refusals_json(refusals: Sequence[Refusal]) -> str:
    return orjson.dumps(
        [[r.index, r.sensor, r.field, r.reason, r.message, r.value] for r in refusals]
    ).decode()


def _refusals(text: str) -> list[Refusal]:
    rows: list[list[Any]] = orjson.loads(text)
    return [Refusal(*row) for row in rows]


class BatchLedger:
    """Thread-safe; `lock(org, batch_id)` serialises the handling of one batch id in this process."""

    def __init__(self, engine: Engine, *, keep_days: float = 7.0) -> None:
        self.engine = engine
        self.keep = timedelta(days=keep_days)
        self._stripes = [threading.Lock() for _ in range(_STRIPES)]
        self._last_prune = datetime.min.replace(tzinfo=UTC)
        migrate(engine, COMPONENT, MIGRATIONS)

    @classmethod
    def open(cls, url: str, *, keep_days: float = 7.0) -> BatchLedger:
        return cls(make_engine(url), keep_days=keep_days)

    @contextmanager
    def lock(self, org: str, batch_id: str) -> Iterator[None]:
        # A stripe, not a lock per id: bounded memory whatever the number of ids.
        stripe = self._stripes[int(digest(f"{org}\n{batch_id}".encode())[:8], 16) % _STRIPES]
        with stripe:
            yield

    def get(self, org: str, batch_id: str) -> Recorded | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(batches).where(batches.c.org == org, batches.c.batch_id == batch_id)
            ).first()
        if row is None:
            return None
        return Recorded(
            body_sha256=row.body_sha256,
            received_at=datetime.fromisoformat(row.received_at),
            readings=row.readings,
            refusals=_refusals(row.refusals),
        )

    def record(
        self, org: str, batch_id: str, body_sha256: str, readings: int, refusals: Sequence[Refusal]
    ) -> None:
        now = datetime.now(UTC)
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    batches.insert().values(
                        org=org,
                        batch_id=batch_id,
                        body_sha256=body_sha256,
                        received_at=now.isoformat(timespec="microseconds"),
                        readings=readings,
                        refusals=_refusals_json(refusals),
                    )
                )
        except IntegrityError:
            pass  # another API process stored the same batch first: its record stands
        if now - self._last_prune > timedelta(hours=1):
            self._last_prune = now
            self.prune(now - self.keep)

    def prune(self, before: datetime) -> int:
        with self.engine.begin() as conn:
            cutoff = before.astimezone(UTC).isoformat(timespec="microseconds")
            result = conn.execute(batches.delete().where(batches.c.received_at < cutoff))
        return int(result.rowcount or 0)

    def close(self) -> None:
        self.engine.dispose()


__all__ = ["BatchLedger", "Recorded", "digest"]
