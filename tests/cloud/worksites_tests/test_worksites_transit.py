"""Worksites on bus lines in the API: the routes passing a worksite and the stops inside it, from
the GTFS feed imported beside the registry, in the worksite's own route, the map feeds and the
CityWork entity; a worksite on a parallel street 100 m away takes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from support_transit import OPERATOR as BUS_OPERATOR
from support_transit import PRATO_AREA as BUS_AREA
from support_transit import prato_feed_zip

from cloud.apps.api import create_app
from cloud.core.geo import ServiceAreas
from cloud.core.orgs import Organisation, Role
from cloud.dev.apiserver import ThreadedApiServer
from cloud.transit.store import TransitStore
from cloud.worksites.store import WorksiteStore

from .registry import MUNICIPALITY, Api, payload

M_LAT = 1 / 111_132
M_LON = 1 / (111_132 * 0.7212)
LAT0, LON0 = 43.8778, 11.1000  # Viale Piave, where LAM Blu, the 2 and the Circolare stop


def box(north_m: float) -> dict[str, Any]:
    """A 50 m x 30 m worksite centred `north_m` metres north of Viale Piave's stop."""
    w, e = LON0 - 25 * M_LON, LON0 + 25 * M_LON
    s, n = LAT0 + (north_m - 15) * M_LAT, LAT0 + (north_m + 15) * M_LAT
    return {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    store = WorksiteStore.open(f"sqlite:///{tmp_path / 'worksites.db'}", areas=ServiceAreas.load())
    transit = TransitStore(store.engine)  # the API's database: `sitroom transit import`'s default
    transit.migrate()
    transit.import_feed(prato_feed_zip(), operator=BUS_OPERATOR, area=BUS_AREA)
    store.orgs.add(Organisation(id=MUNICIPALITY, name="Comune di Prato", role=Role.MUNICIPALITY))
    server = ThreadedApiServer(create_app(store)).start()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            yield Api(client, {MUNICIPALITY: store.orgs.issue_token(MUNICIPALITY)}, store)
    finally:
        server.stop()
        store.close()


def live(geometry: dict[str, Any], **override: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    return payload(
        geometry=geometry,
        street="Viale Piave",
        planned_start=(now - timedelta(days=1)).isoformat(),
        planned_end=(now + timedelta(days=5)).isoformat(),
        status="active",
        **override,
    )


def test_a_worksite_across_viale_piave_names_the_routes_through_it_and_the_stop_inside(api: Api) -> None:
    ws = api.create(MUNICIPALITY, **live(box(0)))

    found = api.client.get(f"/worksites/{ws['id']}/transit", headers=api.as_(MUNICIPALITY))

    assert found.status_code == 200, found.text
    body = found.json()
    assert {(r["route_id"], r["name"], r["distance_m"]) for r in body["routes"]} == {
        ("LAM-BLU", "LAM Blu", 0.0),
        ("2", "2", 0.0),
        ("CIRC", "Circolare", 0.0),
    }
    assert [(s["stop_id"], s["name"], s["routes"]) for s in body["stops"]] == [
        ("PO-PIAVE", "Viale Piave", ["2", "CIRC", "LAM-BLU"])
    ]
    assert body["within_m"] == 30


def test_a_worksite_on_a_parallel_street_100_m_away_takes_no_route_and_no_stop(api: Api) -> None:
    ws = api.create(MUNICIPALITY, **live(box(100)))

    body = api.client.get(f"/worksites/{ws['id']}/transit", headers=api.as_(MUNICIPALITY)).json()

    assert body["routes"] == []
    assert body["stops"] == []
    # ... unless the distance asked for reaches the line.
    wider = api.client.get(
        f"/worksites/{ws['id']}/transit", params={"within_m": 120}, headers=api.as_(MUNICIPALITY)
    ).json()
    assert {r["route_id"] for r in wider["routes"]} >= {"LAM-BLU"}


def test_the_live_map_layer_and_the_citywork_entity_name_the_affected_lines_and_stops(api: Api) -> None:
    ws = api.create(MUNICIPALITY, **live(box(0)))

    layer = api.client.get("/feeds/live.geojson").json()
    (feature,) = [f for f in layer["features"] if f["id"] == ws["id"]]
    assert set(feature["properties"]["transit_routes"].split(", ")) == {"LAM Blu", "2", "Circolare"}
    assert feature["properties"]["transit_stops"] == "Viale Piave"

    entity = api.client.get(f"/worksites/{ws['id']}/ngsi-ld", headers=api.as_(MUNICIPALITY)).json()
    assert entity["countOfBusLineImpacted"]["value"] == 3
    lines = {item["lineName"]: item for item in entity["busImpacted"]["value"]}
    assert lines["LAM Blu"]["lineId"] == f"urn:ngsi-ld:GtfsRoute:{BUS_OPERATOR}:LAM-BLU"
    assert lines["LAM Blu"]["segmentName"] == ["Viale Piave"]


def test_the_distance_asked_for_is_checked_and_named(api: Api) -> None:
    ws = api.create(MUNICIPALITY, **live(box(0)))

    refused = api.client.get(
        f"/worksites/{ws['id']}/transit", params={"within_m": -5}, headers=api.as_(MUNICIPALITY)
    )

    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "within_m"
