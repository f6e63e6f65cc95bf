"""SQLite stores that a crash may have left unopenable: check them, save what can be read.

SQLite in WAL mode survives a killed writer: the next opener replays the `-wal`. What it does
not survive is what people and scripts do around a crash: a database deleted or replaced while
its `-wal` and `-shm` stay behind (the next database then meets another one's log), a file
truncated by a full disk or an interrupted copy, a process of the old run still holding the
`-shm` (issue 20: `disk I/O error`). `rescue` finds these before a service opens the store:

- a `-wal`/`-shm`/`-journal` without its database is moved aside;
- a database that cannot be opened, or fails `PRAGMA quick_check`, is rebuilt table by table
  from the rows that can still be read (a truncated file is read as far as it goes), and only
  kept if its own store opens it (`opens`); the damaged files are moved aside either way.

Every outcome is one line for the user; nothing here raises for a damaged file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cloud.io.db import migration_lock

SIDE_FILES = ("-wal", "-shm", "-journal")


@dataclass(frozen=True, slots=True)
class Rescue:
    """What `rescue` did with one store; `line` says it to the user."""

    path: Path
    problem: str  # why it could not be used as it was
    rows_recovered: int
    moved_to: Path

    @property
    def line(self) -> str:
        what = (
            f"{self.rows_recovered} rows recovered into a new {self.path.name}"
            if self.rows_recovered
            else f"nothing recoverable, {self.path.name} starts empty"
        )
        moved = f"damaged files moved to {self.moved_to}"
        return f"{self.path} could not be opened ({self.problem}): {what}, {moved}"


def side_files(db: Path) -> list[Path]:
    found = [db.with_name(db.name + suffix) for suffix in SIDE_FILES]
    return [p for p in found if p.exists()]


def problem_with(db: Path) -> str | None:
    """Why `db` cannot be used as it is, or None when it opens and passes `quick_check`."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=rw", uri=True, timeout=5)) as conn:
            rows = conn.execute("PRAGMA quick_check").fetchall()
    except sqlite3.Error as exc:
        return str(exc)
    found = [str(r[0]) for r in rows]
    return None if found == ["ok"] else "; ".join(found[:2])


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _padded_copy(src: Path, dst: Path) -> None:
    """Copy `src` to `dst`, zero-filled up to the size its header declares: SQLite refuses a
    file shorter than that whole (`database disk image is malformed`), while the pages that
    survived a truncation, the schema on page 1 among them, are still readable."""
    shutil.copyfile(src, dst)
    header = dst.read_bytes()[:100]
    if len(header) < 100 or not header.startswith(b"SQLite format 3\0"):
        return
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size  # the file format's encoding of 64 KiB
    declared = page_size * int.from_bytes(header[28:32], "big")
    if declared > dst.stat().st_size:
        os.truncate(dst, declared)


def salvage(src: Path, dst: Path) -> int:
    """Copy every row of `src` that can still be read into a new database `dst`, with the same
    schema; how many rows. A table that breaks midway keeps the rows read before the break."""
    work = dst.with_name(dst.name + ".source")
    try:
        _padded_copy(src, work)
        with (
            contextlib.closing(sqlite3.connect(f"file:{work}?mode=ro", uri=True, timeout=5)) as s,
            contextlib.closing(sqlite3.connect(dst)) as d,
        ):
            return _copy_rows(s, d)
    finally:
        for path in [work, *side_files(work)]:
            path.unlink(missing_ok=True)


def _copy_rows(s: sqlite3.Connection, d: sqlite3.Connection) -> int:
    try:
        schema = s.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%'"
        ).fetchall()
    except sqlite3.Error:
        return 0
    copied = 0
    for kind, name, sql in schema:
        if kind != "table":
            continue
        d.execute(sql)
        try:
            # Table names come from the damaged file's own schema, quoted.
            for row in s.execute(f"SELECT * FROM {_quoted(name)}"):  # noqa: S608
                marks = ",".join("?" * len(row))
                d.execute(f"INSERT INTO {_quoted(name)} VALUES ({marks})", row)  # noqa: S608
                copied += 1
        except sqlite3.Error:
            continue
    for kind, _name, sql in schema:
        if kind in ("index", "trigger", "view"):
            with contextlib.suppress(sqlite3.Error):
                d.execute(sql)
    d.commit()
    return copied


def rescue(db: Path, aside: Path, opens: Callable[[Path], None]) -> Rescue | None:
    """Make `db` openable: None when it already was (or does not exist); else what was done.

    `opens(path)` opens a database with its own store (schema, migrations) and raises if that
    fails: a rebuilt database is kept only when it passes."""
    if not db.exists():
        strays = side_files(db)
        if not strays:
            return None
        _move(strays, aside)
        return Rescue(db, f"{', '.join(p.name for p in strays)} left without their database", 0, aside)
    problem = problem_with(db)
    if problem is None:
        return None
    rebuilt = db.with_name(db.name + ".rescued")
    rebuilt.unlink(missing_ok=True)
    rows = 0
    try:
        rows = salvage(db, rebuilt)
        opens(rebuilt)
        # Whatever the store wrote is checkpointed into the file itself before it moves.
        with contextlib.closing(sqlite3.connect(rebuilt)) as conn:
            conn.execute("PRAGMA journal_mode=DELETE")
    except Exception:  # noqa: BLE001 (whatever the rebuilt copy fails with, it is not kept)
        rows = 0
    _move([db, *side_files(db)], aside)
    if rows:
        rebuilt.replace(db)
    for p in [rebuilt, migration_lock(rebuilt), *side_files(rebuilt)]:
        p.unlink(missing_ok=True)
    return Rescue(db, problem, rows, aside)


def _move(paths: list[Path], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for p in paths:
        p.replace(folder / p.name)
