"""A partner's car parks on our maps: the sites feed and the console place them where their
NGSI-LD entities said, beside the installation file's sites."""

from __future__ import annotations

import httpx

from cloud.apps.api import create_app
from cloud.apps.console import known_sites
from cloud.console.live import Sources
from cloud.core.geo import FixedSites
from cloud.dev.apiserver import ThreadedApiServer
from cloud.dev.servers import free_port
from cloud.exchange.receiver import NOTIFY_PATH
from cloud.io.influx.client import InfluxClient
from cloud.io.influx.sites import InfluxSites
from cloud.worksites.store import WorksiteStore

from .test_ngsi_ld_notifications import car_park, notification
from .ways import PARTNER, WaysInClient


def _notify_car_park(ways: WaysInClient, local: str = "fortezza") -> None:
    body = notification(car_park(local, total=400, occupied=100))
    response = ways.client.post(NOTIFY_PATH, json=body, headers=ways.auth(PARTNER))
    assert response.status_code == 200, response.text


def test_the_sites_feed_shows_a_partner_s_car_park_beside_ours(
    ways: WaysInClient, store: WorksiteStore, influx_db: InfluxClient
) -> None:
    _notify_car_park(ways)
    app = create_app(store, sites=known_sites(influx_db))

    with ThreadedApiServer(app) as server:
        feed = httpx.get(server.url + "/feeds/sites.geojson", trust_env=False).json()

    by_id = {f["id"]: f for f in feed["features"]}
    assert by_id["fortezza"]["geometry"]["coordinates"] == [11.2472, 43.7764]
    assert by_id["fortezza"]["properties"]["name"] == "Parcheggio fortezza"
    assert set(FixedSites.from_file().sites()) < set(by_id)  # ours are all still there


def test_our_own_site_wins_over_a_partner_s_place_for_the_same_sensor(
    ways: WaysInClient, influx_db: InfluxClient
) -> None:
    _notify_car_park(ways, "p-serraglio")  # a partner calling its car park like one of ours

    sites = known_sites(influx_db).sites()

    assert sites["p-serraglio"] == FixedSites.from_file().sites()["p-serraglio"]


def test_the_console_map_shows_a_partner_s_car_park_with_its_occupancy(
    ways: WaysInClient, influx_db: InfluxClient
) -> None:
    _notify_car_park(ways)

    parking = Sources(influx=influx_db, sites=known_sites(influx_db)).sensors()["parking"]

    (fortezza,) = [p for p in parking if p["id"] == "fortezza"]
    assert (fortezza["org"], fortezza["lat"], fortezza["lon"]) == (PARTNER, 43.7764, 11.2472)
    assert (fortezza["occupied"], fortezza["capacity"], fortezza["occupancy_pct"]) == (100, 400, 25.0)


def test_places_that_cannot_be_read_leave_the_map_as_it_was_without_an_error(
    ways: WaysInClient, influx_db: InfluxClient
) -> None:
    _notify_car_park(ways)
    sites = InfluxSites(influx_db, refresh_s=0)
    before = sites.sites()
    unreachable = InfluxClient(f"http://127.0.0.1:{free_port()}", "sitroom")
    sites.influx = unreachable

    assert set(before) == {"fortezza"}
    assert sites.sites() == before
    assert InfluxSites(unreachable).sites() == {}
    unreachable.close()
