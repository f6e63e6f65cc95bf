"""Conflict, synergy and redig detection on hand-built cases, and the index against brute force."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import shapely

from cloud.core.geo import ServiceAreas
from cloud.core.metres import EARTH_M_PER_DEG_LAT
from cloud.worksites.conflicts import CoordinationSettings, Finding, detect, to_alerts
from cloud.worksites.models import Worksite
from edge.contract import topics

T0 = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)
DAY = timedelta(days=1)
LAT = 43.8800
LON0, LON1 = 11.0900, 11.0960  # ~480 m of an east-west street


def metres_to_lat(m: float) -> float:
    return m / EARTH_M_PER_DEG_LAT


def site(
    ws_id: str,
    owner: str,
    start_day: float,
    end_day: float,
    *,
    lat: float = LAT,
    geometry: dict[str, Any] | None = None,
    street: str = "Via Roma",
    **extra: Any,
) -> Worksite:
    return Worksite.model_validate(
        {
            "id": ws_id,
            "owner": owner,
            "title": ws_id,
            "street": street,
            "work_type": "water",
            "geometry": geometry or {"type": "LineString", "coordinates": [[LON0, lat], [LON1, lat]]},
            "planned_start": T0 + start_day * DAY,
            "planned_end": T0 + end_day * DAY,
            "created_at": T0 - 30 * DAY,
            "updated_at": T0 - 30 * DAY,
            **extra,
        }
    )


def findings(*sites: Worksite, **settings: float) -> list[tuple[Finding, str, str]]:
    return [(c.finding, c.first, c.second) for c in detect(sites, CoordinationSettings(**settings))]


def test_two_organisations_on_the_same_street_at_overlapping_times_conflict() -> None:
    a = site("a", "publiacqua", 0, 20)
    b = site("b", "toscana-energia", 10, 30)
    found = detect([a, b])
    assert [(c.finding, c.first, c.second) for c in found] == [(Finding.CONFLICT, "a", "b")]
    assert found[0].gap_days == pytest.approx(-10)
    assert found[0].distance_m == pytest.approx(0)


def test_parallel_streets_100_m_apart_are_not_the_same_segment() -> None:
    a = site("a", "publiacqua", 0, 20)
    b = site("b", "toscana-energia", 0, 20, lat=LAT + metres_to_lat(100), street="Via Parallela")
    assert findings(a, b) == []


def test_the_same_street_two_months_apart_is_a_synergy() -> None:
    a = site("a", "publiacqua", 0, 10)
    b = site("b", "toscana-energia", 70, 80)
    found = detect([b, a])
    assert [(c.finding, c.first, c.second) for c in found] == [(Finding.SYNERGY, "a", "b")]
    assert found[0].gap_days == pytest.approx(60)
    assert "share one excavation" in found[0].message


def test_windows_further_apart_than_the_synergy_gap_are_not_flagged() -> None:
    assert findings(site("a", "publiacqua", 0, 10), site("b", "alia", 101, 110)) == []
    assert findings(site("a", "publiacqua", 0, 10), site("b", "alia", 101, 110), synergy_gap_days=120) == [
        (Finding.SYNERGY, "a", "b")
    ]


def test_a_street_reopened_recently_and_dug_again_is_a_redig_even_by_the_same_owner() -> None:
    paved = site(
        "paved",
        "comune-prato",
        -90,
        -60,
        status="completed",
        actual_start=T0 - 90 * DAY,
        actual_end=T0 - 61 * DAY,
    )
    dig = site("dig", "toscana-energia", 14, 16)
    own = site("own", "comune-prato", 30, 31)
    assert findings(paved, dig, own) == [
        (Finding.SYNERGY, "dig", "own"),  # and the two new digs could share a trench
        (Finding.REDIG, "paved", "dig"),
        (Finding.REDIG, "paved", "own"),
    ]


def test_a_street_reopened_long_ago_may_be_dug_again() -> None:
    old = site("old", "comune-prato", -800, -790, status="completed")
    assert findings(old, site("dig", "toscana-energia", 14, 16)) == []


def test_the_same_organisation_overlapping_itself_is_its_own_planning() -> None:
    assert findings(site("a", "publiacqua", 0, 20), site("b", "publiacqua", 5, 25)) == []


def test_cancelled_worksites_take_part_in_nothing() -> None:
    assert findings(site("a", "publiacqua", 0, 20), site("b", "alia", 5, 25, status="cancelled")) == []


def test_the_buffer_decides_what_is_the_same_segment() -> None:
    a = site("a", "publiacqua", 0, 20)
    near = site("near", "alia", 0, 20, lat=LAT + metres_to_lat(20))
    far = site("far", "open-fiber", 0, 20, lat=LAT + metres_to_lat(30))
    assert findings(a, near, far) == [(Finding.CONFLICT, "a", "near"), (Finding.CONFLICT, "far", "near")]
    assert findings(a, near, far, buffer_m=5) == []


def test_a_point_worksite_on_a_line_worksite_conflicts_and_polygons_count_by_their_area() -> None:
    line = site("line", "publiacqua", 0, 20)
    point = site("point", "toscana-energia", 1, 2, geometry={"type": "Point", "coordinates": [11.0930, LAT]})
    square = site(
        "square",
        "alia",
        3,
        4,
        geometry={
            "type": "Polygon",
            "coordinates": [[[11.0925, LAT - 0.0005], [11.0935, LAT - 0.0005], [11.0935, LAT + 0.0005],
                             [11.0925, LAT + 0.0005], [11.0925, LAT - 0.0005]]],
        },
    )  # fmt: skip
    assert {(f, a, b) for f, a, b in findings(line, point, square)} == {
        (Finding.CONFLICT, "line", "point"),
        (Finding.CONFLICT, "line", "square"),
        (Finding.SYNERGY, "point", "square"),
    }


def test_findings_become_alerts_for_each_organisation_on_the_contract_topics() -> None:
    found = detect([site("ws-a", "publiacqua", 0, 20), site("ws-b", "toscana-energia", 10, 30)])
    alerts = to_alerts(found, T0)
    assert [a.topic for a in alerts] == [
        topics.alert("publiacqua", "worksite-conflict", "ws-a--ws-b"),
        topics.alert("toscana-energia", "worksite-conflict", "ws-a--ws-b"),
    ]
    assert alerts[0].topic == "sr/v1/alerts/publiacqua/worksite-conflict/ws-a--ws-b"
    assert all(a.state == "firing" and a.severity == "warning" for a in alerts)


def _brute_force(sites: list[Worksite], buffer_m: float) -> set[tuple[str, str]]:
    projection = ServiceAreas.load().projection
    geoms = [projection.to_metres(shapely.geometry.shape(w.geometry)) for w in sites]
    near = set()
    for i in range(len(sites)):
        for j in range(i + 1, len(sites)):
            if geoms[i].distance(geoms[j]) <= buffer_m:
                near.add(tuple(sorted((sites[i].id, sites[j].id))))
    return near


def test_the_spatial_index_finds_the_same_pairs_as_comparing_all_pairs() -> None:
    rng = random.Random(8)
    owners = ["comune-prato", "publiacqua", "toscana-energia", "alia", "open-fiber"]
    sites = []
    for n in range(250):
        lon = rng.uniform(11.08, 11.10)
        lat = rng.uniform(43.87, 43.885)
        length = rng.uniform(0.0005, 0.003)
        geometry = {
            "type": "LineString",
            "coordinates": [[lon, lat], [lon + length, lat + rng.uniform(-0.001, 0.001)]],
        }
        start = rng.uniform(-60, 60)
        sites.append(site(f"w{n}", rng.choice(owners), start, start + rng.uniform(1, 30), geometry=geometry))
    settings = CoordinationSettings(buffer_m=25, synergy_gap_days=10**6, redig_days=0)
    found = detect(sites, settings, projection=ServiceAreas.load().projection)
    flagged = {tuple(sorted((c.first, c.second))) for c in found}
    owner = {w.id: w.owner for w in sites}
    expected = {p for p in _brute_force(sites, 25) if owner[p[0]] != owner[p[1]]}
    assert flagged == expected
    assert len(expected) > 20  # the case is not vacuous
