"""SQL engines for SQLite (embedded default) and PostgreSQL (production), and ordered migrations.

The same SQLAlchemy Core code runs on both. A component (`worksites`, later `rules`, ...) keeps
its own numbered migrations; `migrate()` applies the missing ones in one transaction each and
records them in `sitroom_migrations`, so starting a newer version on an older database upgrades
it and starting it twice changes nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from cloud.io.private import private_file

MIGRATIONS_TABLE = "sitroom_migrations"

_metadata = sa.MetaData()
migrations_table = sa.Table(
    MIGRATIONS_TABLE,
    _metadata,
    sa.Column("component", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("applied_at", sa.String(40), nullable=False),
)


class DatabaseURLError(ValueError):
    def __init__(self, url: str) -> None:
        self.url = url
        super().__init__(
            f"database URL {url!r} is neither sqlite:///PATH nor postgresql://user@host/db "
            "(postgresql+psycopg:// is implied)"
        )


def normalise_url(url: str) -> str:
    """`postgresql://` and `postgres://` mean psycopg 3; SQLite URLs pass unchanged."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    if url.startswith(("sqlite://", "postgresql+psycopg://")):
        return url
    raise DatabaseURLError(url)


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the API read while a CLI import writes; foreign keys are off by default in SQLite.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for `url`. A SQLite file is created 0600 in a folder created 0700 before SQLite
    opens it (its -wal and -shm files take the database's mode): the registry holds token hashes,
    the console password hashes."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else ""
        if path and path != ":memory:":
            db = Path(path)
            private_file(db)
            for companion in (db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
                if companion.exists():
                    private_file(companion)
        engine = sa.create_engine(url, connect_args={"check_same_thread": False})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return sa.create_engine(url, pool_pre_ping=True)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    apply: Callable[[Connection], None]


def applied_versions(engine: Engine, component: str) -> list[int]:
    with engine.begin() as conn:
        _metadata.create_all(conn, tables=[migrations_table])
        rows = conn.execute(
            sa.select(migrations_table.c.version).where(migrations_table.c.component == component)
        )
        return sorted(int(r[0]) for r in rows)


def migration_lock(database: Path) -> Path:
    """The file beside an SQLite database that its migrators take turns on; it outlives them
    (removing a lock file others may hold is a race), so whoever deletes the database deletes it."""
    return database.with_name(database.name + ".lock")


@contextlib.contextmanager
def _one_migrator_at_a_time(engine: Engine) -> Iterator[None]:
    """Processes opening one SQLite file together (the demo's API and console, a CLI beside the
    API) migrate it in turn: pysqlite runs DDL outside any transaction, so two check-then-create
    passes race ("table ... already exists"). PostgreSQL's DDL is transactional."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        yield
        return
    lock_path = private_file(migration_lock(Path(database)))
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def migrate(engine: Engine, component: str, migrations: Sequence[Migration]) -> list[int]:
    """Apply `component`'s migrations that are not yet recorded; return the versions applied."""
    versions = [m.version for m in migrations]
    if versions != sorted(set(versions)):
        raise ValueError(f"{component}: migration versions must be unique and ascending: {versions}")
    with _one_migrator_at_a_time(engine):
        return _migrate(engine, component, migrations)


def _migrate(engine: Engine, component: str, migrations: Sequence[Migration]) -> list[int]:
    done = set(applied_versions(engine, component))
    newly: list[int] = []
    for migration in migrations:
        if migration.version in done:
            continue
        with engine.begin() as conn:
            migration.apply(conn)
            conn.execute(
                migrations_table.insert().values(
                    component=component,
                    version=migration.version,
                    name=migration.name,
                    applied_at=datetime.now(UTC).isoformat(),
                )
            )
        newly.append(migration.version)
    return newly


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Aware UTC in and out; SQLite keeps naive UTC text, PostgreSQL `timestamptz`."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime refused: {value!r}")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
