"""The organisation registry in the relational store (SQLite or PostgreSQL): organisations, the
areas each belongs to, and their API tokens. The one registry behind `cloud.core.orgs.OrgDirectory`.

The tables keep the names the worksite registry gave them when it held organisations
(`ws_organisations`, `ws_api_tokens`), so databases created before keep their data; the
worksite registry's tables reference them (`metadata` is shared for that).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from cloud.core.errors import NotFoundError
from cloud.core.orgs import Caller, Organisation, Role
from cloud.io.db import Migration, UTCDateTime, make_engine, migrate

COMPONENT = "orgs"
metadata = sa.MetaData()

organisations = sa.Table(
    "ws_organisations",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("role", sa.String(20), nullable=False),
)

api_tokens = sa.Table(
    "ws_api_tokens",
    metadata,
    # SHA-256 of a 256-bit random token: a slow password hash adds nothing against guessing
    # at that entropy, and a fast one keeps every request cheap.
    sa.Column("token_sha256", sa.String(64), primary_key=True),
    sa.Column("org_id", sa.String(64), sa.ForeignKey("ws_organisations.id"), nullable=False),
    sa.Column("label", sa.String(200), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)


organisation_areas = sa.Table(
    "ws_organisation_areas",
    metadata,
    sa.Column("org_id", sa.String(64), sa.ForeignKey("ws_organisations.id"), primary_key=True),
    sa.Column("area_id", sa.String(64), primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),  # 0: the home area
)


def _create_v1(conn: Connection) -> None:
    # checkfirst: a database the worksite registry created already has both tables.
    metadata.create_all(conn, tables=[organisations, api_tokens], checkfirst=True)


def _create_v2(conn: Connection) -> None:
    # Existing organisations get no row: bound to no area, as before areas existed.
    metadata.create_all(conn, tables=[organisation_areas])


MIGRATIONS = (
    Migration(1, "organisations, API tokens", _create_v1),
    Migration(2, "the areas each organisation belongs to", _create_v2),
)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class OrgStore:
    """Organisations and tokens. Thread-safe: each call takes its own connection."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str) -> OrgStore:
        store = cls(make_engine(url))
        store.migrate()
        return store

    def migrate(self) -> list[int]:
        return migrate(self.engine, COMPONENT, MIGRATIONS)

    def close(self) -> None:
        self.engine.dispose()

    def add(self, org: Organisation) -> bool:
        """Register `org`, or rename it / change its role and areas; True when it is new."""
        with self.engine.begin() as conn:
            exists = conn.execute(sa.select(organisations.c.id).where(organisations.c.id == org.id)).first()
            if exists:
                conn.execute(
                    organisations.update()
                    .where(organisations.c.id == org.id)
                    .values(name=org.name, role=org.role.value)
                )
            else:
                conn.execute(organisations.insert().values(id=org.id, name=org.name, role=org.role.value))
            conn.execute(organisation_areas.delete().where(organisation_areas.c.org_id == org.id))
            if org.areas:
                conn.execute(
                    organisation_areas.insert(),
                    [{"org_id": org.id, "area_id": a, "position": i} for i, a in enumerate(org.areas)],
                )
            return not exists

    def _areas(self, conn: Connection) -> dict[str, tuple[str, ...]]:
        rows = conn.execute(
            sa.select(organisation_areas).order_by(organisation_areas.c.org_id, organisation_areas.c.position)
        )
        out: dict[str, tuple[str, ...]] = {}
        for r in rows:
            out[r.org_id] = (*out.get(r.org_id, ()), r.area_id)
        return out

    def organisations(self) -> list[Organisation]:
        with self.engine.connect() as conn:
            rows = list(conn.execute(sa.select(organisations).order_by(organisations.c.id)))
            areas = self._areas(conn)
        return [
            Organisation(id=r.id, name=r.name, role=Role(r.role), areas=areas.get(r.id, ())) for r in rows
        ]

    def organisation(self, org_id: str) -> Organisation:
        with self.engine.connect() as conn:
            r = conn.execute(sa.select(organisations).where(organisations.c.id == org_id)).first()
            areas = tuple(
                a
                for (a,) in conn.execute(
                    sa.select(organisation_areas.c.area_id)
                    .where(organisation_areas.c.org_id == org_id)
                    .order_by(organisation_areas.c.position)
                )
            )
        if r is None:
            raise NotFoundError("organisation", org_id)
        return Organisation(id=r.id, name=r.name, role=Role(r.role), areas=areas)

    def in_areas(self, area_ids: Sequence[str]) -> list[str]:
        """The organisations whose home area is one of `area_ids` (a rules shard's share)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(organisation_areas.c.org_id)
                .where(organisation_areas.c.position == 0, organisation_areas.c.area_id.in_(list(area_ids)))
                .order_by(organisation_areas.c.org_id)
            )
            return [r.org_id for r in rows]

    def issue_token(self, org_id: str, label: str = "api") -> str:
        """A new random token for `org_id`; only its hash is stored, so show it once."""
        self.organisation(org_id)
        token = "srt_" + secrets.token_urlsafe(32)
        with self.engine.begin() as conn:
            conn.execute(
                api_tokens.insert().values(
                    token_sha256=hash_token(token), org_id=org_id, label=label, created_at=datetime.now(UTC)
                )
            )
        return token

    def caller_for_token(self, token: str) -> Caller | None:
        with self.engine.connect() as conn:
            r = conn.execute(
                sa.select(organisations.c.id, organisations.c.role)
                .join(api_tokens, api_tokens.c.org_id == organisations.c.id)
                .where(api_tokens.c.token_sha256 == hash_token(token))
            ).first()
        return None if r is None else Caller(r.id, Role(r.role))
