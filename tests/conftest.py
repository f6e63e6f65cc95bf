"""Fixtures: our own Mosquitto and InfluxDB (session-scoped), a fresh database per test.

The servers are the Debian binaries started by `cloud.dev.servers`, as `sitroom demo` does. A
missing binary fails with "run `make setup`"; nothing is skipped. A failing test gets the
servers' logs attached to its report.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from support_transit import bus_operator

from cloud.apps.api import WaysIn
from cloud.apps.demo import inject_bad_feed
from cloud.apps.demo_exchange import PARTNER, UTILITY
from cloud.core.admission import Admission
from cloud.core.geo import ServiceAreas
from cloud.core.settings import CloudSettings
from cloud.dev.demo_data import load_demo
from cloud.dev.partners import CarParkStates, van_positions
from cloud.dev.servers import Influxd, Mosquitto
from cloud.ingest.direct import DirectIngest
from cloud.io.influx.client import InfluxClient
from cloud.io.ledger import BatchLedger
from cloud.io.mqtt import BrokerConnection
from cloud.rules.store import AlertStore
from cloud.transit.intermodality import IntermodalSnapshots
from cloud.transit.lookup import StoreNetwork
from cloud.transit.store import TransitStore
from cloud.worksites.snapshot import WorksiteSnapshots
from cloud.worksites.store import WorksiteStore
from edge.contract import BrokerAddress, format_ts
from edge.simulators.clock import SimClock
from edge.simulators.transit import PRATO_OPERATOR, prato_feed_zip
from gateway.agent import Agent
from gateway.config import load

from support import (
    REPO,
    Hooks,
    Inbox,
    cloud_services,
    count_points,
    smtp_server,
    unique,
    wait_until,
    webhook_receiver,
)

_servers: list[Mosquitto | Influxd] = []


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    server = Mosquitto(tmp_path_factory.mktemp("mosquitto")).start()
    _servers.append(server)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influxd]:
    server = Influxd(tmp_path_factory.mktemp("influxd")).start()
    _servers.append(server)
    yield server
    server.stop()


@pytest.fixture
def restartable_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A broker of this test's own, which it may stop, kill and restart (same port, same data)."""
    server = Mosquitto(tmp_path / "broker").start()
    _servers.append(server)
    yield server
    server.stop()
    _servers.remove(server)


@pytest.fixture
def influx_db(influxd: Influxd) -> Iterator[InfluxClient]:
    """A client on a fresh `test_<hex>` database, dropped afterwards."""
    client = InfluxClient(influxd.url, unique("test_"))
    client.create_database()
    yield client
    client.drop_database()
    client.close()


@pytest.fixture
def org() -> str:
    """An organisation id of this test's own, so its topics and series are apart from others'."""
    return unique("org-")


@pytest.fixture
def settings(mosquitto: Mosquitto, influxd: Influxd, influx_db: InfluxClient, org: str) -> CloudSettings:
    return CloudSettings(
        mqtt_url=mosquitto.url,
        influx_url=influxd.url,
        influx_db=influx_db.database,
        org_filter=org,
        instance=unique("i-"),
        stats_interval_s=1.0,
        write_linger_ms=50,
    )


@pytest.fixture
def broker(mosquitto: Mosquitto) -> BrokerAddress:
    return BrokerAddress.parse(mosquitto.url)


@pytest.fixture(scope="session")
def demo_data_db(
    mosquitto: Mosquitto, influxd: Influxd, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A database holding the demo's data: every gateway in firmware_configs/ and a bus
    operator's GTFS-Realtime feed read by its reader (support_transit.bus_operator), an hour of
    Prato replayed at x600 through the real broker, ingest and rules; Prato's demo worksites
    written from their registry by the rules service; one alert acknowledged by an operator, as
    `sitroom demo` does. Yields the database's name."""
    configs = [load(p) for p in sorted((REPO / "firmware_configs").glob("*.yaml"))]
    database = unique("demo_")
    stores = tmp_path_factory.mktemp("demo-stores")
    registry = WorksiteStore.open(f"sqlite:///{stores / 'worksites.db'}", areas=ServiceAreas.load())
    load_demo(registry, datetime.now(UTC))
    # The Prato bus network imported beside the registry, as the demo does: the snapshot writer
    # chains worksites to the routes on them (`worksite_route`).
    buses = TransitStore(registry.engine)
    buses.migrate()
    buses.import_feed(prato_feed_zip(), operator=PRATO_OPERATOR)
    alert_store = AlertStore(f"sqlite:///{stores / 'alerts.db'}")
    client = InfluxClient(influxd.url, database)
    settings = CloudSettings(
        mqtt_url=mosquitto.url,
        influx_url=influxd.url,
        influx_db=database,
        instance=unique("demo-"),
        stats_interval_s=1.0,  # several self-monitoring points even in a short run
    )
    network = StoreNetwork(buses)
    snapshots = WorksiteSnapshots(registry, transit=network)
    park_and_ride = IntermodalSnapshots(network)
    with cloud_services(settings, alert_store=alert_store, worksites=snapshots, periodic=[park_and_ride]):
        clock = SimClock.replaying(600, horizon_s=6)
        state = tmp_path_factory.mktemp("demo-gateways")
        agents = [Agent(c, clock=clock, state_dir=state, broker_url=mosquitto.url) for c in configs]
        stop = threading.Event()
        threads = [threading.Thread(target=a.run, args=(stop, 6.0)) for a in agents]
        with bus_operator(mosquitto.url, clock, tmp_path_factory.mktemp("demo-transit")) as reader:
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
        published = sum(a.counters.readings_published for a in agents) + reader.stats.readings_published
        wait_until(lambda: count_points(client) == published, 30, what="demo data stored")
        wait_until(lambda: client.series('SELECT count("active") FROM "alerts"'), 10, what="demo alerts")
        # An operator takes the first open alert, so that time to acknowledge has data.
        (first, *_) = wait_until(alert_store.active, 10, what="an open alert")
        alert_store.acknowledge(first.id, by="comune-prato/anna")
        wait_until(
            lambda: client.series('SELECT count("ack_s") FROM "alerts" WHERE "state" = \'acknowledged\''),
            10,
            what="the acknowledgement in InfluxDB",
        )
        wait_until(lambda: client.series('SELECT count("active") FROM "worksite"'), 10, what="worksites")
        # The demo's misconfigured legacy feed, so that dead-letter panels have data too.
        feed = BrokerConnection(
            BrokerAddress.parse(mosquitto.url), unique("legacy-"), persistent=False
        ).start()
        sent = inject_bad_feed(feed)
        wait_until(
            lambda: client.series('SELECT count("count") FROM "sitroom_deadletter"'),
            10,
            what=f"{sent} dead letters",
        )
        feed.stop()
        exchange_in(settings, registry, minutes=6)
    yield database
    client.drop_database()
    client.close()
    alert_store.close()
    registry.close()


def exchange_in(settings: CloudSettings, registry: WorksiteStore, minutes: int) -> None:
    """What the demo's partners send (cloud/dev/partners.py), a fix or a state a minute: the
    partner's car parks as NGSI-LD notifications and the utility's vans through the push API,
    handed to the receiver and the push service as the demo's API process hands them."""
    direct = DirectIngest(
        InfluxClient(settings.influx_url, settings.influx_db),
        Admission.from_settings(settings),
        instance="http-demo",
    )
    ways = WaysIn.over(direct, BatchLedger(registry.engine))
    parks = CarParkStates(PARTNER)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=minutes)
    for m in range(minutes):
        at = start + timedelta(minutes=m)
        notification = {"id": f"urn:ngsi-ld:Notification:demo-{m}", "type": "Notification",
                        "notifiedAt": format_ts(at), "data": parks.entities(at)}  # fmt: skip
        assert ways.notifications.receive(PARTNER, orjson.dumps(notification)).refusals == []
        positions = orjson.dumps(van_positions(m * 60.0, at))
        assert ways.push.positions(UTILITY, f"demo-{m}", positions).refusals == []
    direct.report()
    direct.influx.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    report: pytest.TestReport = yield
    if report.failed:
        for server in _servers:
            report.sections.append((f"{server.name} log ({server.data_dir})", server.log()[-6000:]))
    return report


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    """A webhook receiver on loopback (support.webhook_receiver)."""
    with webhook_receiver() as state:
        yield state


@pytest.fixture
def smtp() -> Iterator[tuple[int, Inbox]]:
    """An SMTP server on loopback: (port, inbox) (support.smtp_server)."""
    with smtp_server() as server:
        yield server
