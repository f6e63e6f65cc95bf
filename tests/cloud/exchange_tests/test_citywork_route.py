"""What THE API app serves of the exchange: a worksite as the export's CityWork always, the ways in
only when it is given them (`sitroom cloud api --push`)."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import orjson

from cloud.apps.api import create_app
from cloud.dev.apiserver import ThreadedApiServer
from cloud.dev.demo_data import load_demo
from cloud.exchange.entities import city_work
from cloud.worksites.store import WorksiteStore

from .smart_data_models import problems
from .ways import WaysInClient


def test_a_worksite_s_ngsi_ld_route_gives_the_export_s_citywork_in_either_form(
    ways: WaysInClient, store: WorksiteStore
) -> None:
    load_demo(store, datetime.now(UTC))
    worksite = store.search()[0]
    exported = city_work(worksite)
    path = f"/worksites/{worksite.id}/ngsi-ld"

    normalized = ways.client.get(path, headers=ways.auth("comune-prato")).json()
    key_values = ways.client.get(
        path, params={"options": "keyValues"}, headers=ways.auth("comune-prato")
    ).json()

    assert normalized == orjson.loads(orjson.dumps(exported.normalized()))
    assert key_values == orjson.loads(orjson.dumps(exported.key_values()))
    assert problems(key_values) == []


def test_the_ngsi_ld_route_needs_a_token_and_names_an_unknown_worksite(ways: WaysInClient) -> None:
    anonymous = ways.client.get("/worksites/ws-nowhere/ngsi-ld")
    unknown = ways.client.get("/worksites/ws-nowhere/ngsi-ld", headers=ways.auth("comune-prato"))

    assert anonymous.status_code == 401
    assert unknown.status_code == 404
    assert "ws-nowhere" in unknown.json()["detail"]


def test_an_app_without_its_ways_in_serves_no_push_api_and_no_receiver(store: WorksiteStore) -> None:
    app = create_app(store)

    with ThreadedApiServer(app) as server:
        paths = httpx.get(server.url + "/openapi.json", trust_env=False).json()["paths"]
        push = httpx.post(server.url + "/push/v1/readings", content=b"{}", trust_env=False)

    assert push.status_code == 404
    assert not any(p.startswith(("/push/", "/exchange/")) for p in paths)
    assert "/worksites/{worksite_id}/ngsi-ld" in paths
