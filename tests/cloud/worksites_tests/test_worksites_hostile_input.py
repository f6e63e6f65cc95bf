"""Hostile input to the worksite API is refused with a clear error and changes nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa

from .registry import MUNICIPALITY, WATER, Api, payload

INJECTIONS = [
    "'; DROP TABLE ws_worksites; --",
    "x' OR '1'='1",
    "Robert'); DELETE FROM ws_history; --",
    "\"; UPDATE ws_worksites SET owner='alia'; --",
]


def _snapshot(api: Api) -> dict[str, Any]:
    with api.store.engine.connect() as conn:
        tables = {
            name: conn.execute(sa.text(f"SELECT COUNT(*) FROM {name}")).scalar_one()
            for name in ("ws_worksites", "ws_history", "ws_organisations", "ws_api_tokens")
        }
    return {"tables": tables, "worksites": [w.model_dump(mode="json") for w in api.store.search()]}


@pytest.fixture
def seeded(api: Api) -> Api:
    api.create(WATER)
    api.create(MUNICIPALITY, owner="toscana-energia", work_type="gas")
    return api


def _post_raw(api: Api, body: bytes, org: str = WATER) -> Any:
    return api.client.post(
        "/worksites", content=body, headers={**api.as_(org), "Content-Type": "application/json"}
    )


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"", b"[1, 2, 3]", b'"a string"', b'{"title": NaN}', b"\xff\xfe\x00garbage"],
    ids=["broken", "empty", "array", "string", "nan", "binary"],
)
def test_a_body_that_is_not_a_json_object_is_refused_and_changes_nothing(seeded: Api, body: bytes) -> None:
    before = _snapshot(seeded)
    response = _post_raw(seeded, body)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"]
    assert _snapshot(seeded) == before


@pytest.mark.parametrize(
    ("geometry", "reason"),
    [
        (
            {
                "type": "Polygon",
                "coordinates": [
                    [[11.09, 43.88], [11.095, 43.885], [11.095, 43.88], [11.09, 43.885], [11.09, 43.88]]
                ],
            },
            "Self-intersection",
        ),
        (
            {"type": "Polygon", "coordinates": [[[11.09, 43.88], [11.095, 43.885], [11.095, 43.88]]]},
            "Polygon",
        ),
        ({"type": "FeatureCollection", "features": []}, "type must be one of"),
        ({"type": "Point", "coordinates": [11.09, 43.88], "crs": {"type": "name"}}, "unexpected members"),
        ({"type": "Point", "coordinates": [float("inf"), 43.88]}, "geometry"),
        ({"type": "LineString", "coordinates": [[11.09, 43.88]]}, "LineString"),
        ({"type": "Point", "coordinates": [2.35, 48.85]}, "outside every configured area"),
        ({"type": "MultiPoint", "coordinates": [[11.09, 43.88]] * 20_001}, "too many vertices"),
    ],
    ids=[
        "bowtie",
        "open-ring",
        "not-a-geometry",
        "crs-member",
        "infinity",
        "one-point-line",
        "paris",
        "huge",
    ],
)
def test_bad_geometry_is_refused_naming_geometry_and_the_reason(
    seeded: Api, geometry: dict[str, Any], reason: str
) -> None:
    before = _snapshot(seeded)
    body = json.dumps(payload(geometry=geometry)).replace("Infinity", "1e999").encode()
    response = _post_raw(seeded, body)
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert errors[0]["field"] == "geometry"
    if reason != "geometry":
        assert reason in errors[0]["message"]
    assert _snapshot(seeded) == before


def test_end_before_start_is_refused_on_create_and_on_update(seeded: Api) -> None:
    before = _snapshot(seeded)
    response = seeded.client.post(
        "/worksites", json=payload(planned_end="2026-11-01T00:00:00Z"), headers=seeded.as_(WATER)
    )
    assert response.status_code == 422
    assert "must be after planned_start" in response.json()["detail"]
    ws_id = before["worksites"][0]["id"]
    response = seeded.client.patch(
        f"/worksites/{ws_id}",
        json={"planned_start": "2027-06-01T00:00:00Z"},
        headers=seeded.as_(MUNICIPALITY),
    )
    assert response.status_code == 422
    assert _snapshot(seeded) == before


@pytest.mark.parametrize("text", INJECTIONS)
def test_sql_injection_text_is_stored_verbatim_as_text_and_harms_nothing(seeded: Api, text: str) -> None:
    before = _snapshot(seeded)
    created = seeded.create(WATER, title=text, description=text, street=text)
    assert seeded.client.get(f"/worksites/{created['id']}", headers=seeded.as_(WATER)).json()["title"] == text
    after = _snapshot(seeded)
    assert after["tables"]["ws_worksites"] == before["tables"]["ws_worksites"] + 1
    assert after["tables"]["ws_organisations"] == before["tables"]["ws_organisations"]
    assert [w for w in after["worksites"] if w["id"] != created["id"]] == before["worksites"]


@pytest.mark.parametrize("text", INJECTIONS)
def test_sql_injection_in_ids_and_filters_is_refused_and_changes_nothing(seeded: Api, text: str) -> None:
    before = _snapshot(seeded)
    headers = seeded.as_(MUNICIPALITY)
    for params in ({"owner": text}, {"status": text}, {"bbox": text}, {"start": text}):
        response = seeded.client.get("/worksites", params=params, headers=headers)
        assert response.status_code == 422, (params, response.text)
    street = seeded.client.get("/worksites", params={"street": text}, headers=headers)
    assert street.status_code == 200
    assert street.json()["count"] == 0
    path = seeded.client.patch(f"/worksites/{text}", json={"title": "x"}, headers=headers)
    assert path.status_code in (404, 422)
    created = seeded.client.post("/worksites", json=payload(id=text), headers=headers)
    assert created.status_code == 422
    assert created.json()["errors"][0]["field"] == "id"
    assert _snapshot(seeded) == before


def test_a_10_mb_body_is_refused_before_it_is_read_and_changes_nothing(seeded: Api) -> None:
    before = _snapshot(seeded)
    big = json.dumps(payload(description="x" * (10 * 1024 * 1024))).encode()
    response = _post_raw(seeded, big)
    assert response.status_code == 413
    assert "request body over" in response.json()["detail"]
    assert _snapshot(seeded) == before


def test_a_chunked_body_without_length_is_cut_off_at_the_limit_too(seeded: Api) -> None:
    before = _snapshot(seeded)

    def chunks() -> Any:
        yield b'{"title": "'
        for _ in range(10 * 1024):
            yield b"x" * 1024
        yield b'"}'

    response = seeded.client.post(
        "/worksites", content=chunks(), headers={**seeded.as_(WATER), "Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert _snapshot(seeded) == before


def test_an_oversized_text_field_under_the_body_limit_is_refused_by_name(seeded: Api) -> None:
    before = _snapshot(seeded)
    response = seeded.client.post(
        "/worksites", json=payload(description="x" * 100_000), headers=seeded.as_(WATER)
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "description"
    assert _snapshot(seeded) == before


def test_a_wzdx_import_of_garbage_is_refused_and_changes_nothing(seeded: Api) -> None:
    before = _snapshot(seeded)
    headers = seeded.as_(MUNICIPALITY)
    for body in ({"type": "Feature"}, {"type": "FeatureCollection", "features": "many"},
                 {"type": "FeatureCollection", "features": [{"id": "x", "properties": {}}]}):  # fmt: skip
        response = seeded.client.post("/import/wzdx", json=body, headers=headers)
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["field"]
    assert _snapshot(seeded) == before


# --- issue 18 point 12: what were 500s are 4xx naming the field ------------------------------


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start": "0001-01-01T00:00:00+01:00"}, "start"),
        ({"end": "0001-01-01T00:00:00+01:00"}, "end"),
        ({"start": "9999-12-31T23:59:59-01:00"}, "start"),
        ({"start": "2026-01-01T00:00:00Z", "end": "9999-12-31T23:59:59-01:00"}, "end"),
    ],
    ids=["start-before-year-1", "end-before-year-1", "start-after-9999", "end-after-9999"],
)
def test_a_query_time_out_of_the_range_of_dates_is_refused_naming_it(
    seeded: Api, params: dict[str, str], field: str
) -> None:
    response = seeded.client.get("/worksites", params=params, headers=seeded.as_(WATER))

    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == [field]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [("1000", "longitude must be within"), ("1" + "0" * 400, "longitude must be within"),
     ("-1" + "0" * 400, "longitude must be within")],
    ids=["1000", "10**400", "-10**400"],
)  # fmt: skip
def test_a_coordinate_out_of_wgs84_is_refused_naming_the_geometry(seeded: Api, raw: str, reason: str) -> None:
    before = _snapshot(seeded)
    body = json.dumps(payload(geometry={"type": "Point", "coordinates": ["LON", 43.88]}))

    response = _post_raw(seeded, body.replace('"LON"', raw).encode())

    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "geometry"
    assert reason in response.json()["errors"][0]["message"]
    assert _snapshot(seeded) == before


@pytest.mark.parametrize("field", ["title", "street", "description", "permit_ref"])
def test_a_lone_surrogate_in_a_text_is_refused_naming_the_field(seeded: Api, field: str) -> None:
    before = _snapshot(seeded)
    body = json.dumps(payload(**{field: "Via SURROGATE"})).replace("SURROGATE", "\\ud800")

    response = _post_raw(seeded, body.encode())

    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == field
    assert "surrogate" in response.json()["errors"][0]["message"]
    assert _snapshot(seeded) == before


def test_a_lone_surrogate_in_an_update_is_refused_naming_the_field(seeded: Api) -> None:
    before = _snapshot(seeded)
    ws_id = before["worksites"][0]["id"]
    body = b'{"impact": {"detour": "Via \\ud800"}}'

    response = seeded.client.patch(
        f"/worksites/{ws_id}",
        content=body,
        headers={**seeded.as_(MUNICIPALITY), "Content-Type": "application/json"},
    )

    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "impact.detour"
    assert _snapshot(seeded) == before


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_a_date_out_of_range_in_utc_is_refused_naming_it(seeded: Api, when: str) -> None:
    before = _snapshot(seeded)

    response = seeded.client.post("/worksites", json=payload(planned_start=when), headers=seeded.as_(WATER))

    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "planned_start"
    assert _snapshot(seeded) == before


def test_an_if_match_version_beyond_any_integer_column_is_a_stale_version(seeded: Api) -> None:
    before = _snapshot(seeded)
    ws_id = before["worksites"][0]["id"]

    response = seeded.client.patch(
        f"/worksites/{ws_id}",
        json={"title": "x"},
        headers={**seeded.as_(MUNICIPALITY), "If-Match": str(2**70)},
    )

    assert response.status_code == 409, response.text
    assert _snapshot(seeded) == before
