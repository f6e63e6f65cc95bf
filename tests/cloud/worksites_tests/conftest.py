"""Fixtures for the worksite registry: a throwaway PostgreSQL cluster, a store on each backend.

`store` is parametrized over SQLite and PostgreSQL, so every test that uses it runs on both.
The cluster is the Debian `postgresql` binaries (cloud/db_devserver.py); missing, it fails
with "run `make setup`".
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from cloud.api import create_app
from cloud.api.server import ThreadedApiServer
from cloud.db import make_engine
from cloud.db_devserver import PostgresCluster
from cloud.worksites.geo import PRATO_AREA
from cloud.worksites.models import Organisation, Role
from cloud.worksites.store import WorksiteStore

MUNICIPALITY = "comune-prato"
WATER = "publiacqua"
GAS = "toscana-energia"

# Via Pistoiese, west of the centre, (lon, lat): a real street, ~450 m.
PISTOIESE = {
    "type": "LineString",
    "coordinates": [[11.0795, 43.8854], [11.0820, 43.8851], [11.0848, 43.8847]],
}


def payload(**override: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "title": "Rifacimento condotta idrica",
        "street": "Via Pistoiese",
        "work_type": "water",
        "geometry": PISTOIESE,
        "planned_start": "2026-12-01T07:00:00Z",
        "planned_end": "2026-12-20T17:00:00Z",
    }
    base.update(override)
    return base


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    # Not under pytest's tmp_path: as root the server runs as `postgres`, which cannot enter
    # pytest's 0700 root-owned base folder.
    cluster = PostgresCluster(Path(tempfile.mkdtemp(prefix="sitroom-pg-")))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture(scope="session")
def postgres_url(postgres: PostgresCluster) -> str:
    """One database for the session; each test starts from empty tables (TRUNCATE is quick)."""
    return postgres.create_database("worksites_test")


def _empty_tables(url: str) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            if sa.inspect(conn).has_table("ws_worksites"):
                conn.execute(
                    sa.text("TRUNCATE ws_history, ws_worksites, ws_api_tokens, ws_organisations CASCADE")
                )
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'worksites.db'}"
    url: str = request.getfixturevalue("postgres_url")
    _empty_tables(url)
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[WorksiteStore]:
    s = WorksiteStore.open(store_url, area=PRATO_AREA)
    s.add_organisation(Organisation(id=MUNICIPALITY, name="Comune di Prato", role=Role.MUNICIPALITY))
    s.add_organisation(Organisation(id=WATER, name="Publiacqua", role=Role.UTILITY))
    s.add_organisation(Organisation(id=GAS, name="Toscana Energia", role=Role.UTILITY))
    try:
        yield s
    finally:
        s.close()


@dataclass
class Api:
    client: httpx.Client
    tokens: dict[str, str]
    store: WorksiteStore

    def as_(self, org: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[org]}"}

    def create(self, org: str, **override: Any) -> dict[str, Any]:
        response = self.client.post("/worksites", json=payload(**override), headers=self.as_(org))
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
def api(store: WorksiteStore) -> Iterator[Api]:
    tokens = {org: store.issue_token(org) for org in (MUNICIPALITY, WATER, GAS)}
    with (
        ThreadedApiServer(create_app(store)) as server,
        httpx.Client(base_url=server.url, timeout=60) as client,
    ):
        yield Api(client, tokens, store)
