"""Fixtures for the HTTP ways in (push API, NGSI-LD notifications): the real API on a real port,
writing to this test's own InfluxDB database, organisations with their tokens."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from cloud.api import create_app
from cloud.api.server import ThreadedApiServer
from cloud.api.ways_in import token_org, ways_in
from cloud.influx.client import InfluxClient
from cloud.ingest.direct import DirectIngest
from cloud.ingest.ledger import BatchLedger
from cloud.ingest.policy import TimeLimits
from cloud.ingest.push import PushOptions
from cloud.worksites.geo import PRATO_AREA
from cloud.worksites.models import Organisation, Role
from cloud.worksites.store import WorksiteStore

from .ways import UTILITY, WaysIn

MAX_BODY_BYTES = 2 * 1024 * 1024
# The installation records give these sensors to these organisations (cloud.ingest.direct).
OWNERS = {"p-mercatale": "comune-prato", "v-bus-101": "autolinee-toscane"}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[WorksiteStore]:
    s = WorksiteStore.open(f"sqlite:///{tmp_path / 'api.db'}", area=PRATO_AREA)
    for org, role in (
        ("comune-prato", Role.MUNICIPALITY),
        (UTILITY, Role.UTILITY),
        ("firenze", Role.UTILITY),
    ):
        s.add_organisation(Organisation(id=org, name=org.title(), role=role))
    yield s
    s.close()


def _direct(influx: InfluxClient, retry_for_s: float = 10.0) -> DirectIngest:
    limits = TimeLimits(max_future=timedelta(seconds=300), max_age=timedelta(days=30))
    client = InfluxClient(influx.url, influx.database)
    return DirectIngest(
        client, limits, max_bytes=MAX_BODY_BYTES, owners=OWNERS, instance="http-test", retry_for_s=retry_for_s
    )


def serve(
    store: WorksiteStore, influx: InfluxClient, options: PushOptions | None = None, retry_for_s: float = 10.0
) -> Iterator[WaysIn]:
    direct = _direct(influx, retry_for_s)
    ledger = BatchLedger(store.engine)
    opts = options or PushOptions(MAX_BODY_BYTES)
    app = create_app(store, ways_in=ways_in(direct, store, ledger, opts))
    tokens = {org.id: store.issue_token(org.id) for org in store.organisations()}
    with ThreadedApiServer(app) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        yield WaysIn(server.url, client, tokens, influx, direct)
    direct.influx.close()


@pytest.fixture
def ways(store: WorksiteStore, influx_db: InfluxClient) -> Iterator[WaysIn]:
    """The API with the push API and the notification receiver, on this test's database."""
    yield from serve(store, influx_db)


@pytest.fixture
def authenticate(store: WorksiteStore) -> object:
    return token_org(store)
