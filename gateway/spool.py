"""The on-disk write-ahead spool: every reading is committed here before it is published.

One SQLite database per gateway, in WAL mode. Three tables:

- ``staged``: readings already read from a sensor but not yet sealed into a batch (one row per
  kind per tick, the readings' JSON joined by commas). A crash loses none of them.
- ``message``: sealed messages (data batches and health) in spool order (``id``). A row is
  written before its message is handed to MQTT and deleted only after the broker's PUBACK.
- ``meta``: the next batch ``seq`` (committed in the same transaction as the batch that used
  the previous one, so a seq is never handed out twice), cumulative drop counters, and the
  simulated clock position of the last committed reading.

Bounded: when the messages' bytes exceed ``max_bytes`` or the disk's free space falls below
``min_free_bytes``, the oldest message of the lowest priority present is dropped (and counted),
until back under the bound. ``Priority.HIGH`` (health) goes last of all, only when nothing else
is left to drop (docs/decisions/0002-gateway-store-and-forward.md).
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS message (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: the dispatch cursors rely on it
    topic TEXT NOT NULL,
    priority INTEGER NOT NULL,
    readings INTEGER NOT NULL,
    created_s REAL NOT NULL,
    sent_at_offset INTEGER NOT NULL,
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS message_by_priority ON message (priority, id);
CREATE TABLE IF NOT EXISTS staged (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: the dispatch cursors rely on it
    kind TEXT NOT NULL,
    readings INTEGER NOT NULL,
    created_s REAL NOT NULL,
    fragment BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_DROP_CHUNK = 64  # messages deleted per step when over the bound


class Priority(IntEnum):
    """Which messages the drop policy sacrifices first (lowest first, oldest first)."""

    LOW = 0
    NORMAL = 1
    HIGH = 2  # health: dropped only when nothing else is left


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A message to spool. `sent_at_offset` is where the 24-byte `sent_at` value sits in the
    payload (patched with the publish time on each send), or -1."""

    topic: str
    payload: bytes
    priority: Priority = Priority.NORMAL
    readings: int = 0
    sent_at_offset: int = -1


@dataclass(frozen=True, slots=True)
class Spooled:
    id: int
    topic: str
    payload: bytes
    readings: int
    sent_at_offset: int


@dataclass(frozen=True, slots=True)
class Staged:
    kind: str
    readings: int
    fragment: bytes
    created_s: float


class Spool:
    """A gateway's durable queue. Not thread-safe: one thread (the agent's loop) owns it."""

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int = 256 * 1_048_576,
        min_free_bytes: int = 64 * 1_048_576,
        is_power_safe: bool = True,
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.min_free_bytes = min_free_bytes
        path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we open and commit transactions ourselves (BEGIN IMMEDIATE).
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")  # only effective on a new file
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: each commit is fsynced, so a power cut loses nothing committed. NORMAL survives
        # any process crash (SIGKILL) but may roll back the last commits on a power cut.
        self._db.execute(f"PRAGMA synchronous={'FULL' if is_power_safe else 'NORMAL'}")
        self._db.executescript(_SCHEMA)
        row = self._db.execute(
            "SELECT count(*), coalesce(sum(length(payload)), 0), coalesce(sum(readings), 0) FROM message"
        ).fetchone()
        self.messages: int = int(row[0])
        self.message_bytes: int = int(row[1])
        self.message_readings: int = int(row[2])
        row = self._db.execute(
            "SELECT coalesce(sum(readings), 0), coalesce(sum(length(fragment)), 0) FROM staged"
        ).fetchone()
        self.staged_readings: int = int(row[0])
        self.staged_bytes: int = int(row[1])
        self.next_seq = int(self._meta("next_seq", "0"))
        self.dropped_readings = int(self._meta("dropped_readings", "0"))
        self.dropped_messages = int(self._meta("dropped_messages", "0"))
        self._free_checked_s = 0.0
        self._disk_free = shutil.disk_usage(path.parent).free

    # -- meta -------------------------------------------------------------------------------------
    def _meta(self, key: str, default: str) -> str:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else default

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else None

    def _set_meta(self, items: dict[str, str]) -> None:
        self._db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", items.items())

    def set_meta(self, items: dict[str, str]) -> None:
        with self._transaction():
            self._set_meta(items)

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    # -- writing ----------------------------------------------------------------------------------
    def stage(self, staged: Sequence[tuple[str, int, bytes]], meta: dict[str, str] | None = None) -> None:
        """Commit readings just read: (kind, count, comma-joined reading JSON) per kind."""
        now = time.time()
        with self._transaction():
            self._db.executemany(
                "INSERT INTO staged (kind, readings, created_s, fragment) VALUES (?, ?, ?, ?)",
                [(kind, n, now, frag) for kind, n, frag in staged],
            )
            if meta:
                self._set_meta(meta)
        self.staged_readings += sum(n for _, n, _ in staged)
        self.staged_bytes += sum(len(f) for _, _, f in staged)

    def staged(self) -> list[Staged]:
        """What was staged and not sealed (after a crash), in order."""
        return [
            Staged(kind, n, frag, created)
            for kind, n, frag, created in self._db.execute(
                "SELECT kind, readings, fragment, created_s FROM staged ORDER BY id"
            )
        ]

    def oldest_staged_s(self, kind: str) -> float | None:
        row = self._db.execute("SELECT min(created_s) FROM staged WHERE kind = ?", (kind,)).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def seal(self, kind: str, messages: Sequence[OutgoingMessage], next_seq: int) -> None:
        """Atomically replace every staged reading of `kind` by `messages`, and move the seq on."""
        with self._transaction():
            n, size = self._db.execute(
                "SELECT coalesce(sum(readings), 0), coalesce(sum(length(fragment)), 0) "
                "FROM staged WHERE kind = ?",
                (kind,),
            ).fetchone()
            self._db.execute("DELETE FROM staged WHERE kind = ?", (kind,))
            self._insert(messages)
            self._set_meta({"next_seq": str(next_seq)})
        self.next_seq = next_seq
        self.staged_readings -= n
        self.staged_bytes -= size
        self._count_inserted(messages)
        self._enforce_bound()

    def append(self, messages: Sequence[OutgoingMessage]) -> None:
        with self._transaction():
            self._insert(messages)
        self._count_inserted(messages)
        self._enforce_bound()

    def _insert(self, messages: Sequence[OutgoingMessage]) -> None:
        now = time.time()
        self._db.executemany(
            "INSERT INTO message (topic, priority, readings, created_s, sent_at_offset, payload) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(m.topic, int(m.priority), m.readings, now, m.sent_at_offset, m.payload) for m in messages],
        )

    def _count_inserted(self, messages: Sequence[OutgoingMessage]) -> None:
        self.messages += len(messages)
        self.message_bytes += sum(len(m.payload) for m in messages)
        self.message_readings += sum(m.readings for m in messages)

    def delete(self, ids: Iterable[int]) -> None:
        """Forget acknowledged messages (ids already gone, e.g. dropped meanwhile, are ignored)."""
        params = [(i,) for i in ids]
        if not params:
            return
        with self._transaction():
            gone = self._db.execute(
                f"SELECT count(*), coalesce(sum(length(payload)), 0), coalesce(sum(readings), 0) "  # noqa: S608
                f"FROM message WHERE id IN ({','.join('?' * len(params))})",
                [p[0] for p in params],
            ).fetchone()
            self._db.executemany("DELETE FROM message WHERE id = ?", params)
        self.messages -= gone[0]
        self.message_bytes -= gone[1]
        self.message_readings -= gone[2]
        if self.messages == 0 and self.staged_readings == 0:
            self._shrink()

    def _shrink(self) -> None:
        # An empty spool gives its pages back to the file system (a long outage can grow it to
        # the bound) and truncates the WAL.
        self._db.execute("PRAGMA incremental_vacuum")
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # -- the bound --------------------------------------------------------------------------------
    def disk_free_bytes(self) -> int:
        now = time.monotonic()
        if now - self._free_checked_s >= 1.0:
            self._disk_free = shutil.disk_usage(self.path.parent).free
            self._free_checked_s = now
        return self._disk_free

    def is_over_bound(self) -> bool:
        return (
            self.message_bytes + self.staged_bytes > self.max_bytes
            or self.disk_free_bytes() < self.min_free_bytes
        )

    def _enforce_bound(self) -> None:
        while self.messages and self.is_over_bound():
            rows = self._db.execute(
                "SELECT id, length(payload), readings FROM message "
                "WHERE priority = (SELECT min(priority) FROM message) ORDER BY id LIMIT ?",
                (_DROP_CHUNK,),
            ).fetchall()
            # Drop just enough of the chunk to get back under the size bound (all of it when
            # the disk is what is short).
            excess = self.message_bytes + self.staged_bytes - self.max_bytes
            victims = []
            for row in rows:
                victims.append(row)
                excess -= row[1]
                if excess <= 0 and self.disk_free_bytes() >= self.min_free_bytes:
                    break
            n_readings = sum(r[2] for r in victims)
            with self._transaction():
                self._db.executemany("DELETE FROM message WHERE id = ?", [(r[0],) for r in victims])
                self.dropped_readings += n_readings
                self.dropped_messages += len(victims)
                self._set_meta(
                    {
                        "dropped_readings": str(self.dropped_readings),
                        "dropped_messages": str(self.dropped_messages),
                    }
                )
            self.messages -= len(victims)
            self.message_bytes -= sum(r[1] for r in victims)
            self.message_readings -= n_readings
            self._free_checked_s = 0.0  # re-measure: deleting may have freed pages
            if self.disk_free_bytes() < self.min_free_bytes and excess <= 0:
                # Deleted rows free pages inside the file, not on the disk, until vacuumed.
                self._db.execute("PRAGMA incremental_vacuum")
                self._free_checked_s = 0.0

    # -- reading ----------------------------------------------------------------------------------
    def fetch(self, after_id: int, up_to_id: int | None, limit: int) -> list[Spooled]:
        """Messages with after_id < id <= up_to_id (no upper bound when None), oldest first."""
        if up_to_id is None:
            rows = self._db.execute(
                "SELECT id, topic, payload, readings, sent_at_offset FROM message "
                "WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit),
            )
        else:
            rows = self._db.execute(
                "SELECT id, topic, payload, readings, sent_at_offset FROM message "
                "WHERE id > ? AND id <= ? ORDER BY id LIMIT ?",
                (after_id, up_to_id, limit),
            )
        return [Spooled(i, t, bytes(p), n, off) for i, t, p, n, off in rows]

    def max_id(self) -> int:
        row = self._db.execute("SELECT coalesce(max(id), 0) FROM message").fetchone()
        return int(row[0])

    def oldest_created_s(self) -> float | None:
        row = self._db.execute(
            "SELECT min(m) FROM (SELECT min(created_s) AS m FROM message "
            "UNION ALL SELECT min(created_s) FROM staged)"
        ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def file_bytes(self) -> int:
        total = 0
        for suffix in ("", "-wal", "-shm"):
            p = Path(f"{self.path}{suffix}")
            if p.exists():
                total += p.stat().st_size
        return total

    def close(self) -> None:
        self._db.close()


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any error."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: object) -> None:
        self._db.execute("COMMIT" if et is None else "ROLLBACK")
