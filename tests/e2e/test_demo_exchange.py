"""The demo's data exchange as `sitroom demo` runs it: its own processes around the real API.

The API is `sitroom cloud api --push --demo-data` in a process, as the demo starts it; the hook
(`cloud/apps/demo_exchange.py`) adds the partner's stand-in broker, our subscription, and the
two partners' platforms, each a process. What they had acknowledged is what InfluxDB holds, and
the partner's car parks are on the map where their entities put them.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cloud.apps.console import known_sites
from cloud.apps.demo_exchange import PARTNER, UTILITY, DemoExchange, DemoExchangeSetup
from cloud.dev.partners import CAR_PARKS, VANS
from cloud.dev.servers import env_without_proxies, free_port
from cloud.io.influx.client import InfluxClient

from support import REPO, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


@pytest.fixture
def demo_api(tmp_path: Path, influx_db: InfluxClient) -> Iterator[tuple[str, str, dict[str, str]]]:
    """(API URL, registry URL, environment) of `sitroom cloud api --push --demo-data`."""
    db = f"sqlite:///{tmp_path / 'worksites.db'}"
    env = {
        **env_without_proxies(),
        "SITROOM_INFLUX_URL": influx_db.url,
        "SITROOM_INFLUX_DB": influx_db.database,
        "SITROOM_STATS_INTERVAL_S": "1",
    }
    port = free_port()
    (tmp_path / "logs").mkdir()
    with (tmp_path / "logs" / "api.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "edge.cli", "cloud", "api", "--db", db, "--demo-data", "--port", str(port),
             "--push"],
            env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        yield f"http://127.0.0.1:{port}", db, env
    finally:
        proc.terminate()
        proc.wait(30)


def _count(influx: InfluxClient, q: str) -> int:
    return sum(int(s["values"][0][1]) for s in influx.series(q))


def test_the_partners_acknowledged_readings_are_stored_and_the_partner_s_car_parks_mapped(
    tmp_path: Path, influx_db: InfluxClient, demo_api: tuple[str, str, dict[str, str]]
) -> None:
    api_url, db, env = demo_api
    setup = DemoExchangeSetup(tmp_path, tmp_path / "logs", env, api_url, db, free_port(), interval_s=0.5)
    exchange = DemoExchange(setup)
    try:
        lines = exchange.start()
        wait_until(lambda: exchange.counts().pushed >= 3 * len(VANS), 60, what="three pushes")
        wait_until(lambda: exchange.counts().notified >= 3 * len(CAR_PARKS), 60, what="three upserts")
        counts = exchange.stop_senders()

        assert exchange.stopped_unexpectedly() == []
        pushed = f'SELECT count("lat") FROM "fleet" WHERE "org" = \'{UTILITY}\''
        notified = (
            f'SELECT count("occupied") FROM "parking" WHERE "org" = \'{PARTNER}\' AND "gateway" = \'ngsi-ld\''
        )
        wait_until(lambda: _count(influx_db, pushed) == counts.pushed, 30, what="the pushed positions stored")
        wait_until(lambda: _count(influx_db, notified) == counts.notified, 30, what="the car parks stored")
        sites = known_sites(influx_db).sites()
        assert {p.sensor for p in CAR_PARKS} <= set(sites)
        stazione = sites["p-cz-stazione"]
        assert (stazione.lat, stazione.lon, stazione.name) == (
            43.8566,
            11.1611,
            "Parcheggio Stazione di Calenzano",
        )
        assert any("/push/v1" in line for line in lines)
        assert _count(influx_db, 'SELECT count("count") FROM "sitroom_deadletter"') == 0
        # The API's intake reports its counters as ingest does (the Pipeline dashboard).
        wait_until(
            lambda: influx_db.series(
                'SELECT last("readings_written") FROM "sitroom_ingest" WHERE "instance" =~ /^http-/'
            ),
            20,
            what="the HTTP intake's counters",
        )
    finally:
        exchange.close()
    assert all(p.poll() is not None for p in exchange.procs.values())
    assert (
        httpx.get(api_url + "/openapi.json", trust_env=False).status_code == 200
    )  # the API is not the hook's
