"""WZDx import through the API holds to the API's rules: who may write what, the approval
workflow, the version rule and the model's validation; a refused import changes nothing.

Issue 18 points 1 and 3 (a utility approved its own worksite through the import; hostile ids and
negative versions were stored) and the import half of point 12 (wrong JSON types were 500s).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from cloud.apps.cli.worksites import group as worksites_cli
from cloud.worksites import wzdx

from .registry import GAS, MUNICIPALITY, WATER, Api, payload

# Via Pistoiese moved 200 m east, and its dates a week later: a new place and time.
MOVED = {"type": "LineString", "coordinates": [[11.0815, 43.8854], [11.0840, 43.8851], [11.0868, 43.8847]]}


def _snapshot(api: Api) -> dict[str, Any]:
    with api.store.engine.connect() as conn:
        counts = {
            t: conn.execute(sa.text(f"SELECT COUNT(*) FROM {t}")).scalar_one()
            for t in ("ws_worksites", "ws_history")
        }
    return {"counts": counts, "worksites": [w.model_dump(mode="json") for w in api.store.search()]}


def _feed(api: Api, *ids: str) -> dict[str, Any]:
    """The registry's own WZDx export of these worksites, as a utility would download it."""
    sites = [api.store.get(i) for i in ids]
    return wzdx.export_feed(sites, api.store.organisations())


def _import(api: Api, org: str, feed: Any) -> Any:
    return api.client.post("/import/wzdx", json=feed, headers=api.as_(org))


def _feature(**sitroom: Any) -> dict[str, Any]:
    """One work zone of Publiacqua in Via Pistoiese, with our extension as given."""
    return {
        "id": "wz-pistoiese",
        "type": "Feature",
        "properties": {
            "core_details": {
                "event_type": "work-zone",
                "data_source_id": WATER,
                "road_names": ["Via Pistoiese"],
                "direction": "unknown",
                "name": "Rifacimento condotta idrica",
            },
            "start_date": "2026-12-01T07:00:00Z",
            "end_date": "2026-12-20T17:00:00Z",
            "is_start_date_verified": False,
            "is_end_date_verified": False,
            "is_start_position_verified": False,
            "is_end_position_verified": False,
            "location_method": "other",
            "vehicle_impact": "some-lanes-closed",
            **({"sitroom": sitroom} if sitroom else {}),
        },
        "geometry": {
            "type": "LineString",
            "coordinates": [[11.0795, 43.8854], [11.0820, 43.8851], [11.0848, 43.8847]],
        },
    }


def _one(feature: dict[str, Any]) -> dict[str, Any]:
    return {
        "feed_info": {
            "publisher": "Publiacqua",
            "version": "4.2",
            "update_date": "2026-11-24T12:00:00Z",
            "data_sources": [{"data_source_id": WATER, "organization_name": "Publiacqua"}],
        },
        "type": "FeatureCollection",
        "features": [feature],
    }


# --- point 1: permissions and the approval workflow -----------------------------------------


def test_a_utility_cannot_approve_its_own_worksite_through_an_import(api: Api) -> None:
    claim = _feature(approval="approved", approved_by=MUNICIPALITY, status="active")

    response = _import(api, WATER, _one(claim))

    assert response.status_code == 200, response.text
    assert response.json() == {"created": 1, "updated": 0}
    stored = api.store.get("wz-pistoiese")
    assert stored.owner == WATER
    assert stored.approval.value == "pending"
    assert stored.approved_by is None
    assert stored.status.value == "active"  # a field the owner may write, as through the API
    assert stored.version == 1


def test_reimporting_an_approved_worksite_with_a_new_place_and_dates_sends_it_back_for_approval(
    api: Api,
) -> None:
    ws = api.create(WATER)
    api.client.post(f"/worksites/{ws['id']}/approve", headers=api.as_(MUNICIPALITY)).raise_for_status()
    feed = _feed(api, ws["id"])
    ext = feed["features"][0]["properties"]["sitroom"]
    assert ext["approval"] == "approved"
    ext.update(geometry=MOVED, planned_start="2026-12-08T07:00:00Z", planned_end="2026-12-27T17:00:00Z")

    response = _import(api, WATER, feed)

    assert response.status_code == 200, response.text
    assert response.json() == {"created": 0, "updated": 1}
    stored = api.store.get(ws["id"])
    assert stored.geometry == MOVED
    assert stored.approval.value == "pending"
    assert stored.approved_by is None
    assert stored.version == 3  # created, approved, re-planned
    last = api.store.history(ws["id"])[-1]
    assert (last.actor, last.action) == (WATER, "import")
    assert last.changes["approval"] == ["approved", "pending"]


def test_reimporting_an_unchanged_export_changes_nothing(api: Api) -> None:
    ws = api.create(WATER)
    api.client.post(f"/worksites/{ws['id']}/approve", headers=api.as_(MUNICIPALITY)).raise_for_status()
    before = _snapshot(api)

    response = _import(api, WATER, _feed(api, ws["id"]))

    assert response.json() == {"created": 0, "updated": 0}
    assert _snapshot(api) == before


def test_an_import_made_on_an_older_version_is_refused_as_stale_and_changes_nothing(api: Api) -> None:
    ws = api.create(WATER)
    feed = _feed(api, ws["id"])  # version 1
    api.client.patch(
        f"/worksites/{ws['id']}", json={"title": "Changed meanwhile"}, headers=api.as_(MUNICIPALITY)
    ).raise_for_status()
    feed["features"][0]["properties"]["core_details"]["name"] = "Mine"
    before = _snapshot(api)

    response = _import(api, WATER, feed)

    assert response.status_code == 409, response.text
    assert "version 2, not 1" in response.json()["detail"]
    assert _snapshot(api) == before


def test_a_utility_cannot_import_over_another_organisations_worksite(api: Api) -> None:
    ws = api.create(GAS, work_type="gas")
    feed = _feed(api, ws["id"])
    feed["features"][0]["properties"]["core_details"]["data_source_id"] = WATER
    before = _snapshot(api)

    response = _import(api, WATER, feed)

    assert response.status_code == 403, response.text
    assert GAS in response.json()["detail"]
    assert _snapshot(api) == before


def test_a_utility_cannot_import_a_worksite_for_another_owner(api: Api) -> None:
    feature = _feature()
    feature["properties"]["core_details"]["data_source_id"] = GAS

    response = _import(api, WATER, _one(feature))

    assert response.status_code == 403, response.text
    assert api.store.count() == 0


def test_the_municipality_importing_an_approved_worksite_approves_it_as_itself(api: Api) -> None:
    claim = _feature(approval="approved", approved_by="someone-else")

    response = _import(api, MUNICIPALITY, _one(claim))

    assert response.status_code == 200, response.text
    stored = api.store.get("wz-pistoiese")
    assert (stored.owner, stored.approval.value, stored.approved_by) == (WATER, "approved", MUNICIPALITY)
    assert [h.action for h in api.store.history("wz-pistoiese")] == ["import", "approve"]


def test_an_import_that_fails_halfway_changes_nothing(api: Api) -> None:
    mine = _feature()
    theirs = copy.deepcopy(mine)
    theirs["id"] = "wz-gas"
    theirs["properties"]["core_details"]["data_source_id"] = GAS
    feed = _one(mine)
    feed["features"].append(theirs)

    response = _import(api, WATER, feed)

    assert response.status_code == 403
    assert api.store.count() == 0


# --- point 3: the model's validation, every field named --------------------------------------

HOSTILE_IDS = {
    "path": "../../etc/passwd",
    "markup": '<img src=x onerror="alert(1)">',
    "300 characters": "w" * 300,
    "newline": "ws-1\nws-2",
    "line protocol": "ws-1,org=x value=1",
    "upper case": "WS-1",
    "number": 42,
}


@pytest.mark.parametrize("hostile", HOSTILE_IDS.values(), ids=HOSTILE_IDS.keys())
def test_a_hostile_worksite_id_is_refused_naming_the_feature_id(api: Api, hostile: Any) -> None:
    feature = _feature()
    feature["id"] = hostile

    response = _import(api, MUNICIPALITY, _one(feature))

    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["features[0].id"]
    assert api.store.count() == 0


@pytest.mark.parametrize("version", [-5, 0, 2**70, "3", 1.5, True])
def test_a_version_that_is_not_a_positive_integer_is_refused_naming_it(api: Api, version: Any) -> None:
    response = _import(api, WATER, _one(_feature(version=version)))

    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["features[0].properties.sitroom.version"]
    assert api.store.count() == 0


def test_an_import_runs_the_models_validation_and_names_each_field_where_the_feed_has_it(api: Api) -> None:
    feature = _feature(impact={"lanes_closed": 99})
    feature["properties"]["core_details"]["name"] = "x" * 201
    feature["properties"]["end_date"] = "2026-11-01T00:00:00Z"  # before the start

    response = _import(api, WATER, _one(feature))

    assert response.status_code == 422, response.text
    fields = {e["field"] for e in response.json()["errors"]}
    assert fields == {
        "features[0].properties.core_details.name",
        "features[0].properties.end_date",
        "features[0].properties.sitroom.impact.lanes_closed",
    }
    assert api.store.count() == 0


def test_an_imported_worksite_is_reachable_through_the_api_by_its_id(api: Api) -> None:
    _import(api, WATER, _one(_feature())).raise_for_status()

    response = api.client.get("/worksites/wz-pistoiese", headers=api.as_(GAS))

    assert response.status_code == 200
    assert response.json()["title"] == "Rifacimento condotta idrica"


# --- point 12: wrong JSON types are 422 naming the field, never 500 --------------------------


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(feature: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = feature
        for key in parents:
            node = node[key]
        node[last] = value

    return change


ROADS = "properties.core_details.road_names"
WRONG_TYPES: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "core_details a string": (_set("properties.core_details", "x"), "properties.core_details"),
    "core_details a list": (_set("properties.core_details", []), "properties.core_details"),
    "road_names a string": (_set(ROADS, "Via Roma"), ROADS),
    "road_names of numbers": (_set(ROADS, [1, 2]), f"{ROADS}.0"),
    "road_names a number": (_set(ROADS, 5), ROADS),
    "name a number": (_set("properties.core_details.name", 5), "properties.core_details.name"),
    "restrictions a string": (_set("properties.restrictions", "no-trucks"), "properties.restrictions"),
    "restrictions of numbers": (_set("properties.restrictions", [1]), "properties.restrictions.0"),
    "types_of_work an object": (_set("properties.types_of_work", {"a": 1}), "properties.types_of_work"),
    "types_of_work of strings": (_set("properties.types_of_work", ["x"]), "properties.types_of_work.0"),
    "start_date a number": (_set("properties.start_date", 5), "properties.start_date"),
    "properties a list": (_set("properties", []), "properties"),
    "sitroom a string": (_set("properties.sitroom", "x"), "properties.sitroom"),
    "MultiPoint without coordinates": (_set("geometry", {"type": "MultiPoint"}), "geometry"),
    "geometry a string": (_set("geometry", "POINT(11 43)"), "geometry"),
    "coordinate 1000": (_set("geometry", {"type": "MultiPoint", "coordinates": [[1000, 43.88]]}), "geometry"),
}  # fmt: skip


@pytest.mark.parametrize(("break_it", "where"), WRONG_TYPES.values(), ids=WRONG_TYPES.keys())
def test_a_feed_with_a_wrong_type_is_refused_naming_the_field(
    api: Api, break_it: Callable[[dict[str, Any]], None], where: str
) -> None:
    feature = _feature()
    break_it(feature)

    response = _import(api, WATER, _one(feature))

    assert response.status_code == 422, response.text
    assert f"features[0].{where}" in [e["field"] for e in response.json()["errors"]]
    assert api.store.count() == 0


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"type": "FeatureCollection", "features": [5]}, "features[0]"),
        ({"type": "FeatureCollection", "features": {"a": 1}}, "features"),
        ({"type": "FeatureCollection"}, "features"),
        ([1, 2], "body"),
    ],
    ids=["feature a number", "features an object", "no features", "an array"],
)
def test_a_body_that_is_no_feed_is_refused_naming_where(api: Api, body: Any, where: str) -> None:
    headers = {**api.as_(WATER), "Content-Type": "application/json"}
    response = api.client.post("/import/wzdx", content=json.dumps(body), headers=headers)

    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == where


def test_the_api_payload_and_the_import_agree_on_what_a_worksite_is(api: Api) -> None:
    # The same worksite written both ways reads back the same, but for id, dates and history.
    through_api = api.create(WATER, id="ws-api", impact={"lanes_closed": 1})
    _import(api, WATER, _one(_feature(work_type="water"))).raise_for_status()
    imported = api.client.get("/worksites/wz-pistoiese", headers=api.as_(WATER)).json()
    keep = set(payload()) | {"owner", "approval", "status", "version"}
    assert {k: through_api[k] for k in keep} == {k: imported[k] for k in keep}


# --- the same rules from the command line: `sitroom worksites import` ------------------------


def test_the_cli_import_applies_the_same_rules_as_the_api(api: Api, store_url: str, tmp_path: Path) -> None:
    feed = tmp_path / "feed.json"
    feed.write_text(json.dumps(_one(_feature(approval="approved", approved_by=MUNICIPALITY))))
    db = ["--db", store_url]

    ok = CliRunner().invoke(worksites_cli, [*db, "--as", WATER, "import", str(feed)])

    assert ok.exit_code == 0, ok.output
    assert "1 created" in ok.output
    assert api.store.get("wz-pistoiese").approval.value == "pending"

    hostile = _feature(version=-5)
    hostile["id"] = "../../etc/passwd"
    feed.write_text(json.dumps(_one(hostile)))
    refused = CliRunner().invoke(worksites_cli, [*db, "--as", WATER, "import", str(feed)])

    assert refused.exit_code == 1
    assert "features[0].id" in refused.output
    assert "features[0].properties.sitroom.version" in refused.output
    assert api.store.count() == 1
