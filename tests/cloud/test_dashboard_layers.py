"""Every Geomap layer URL of every dashboard is an API route returning a valid FeatureCollection."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from support_transit import OPERATOR, prato_feed_zip
from support_transit import PRATO_AREA as PRATO_BOX

from cloud.apps.api import create_app
from cloud.core.geo import ServiceAreas, load_sites
from cloud.dashboards.queries import iter_panels
from cloud.dev.apiserver import ThreadedApiServer
from cloud.dev.demo_data import load_demo
from cloud.transit.store import TransitStore
from cloud.worksites.store import WorksiteStore

from support import REPO


def layer_urls() -> list[str]:
    urls = set()
    for path in sorted((REPO / "dashboards" / "json").glob("*.json")):
        for panel in iter_panels(json.loads(path.read_text())):
            for layer in panel.get("options", {}).get("layers", []) if panel["type"] == "geomap" else []:
                if layer["type"] == "geojson":
                    urls.add(layer["config"]["src"])
                if layer.get("location", {}).get("mode") == "lookup":
                    urls.add(layer["location"]["gazetteer"])
    return sorted(urls)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """The real API (uvicorn on a loopback port) with the demo's worksites and bus network
    loaded, as `sitroom demo` loads them."""
    db: Path = tmp_path_factory.mktemp("api") / "worksites.db"
    store = WorksiteStore.open(f"sqlite:///{db}", areas=ServiceAreas.load())
    store.migrate()
    load_demo(store, datetime.now(UTC))
    transit = TransitStore.open(f"sqlite:///{db}")
    transit.import_feed(prato_feed_zip(), operator=OPERATOR, area=PRATO_BOX)
    transit.close()
    server = ThreadedApiServer(create_app(store)).start()
    with httpx.Client(base_url=server.url, trust_env=False) as client:
        yield client
    server.stop()
    store.close()


def test_the_overview_map_has_worksite_and_sites_layers() -> None:
    paths = {urlsplit(u).path for u in layer_urls()}
    assert {"/feeds/live.geojson", "/feeds/planned.geojson", "/feeds/sites.geojson"} <= paths


def test_the_public_transport_map_draws_the_routes_of_the_static_feed() -> None:
    assert "/feeds/transit/routes.geojson" in {urlsplit(u).path for u in layer_urls()}


@pytest.mark.parametrize("url", layer_urls())
def test_every_map_layer_url_returns_a_feature_collection_readable_from_grafana(
    api: httpx.Client, url: str
) -> None:
    response = api.get(urlsplit(url).path, headers={"Origin": "http://127.0.0.1:3000"})
    assert response.status_code == 200, response.text
    # Grafana's browser fetches the layer from another origin: CORS must allow it.
    assert response.headers.get("access-control-allow-origin") in {"*", "http://127.0.0.1:3000"}
    body = response.json()
    assert body["type"] == "FeatureCollection"
    assert body["features"], f"{url}: no features with the demo data"
    for feature in body["features"]:
        assert feature["type"] == "Feature"
        assert feature["geometry"]["type"] in {
            "Point",
            "LineString",
            "Polygon",
            "MultiPolygon",
            "MultiLineString",
        }
        assert feature["geometry"]["coordinates"]


def test_the_sites_feed_places_every_parking_and_traffic_sensor_of_the_demo() -> None:
    sites = load_sites()
    sensors = set()
    for path in (REPO / "firmware_configs").glob("*.yaml"):
        text = path.read_text()
        sensors |= {w.strip(",") for w in text.split() if w.startswith(("p-", "t-"))}
    assert sensors <= set(sites), f"sensors without a site: {sorted(sensors - set(sites))}"
    for site in sites.values():
        assert 43.84 <= site.lat <= 43.92
        assert 11.04 <= site.lon <= 11.16
