"""Worksites on bus lines: a line through the worksite is affected, a parallel street 100 m away is not."""

from __future__ import annotations

import pytest
from shapely.geometry import LineString, Point, Polygon
from support_transit import OPERATOR

from cloud.transit.impact import impact, worksite_impact
from cloud.transit.store import TransitStore

M_LAT = 1 / 111_132  # a metre north, in degrees
LAT0, LON0 = 43.8778, 11.1000  # Viale Piave
M_LON = 1 / (111_132 * 0.7212)  # a metre east at 43.88° (cos 43.88° ≈ 0.7212)


def box(west_m: float, south_m: float, east_m: float, north_m: float) -> Polygon:
    """A rectangle in metres around Viale Piave."""
    w, e = LON0 + west_m * M_LON, LON0 + east_m * M_LON
    s, n = LAT0 + south_m * M_LAT, LAT0 + north_m * M_LAT
    return Polygon([(w, s), (e, s), (e, n), (w, n), (w, s)])


def east_west(north_m: float) -> LineString:
    """A street running east-west for 600 m, `north_m` metres north of Viale Piave."""
    lat = LAT0 + north_m * M_LAT
    return LineString([(LON0 - 300 * M_LON, lat), (LON0 + 300 * M_LON, lat)])


# A 60 m x 20 m worksite across the carriageway of Viale Piave.
WORKSITE = box(-30, -10, 30, 10)
ROUTES = {(OPERATOR, "THROUGH"): east_west(0), (OPERATOR, "PARALLEL"): east_west(100)}
STOPS = {
    (OPERATOR, "IN-WORKSITE"): (LON0 + 5 * M_LON, LAT0 + 2 * M_LAT),
    (OPERATOR, "ON-PARALLEL"): (LON0, LAT0 + 100 * M_LAT),
    (OPERATOR, "BESIDE"): (LON0 + 45 * M_LON, LAT0),  # on the line, 15 m past the worksite's end
}


def test_a_line_through_the_worksite_is_affected_and_a_parallel_street_100_m_away_is_not() -> None:
    found = impact(WORKSITE, ROUTES, STOPS)

    assert [(r.route_id, r.distance_m) for r in found.routes] == [("THROUGH", 0.0)]
    assert [s.stop_id for s in found.stops] == ["IN-WORKSITE"]


def test_a_wider_distance_reaches_the_parallel_street_at_about_90_metres() -> None:
    found = impact(WORKSITE, ROUTES, STOPS, within_m=120)

    assert [r.route_id for r in found.routes] == ["THROUGH", "PARALLEL"]
    assert found.routes[1].distance_m == pytest.approx(90.0, abs=0.5)  # 100 m minus the worksite's 10 m


def test_a_worksite_drawn_as_a_line_affects_the_stops_within_the_distance() -> None:
    kerb = LineString([(LON0 - 30 * M_LON, LAT0), (LON0 + 30 * M_LON, LAT0)])

    found = impact(kerb, ROUTES, STOPS)

    assert [s.stop_id for s in found.stops] == ["IN-WORKSITE", "BESIDE"]
    assert [r.route_id for r in found.routes] == ["THROUGH"]


def test_a_worksite_far_from_every_line_affects_nothing() -> None:
    assert impact(Point(LON0, LAT0 + 500 * M_LAT).buffer(20 * M_LAT), ROUTES, STOPS).is_empty


def test_a_negative_distance_is_refused() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        impact(WORKSITE, ROUTES, STOPS, within_m=-1)


def test_a_worksite_at_viale_piave_affects_the_three_lines_that_stop_there_in_prato(
    prato_store: TransitStore,
) -> None:
    # The Prato network: LAM Blu, 2 and the Circolare stop at Viale Piave; LAM Rossa turns at
    # Piazza San Marco, 230 m east.
    found = worksite_impact(prato_store, box(-25, -15, 25, 15))

    assert {r.route_id for r in found.routes} == {"LAM-BLU", "2", "CIRC"}
    assert [s.stop_id for s in found.stops] == ["PO-PIAVE"]
