"""The worksite API on SQLite and PostgreSQL: permissions, validation, filters, history, feeds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from .registry import GAS, MUNICIPALITY, WATER, Api, payload


def _ids(response: Any) -> set[str]:
    assert response.status_code == 200, response.text
    return {w["id"] for w in response.json()["items"]}


# --- permissions ---------------------------------------------------------------------------


def test_a_utility_creates_its_own_worksite_owned_by_it_and_pending_approval(api: Api) -> None:
    created = api.create(WATER)
    assert created["owner"] == WATER
    assert created["approval"] == "pending"
    assert created["version"] == 1


def test_a_utility_cannot_edit_another_organisations_worksite_and_nothing_changes(api: Api) -> None:
    ws = api.create(WATER)
    response = api.client.patch(f"/worksites/{ws['id']}", json={"title": "Mine now"}, headers=api.as_(GAS))
    assert response.status_code == 403
    assert WATER in response.json()["detail"]
    assert api.client.get(f"/worksites/{ws['id']}", headers=api.as_(GAS)).json()["title"] == ws["title"]
    assert len(api.store.history(ws["id"])) == 1


def test_a_utility_cannot_create_a_worksite_for_another_owner(api: Api) -> None:
    response = api.client.post("/worksites", json=payload(owner=GAS), headers=api.as_(WATER))
    assert response.status_code == 403
    assert api.store.count() == 0


def test_the_municipality_creates_for_any_owner_edits_and_approves_any_worksite(api: Api) -> None:
    ws = api.create(MUNICIPALITY, owner=GAS, work_type="gas")
    assert ws["owner"] == GAS
    edited = api.client.patch(
        f"/worksites/{ws['id']}", json={"status": "active"}, headers=api.as_(MUNICIPALITY)
    ).json()
    assert edited["status"] == "active"
    approved = api.client.post(f"/worksites/{ws['id']}/approve", headers=api.as_(MUNICIPALITY)).json()
    assert approved["approval"] == "approved"
    assert approved["approved_by"] == MUNICIPALITY


def test_only_the_municipality_approves_even_a_utilitys_own_worksite(api: Api) -> None:
    ws = api.create(WATER)
    response = api.client.post(f"/worksites/{ws['id']}/approve", headers=api.as_(WATER))
    assert response.status_code == 403
    assert api.store.get(ws["id"]).approval.value == "pending"


def test_every_organisation_sees_every_worksite_to_coordinate(api: Api) -> None:
    a = api.create(WATER)
    b = api.create(GAS, work_type="gas")
    for org in (WATER, GAS, MUNICIPALITY):
        assert _ids(api.client.get("/worksites", headers=api.as_(org))) == {a["id"], b["id"]}


@pytest.mark.parametrize("header", [None, "Bearer srt_not-a-token", "Basic dXNlcjpwYXNz"])
def test_a_missing_or_unknown_token_is_refused(api: Api, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    assert api.client.get("/worksites", headers=headers).status_code == 401
    assert api.client.post("/worksites", json=payload(), headers=headers).status_code == 401
    assert api.store.count() == 0


def test_tokens_are_stored_only_as_hashes(api: Api) -> None:
    import sqlalchemy as sa  # noqa: PLC0415

    with api.store.engine.connect() as conn:
        stored = {r[0] for r in conn.execute(sa.text("SELECT token_sha256 FROM ws_api_tokens"))}
    assert not set(api.tokens.values()) & stored
    assert len(stored) == 3


# --- validation names the field ------------------------------------------------------------

SELF_INTERSECTING = {
    "type": "Polygon",
    "coordinates": [
        [[11.090, 43.880], [11.095, 43.885], [11.095, 43.880], [11.090, 43.885], [11.090, 43.880]]
    ],
}

INVALID_CASES = [
    ("title", {"title": ""}),
    ("title", {"title": "x" * 201}),
    ("work_type", {"work_type": "plumbing"}),
    ("status", {"status": "open"}),
    ("planned_start", {"planned_start": "2026-12-01T07:00:00"}),
    ("planned_start", {"planned_start": "tomorrow"}),
    ("planned_end", {"planned_end": "2026-11-30T07:00:00Z"}),
    ("planned_end", {"planned_end": "2026-12-01T07:00:00Z"}),
    ("actual_end", {"actual_end": "2026-12-02T07:00:00Z"}),
    ("actual_end", {"actual_start": "2026-12-03T07:00:00Z", "actual_end": "2026-12-02T07:00:00Z"}),
    ("geometry", {"geometry": {"type": "LineString"}}),
    ("geometry", {"geometry": {"type": "Circle", "coordinates": [11.09, 43.88]}}),
    ("geometry", {"geometry": {"type": "Point", "coordinates": [11.09]}}),
    ("geometry", {"geometry": {"type": "Point", "coordinates": ["11.09", 43.88]}}),
    ("geometry", {"geometry": {"type": "LineString", "coordinates": [[11.09, 43.88], [11.09, 43.88]]}}),
    ("geometry", {"geometry": SELF_INTERSECTING}),
    ("geometry", {"geometry": {"type": "Point", "coordinates": [43.88, 11.09]}}),  # lat/lon swapped
    ("geometry", {"geometry": {"type": "Point", "coordinates": [11.25, 43.77]}}),  # Florence side
    ("geometry", {"geometry": "POINT(11.09 43.88)"}),
    ("impact.lanes_closed", {"impact": {"lanes_closed": -1}}),
    ("impact.restrictions.0", {"impact": {"restrictions": ["no-unicorns"]}}),
    ("impact.colour", {"impact": {"colour": "red"}}),
    ("colour", {"colour": "red"}),
    ("owner", {"owner": "Not An Id"}),
]


@pytest.mark.parametrize(
    ("field", "override"), INVALID_CASES, ids=[f"{f}-{i}" for i, (f, _) in enumerate(INVALID_CASES)]
)
def test_every_validation_error_names_its_field_and_creates_nothing(
    api: Api, field: str, override: dict[str, Any]
) -> None:
    response = api.client.post("/worksites", json=payload(**override), headers=api.as_(MUNICIPALITY))
    assert response.status_code == 422, response.text
    body = response.json()
    assert field in [e["field"] for e in body["errors"]], body
    assert field in body["detail"]
    assert api.store.count() == 0


def test_missing_required_fields_are_each_named(api: Api) -> None:
    response = api.client.post("/worksites", json={}, headers=api.as_(WATER))
    assert response.status_code == 422
    named = {e["field"] for e in response.json()["errors"]}
    assert {"title", "street", "work_type", "geometry", "planned_start", "planned_end"} <= named


def test_an_invalid_update_names_the_field_and_changes_nothing(api: Api) -> None:
    ws = api.create(WATER)
    response = api.client.patch(
        f"/worksites/{ws['id']}", json={"planned_end": "2026-11-01T00:00:00Z"}, headers=api.as_(WATER)
    )
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["planned_end"]
    after = api.client.get(f"/worksites/{ws['id']}", headers=api.as_(WATER)).json()
    assert after == ws
    assert len(api.store.history(ws["id"])) == 1


# --- filters -------------------------------------------------------------------------------


def _line(lon0: float, lat0: float, lon1: float, lat1: float) -> dict[str, Any]:
    return {"type": "LineString", "coordinates": [[lon0, lat0], [lon1, lat1]]}


def test_the_bbox_filter_keeps_exactly_the_worksites_whose_geometry_meets_the_box(api: Api) -> None:
    inside = api.create(WATER, geometry={"type": "Point", "coordinates": [11.0950, 43.8800]})
    # A line crossing the box with both vertices outside it.
    crossing = api.create(WATER, geometry=_line(11.0900, 43.8805, 11.1000, 43.8805))
    # An L whose bounding box covers the query box's corner but whose lines do not enter it.
    l_shape = {
        "type": "LineString",
        "coordinates": [[11.0960, 43.8830], [11.1000, 43.8830], [11.1000, 43.8790]],
    }
    around = api.create(WATER, geometry=l_shape)
    api.create(WATER, geometry={"type": "Point", "coordinates": [11.0700, 43.8600]})
    box = "11.0940,43.8790,11.0990,43.8820"
    found = _ids(api.client.get("/worksites", params={"bbox": box}, headers=api.as_(WATER)))
    assert found == {inside["id"], crossing["id"]}
    assert around["id"] not in found


def test_the_time_window_keeps_worksites_overlapping_it_using_actual_dates_when_known(api: Api) -> None:
    early = api.create(WATER, planned_start="2026-12-01T00:00:00Z", planned_end="2026-12-10T00:00:00Z")
    late = api.create(WATER, planned_start="2026-12-20T00:00:00Z", planned_end="2026-12-30T00:00:00Z")
    # Planned in January, but it actually started in December.
    moved = api.create(
        WATER,
        planned_start="2027-01-10T00:00:00Z",
        planned_end="2027-01-20T00:00:00Z",
        actual_start="2026-12-15T00:00:00Z",
        status="active",
    )

    def window(start: str, end: str) -> set[str]:
        return _ids(api.client.get("/worksites", params={"start": start, "end": end}, headers=api.as_(WATER)))

    assert window("2026-12-05T00:00:00Z", "2026-12-06T00:00:00Z") == {early["id"]}
    assert window("2026-12-10T00:00:00Z", "2026-12-20T00:00:00Z") == {moved["id"]}  # ends/starts are open
    assert window("2026-12-09T00:00:00Z", "2026-12-21T00:00:00Z") == {early["id"], late["id"], moved["id"]}
    assert window("2027-02-01T00:00:00Z", "2027-03-01T00:00:00Z") == set()
    only_start = _ids(
        api.client.get("/worksites", params={"start": "2026-12-25T00:00:00Z"}, headers=api.as_(WATER))
    )
    assert only_start == {late["id"], moved["id"]}


def test_status_and_owner_filters_combine(api: Api) -> None:
    a = api.create(WATER, status="active")
    api.create(WATER)
    c = api.create(GAS, work_type="gas", status="active")
    headers = api.as_(MUNICIPALITY)
    assert _ids(api.client.get("/worksites", params={"status": "active"}, headers=headers)) == {
        a["id"],
        c["id"],
    }
    assert _ids(api.client.get("/worksites", params={"status": "active", "owner": GAS}, headers=headers)) == {
        c["id"]
    }
    both = api.client.get("/worksites", params=[("owner", GAS), ("owner", WATER)], headers=headers)
    assert len(_ids(both)) == 3


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"bbox": "11.0,43.8"}, "bbox"),
        ({"bbox": "a,b,c,d"}, "bbox"),
        ({"bbox": "11.2,43.8,11.0,43.9"}, "bbox"),
        ({"status": "open"}, "status.0"),
        ({"owner": "x' OR '1'='1"}, "owner.0"),
        ({"start": "2026-12-01T00:00:00"}, "start"),
        ({"start": "2026-12-10T00:00:00Z", "end": "2026-12-01T00:00:00Z"}, "end"),
        ({"limit": "0"}, "limit"),
    ],
)
def test_bad_query_parameters_are_refused_naming_the_parameter(
    api: Api, params: dict[str, str], field: str
) -> None:
    api.create(WATER)
    response = api.client.get("/worksites", params=params, headers=api.as_(WATER))
    assert response.status_code == 422, response.text
    assert field in [e["field"] for e in response.json()["errors"]]


# --- history and approval --------------------------------------------------------------------


def test_history_records_who_changed_what_and_when(api: Api) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    ws = api.create(WATER)
    api.client.patch(
        f"/worksites/{ws['id']}", json={"title": "Condotta DN300", "status": "active"}, headers=api.as_(WATER)
    )
    api.client.post(f"/worksites/{ws['id']}/approve", headers=api.as_(MUNICIPALITY))
    history = api.client.get(f"/worksites/{ws['id']}/history", headers=api.as_(GAS)).json()
    assert [(h["action"], h["actor"], h["version"]) for h in history] == [
        ("create", WATER, 1),
        ("update", WATER, 2),
        ("approve", MUNICIPALITY, 3),
    ]
    assert history[1]["changes"] == {
        "title": ["Rifacimento condotta idrica", "Condotta DN300"],
        "status": ["planned", "active"],
    }
    assert history[2]["changes"] == {"approval": ["pending", "approved"]}
    assert history[0]["changes"]["owner"] == [None, WATER]
    for h in history:
        assert datetime.fromisoformat(h["at"]) >= before


def test_replanning_an_approved_worksite_sends_it_back_for_approval(api: Api) -> None:
    ws = api.create(WATER)
    api.client.post(f"/worksites/{ws['id']}/approve", headers=api.as_(MUNICIPALITY))
    moved = api.client.patch(
        f"/worksites/{ws['id']}", json={"planned_end": "2026-12-31T17:00:00Z"}, headers=api.as_(WATER)
    ).json()
    assert moved["approval"] == "pending"
    described = api.client.patch(
        f"/worksites/{ws['id']}", json={"description": "DN200"}, headers=api.as_(WATER)
    )
    assert described.json()["approval"] == "pending"


def test_an_update_on_a_stale_version_is_refused(api: Api) -> None:
    ws = api.create(WATER)
    api.client.patch(f"/worksites/{ws['id']}", json={"title": "First"}, headers=api.as_(WATER))
    response = api.client.patch(
        f"/worksites/{ws['id']}", json={"title": "Second"}, headers={**api.as_(WATER), "If-Match": "1"}
    )
    assert response.status_code == 409
    assert api.store.get(ws["id"]).title == "First"


def test_an_unknown_worksite_is_404(api: Api) -> None:
    assert api.client.get("/worksites/ws-nope", headers=api.as_(WATER)).status_code == 404
    assert api.client.get("/worksites/ws-nope/history", headers=api.as_(WATER)).status_code == 404


# --- feeds and coordination ----------------------------------------------------------------


def _iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def test_live_and_planned_layers_are_public_geojson_with_cors(api: Api) -> None:
    now = datetime.now(UTC)
    live = api.create(
        WATER,
        status="active",
        planned_start=_iso(now - timedelta(days=2)),
        planned_end=_iso(now + timedelta(days=2)),
    )
    soon = api.create(
        GAS,
        work_type="gas",
        planned_start=_iso(now + timedelta(days=10)),
        planned_end=_iso(now + timedelta(days=12)),
    )
    api.create(
        GAS,
        work_type="gas",
        planned_start=_iso(now + timedelta(days=40)),
        planned_end=_iso(now + timedelta(days=42)),
    )
    api.create(
        WATER,
        status="cancelled",
        planned_start=_iso(now - timedelta(days=1)),
        planned_end=_iso(now + timedelta(days=1)),
    )
    origin = {"Origin": "http://grafana.example:3000"}
    live_fc = api.client.get("/feeds/live.geojson", headers=origin)
    assert live_fc.status_code == 200
    assert live_fc.headers["access-control-allow-origin"] in ("*", origin["Origin"])
    body = live_fc.json()
    assert body["type"] == "FeatureCollection"
    assert [f["id"] for f in body["features"]] == [live["id"]]
    props = body["features"][0]["properties"]
    assert props["owner"] == WATER
    assert props["status"] == "active"
    assert 43.84 < props["lat"] < 43.92
    assert 11.04 < props["lon"] < 11.16
    planned = api.client.get("/feeds/planned.geojson").json()
    assert [f["id"] for f in planned["features"]] == [soon["id"]]


def test_conflicts_are_served_for_the_registry_and_for_one_worksite(api: Api) -> None:
    water = api.create(WATER)
    gas = api.create(
        GAS, work_type="gas", planned_start="2026-12-10T07:00:00Z", planned_end="2026-12-24T17:00:00Z"
    )
    found = api.client.get("/conflicts", headers=api.as_(MUNICIPALITY)).json()
    assert [(c["finding"], {c["first"], c["second"]}) for c in found] == [
        ("conflict", {water["id"], gas["id"]})
    ]
    mine = api.client.get(f"/worksites/{gas['id']}/conflicts", headers=api.as_(GAS)).json()
    assert mine == found


def test_a_worksite_is_available_as_an_ngsi_ld_citywork_entity(api: Api) -> None:
    # The exchange's CityWork mapping (cloud/exchange/entities.py), the one the export uses.
    ws = api.create(WATER)
    entity = api.client.get(f"/worksites/{ws['id']}/ngsi-ld", headers=api.as_(WATER)).json()
    assert entity["type"] == "CityWork"
    assert entity["id"] == f"urn:ngsi-ld:CityWork:{ws['owner']}:{ws['id']}"
    assert entity["location"] == {"type": "GeoProperty", "value": ws["geometry"]}
    assert entity["workType"]["value"] == "water"


def test_the_openapi_document_describes_the_worksite_routes(api: Api) -> None:
    paths = api.client.get("/openapi.json").json()["paths"]
    assert {"/worksites", "/worksites/{worksite_id}", "/feeds/live.geojson", "/conflicts"} <= set(paths)
