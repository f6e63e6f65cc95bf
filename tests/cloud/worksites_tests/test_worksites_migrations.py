"""Schema migrations: applied once, recorded, and the same on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cloud.io.db import Migration, applied_versions, make_engine, migrate
from cloud.worksites.store import COMPONENT, MIGRATIONS


def test_migrations_apply_once_and_are_recorded_per_component(store_url: str) -> None:
    engine = make_engine(store_url)
    try:
        migrate(engine, COMPONENT, MIGRATIONS)  # the store fixture's database may be migrated already
        assert applied_versions(engine, COMPONENT) == [m.version for m in MIGRATIONS]
        assert migrate(engine, COMPONENT, MIGRATIONS) == []

        def add_column(conn: Connection) -> None:
            conn.execute(sa.text("CREATE TABLE mig_probe (id INTEGER PRIMARY KEY)"))

        def add_more(conn: Connection) -> None:
            conn.execute(sa.text("ALTER TABLE mig_probe ADD COLUMN note VARCHAR(20)"))

        probe = [Migration(1, "probe table", add_column), Migration(2, "probe note", add_more)]
        try:
            assert migrate(engine, "probe", probe[:1]) == [1]
            assert migrate(engine, "probe", probe) == [2]
            assert migrate(engine, "probe", probe) == []
            assert applied_versions(engine, "probe") == [1, 2]
            assert "note" in {c["name"] for c in sa.inspect(engine).get_columns("mig_probe")}
        finally:
            with engine.begin() as conn:
                conn.execute(sa.text("DROP TABLE IF EXISTS mig_probe"))
                conn.execute(sa.text("DELETE FROM sitroom_migrations WHERE component = 'probe'"))
    finally:
        engine.dispose()


def test_a_failing_migration_leaves_no_trace(store_url: str) -> None:
    engine = make_engine(store_url)

    def broken(conn: Connection) -> None:
        conn.execute(sa.text("CREATE TABLE mig_broken (id INTEGER)"))
        conn.execute(sa.text("SELECT * FROM no_such_table"))

    try:
        with contextlib.suppress(sa.exc.DBAPIError):
            migrate(engine, "broken", [Migration(1, "broken", broken)])
        assert applied_versions(engine, "broken") == []
        assert not sa.inspect(engine).has_table("mig_broken") or engine.dialect.name == "sqlite"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE IF EXISTS mig_broken"))
        engine.dispose()
