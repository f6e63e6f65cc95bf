"""Fixtures for the HTTP ways in (push API, NGSI-LD notifications): THE API app on a real port,
writing to this test's own InfluxDB database, organisations with their tokens, installation
records that give a few sensors to other organisations."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from cloud.apps.api import ApiOptions, WaysIn, create_app
from cloud.core.admission import Admission, TimeLimits
from cloud.core.directory import GatewayEntry, SensorDirectory, SensorEntry
from cloud.core.geo import ServiceAreas
from cloud.core.orgs import Organisation, Role
from cloud.dev.apiserver import ThreadedApiServer
from cloud.ingest.direct import DirectIngest
from cloud.ingest.push import PushOptions
from cloud.io.influx.client import InfluxClient
from cloud.io.ledger import BatchLedger
from cloud.worksites.store import WorksiteStore

from .ways import PARTNER, UTILITY, WaysInClient

MAX_BODY_BYTES = 2 * 1024 * 1024
LIMITS = TimeLimits(max_future=timedelta(seconds=300), max_age=timedelta(days=30))


def records() -> SensorDirectory:
    """The installation records give p-mercatale to the municipality and v-bus-101 to the bus
    company; the utility and the partner may feed their fleets (`fleet` pseudo-gateway)."""
    entries = [
        ("comune-prato", "gw-mercatale", "p-mercatale", "sim_parking"),
        ("autolinee-toscane", "gw-fleet-at", "v-bus-101", "sim_fleet"),
    ]
    return SensorDirectory(
        [GatewayEntry(org, gw, "test", {s: SensorEntry(gw, s, driver)}) for org, gw, s, driver in entries],
        utilities=[UTILITY, PARTNER],
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[WorksiteStore]:
    s = WorksiteStore.open(f"sqlite:///{tmp_path / 'api.db'}", areas=ServiceAreas.load())
    for org, role in (("comune-prato", Role.MUNICIPALITY), (UTILITY, Role.UTILITY), (PARTNER, Role.UTILITY)):
        s.orgs.add(Organisation(id=org, name=org.title(), role=role))
    yield s
    s.close()


def _direct(influx: InfluxClient, retry_for_s: float = 10.0) -> DirectIngest:
    admission = Admission(LIMITS, max_payload_bytes=MAX_BODY_BYTES, directory=records())
    client = InfluxClient(influx.url, influx.database)
    return DirectIngest(client, admission, instance="http-test", retry_for_s=retry_for_s)


def serve(
    store: WorksiteStore, influx: InfluxClient, options: PushOptions | None = None, retry_for_s: float = 10.0
) -> Iterator[WaysInClient]:
    direct = _direct(influx, retry_for_s)
    ways_in = WaysIn.over(direct, BatchLedger(store.engine), options or PushOptions(MAX_BODY_BYTES))
    app = create_app(store, ApiOptions(max_body_bytes=MAX_BODY_BYTES), ways_in=ways_in)
    tokens = {org.id: store.orgs.issue_token(org.id) for org in store.orgs.organisations()}
    with ThreadedApiServer(app) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        yield WaysInClient(server.url, client, tokens, influx, direct)
    direct.influx.close()


@pytest.fixture
def ways(store: WorksiteStore, influx_db: InfluxClient) -> Iterator[WaysInClient]:
    """The API with the push API and the notification receiver, on this test's database."""
    yield from serve(store, influx_db)
