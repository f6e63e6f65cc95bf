"""Fixtures for the worksite registry: a throwaway PostgreSQL cluster, a store on each backend.

`store` is parametrized over SQLite and PostgreSQL, so every test that uses it runs on both.
The cluster is the Debian `postgresql` binaries (cloud/dev/postgres.py); missing, it fails
with "run `make setup`".
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from cloud.apps.api import create_app
from cloud.core.geo import ServiceAreas
from cloud.core.orgs import Organisation, Role
from cloud.dev.apiserver import ThreadedApiServer
from cloud.dev.postgres import PostgresCluster
from cloud.worksites.store import WorksiteStore

from .registry import GAS, MUNICIPALITY, WATER, Api


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


@dataclass
class Backend:
    url: str
    store: WorksiteStore
    server: ThreadedApiServer


def _empty_tables(store: WorksiteStore) -> None:
    with store.engine.begin() as conn:
        for table in (
            "ws_history",
            "ws_worksites",
            "ws_api_tokens",
            "ws_organisation_areas",
            "ws_organisations",
        ):
            conn.execute(sa.text(f"DELETE FROM {table}"))


@pytest.fixture(scope="session")
def _backends() -> Iterator[dict[str, Backend]]:
    """One store and one API server per backend for the session; tests empty the tables."""
    cache: dict[str, Backend] = {}
    yield cache
    for backend in cache.values():
        backend.server.stop()
        backend.store.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, _backends: dict[str, Backend]) -> Backend:
    kind: str = request.param
    if kind not in _backends:
        if kind == "sqlite":
            folder = request.getfixturevalue("tmp_path_factory").mktemp("worksites")
            url = f"sqlite:///{folder / 'worksites.db'}"
        else:
            url = request.getfixturevalue("postgres").create_database("worksites_test")
        store = WorksiteStore.open(url, areas=ServiceAreas.load())
        _backends[kind] = Backend(url, store, ThreadedApiServer(create_app(store)).start())
    found = _backends[kind]
    _empty_tables(found.store)
    return found


@pytest.fixture
def store_url(backend: Backend) -> str:
    return backend.url


@pytest.fixture
def store(backend: Backend) -> WorksiteStore:
    s = backend.store
    s.orgs.add(Organisation(id=MUNICIPALITY, name="Comune di Prato", role=Role.MUNICIPALITY))
    s.orgs.add(Organisation(id=WATER, name="Publiacqua", role=Role.UTILITY))
    s.orgs.add(Organisation(id=GAS, name="Toscana Energia", role=Role.UTILITY))
    return s


@pytest.fixture
def api(store: WorksiteStore, backend: Backend) -> Iterator[Api]:
    tokens = {org: store.orgs.issue_token(org) for org in (MUNICIPALITY, WATER, GAS)}
    with httpx.Client(base_url=backend.server.url, timeout=60) as client:
        yield Api(client, tokens, store)
