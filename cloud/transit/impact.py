"""Worksites on bus lines: the routes whose shapes pass near a worksite, the stops inside it.

Pure functions on shapely geometries in WGS84 (GeoJSON `[lon, lat]`), measured in metres in a
local projection (the worksite registry's own, `cloud.core.geo.LocalProjection`, over a
city its scale error is under 0.1 %). A route is affected when any of its shapes comes within
`within_m` of the worksite's geometry (a carriageway's width: a parallel street a block away
is not); a stop is affected when it stands inside the worksite's area, or, for a worksite
drawn as a line or a point, within `within_m` of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import shapely
from shapely.geometry import MultiLineString, Point
from shapely.geometry.base import BaseGeometry

from cloud.core.transit import DEFAULT_WITHIN_M, StopRef, TransitImpact, impact_of
from cloud.transit import network
from cloud.transit.store import TransitStore

RouteKey = tuple[str, str]  # (operator, route_id)
StopKey = tuple[str, str]  # (operator, stop_id)


def impact(
    worksite: BaseGeometry,
    routes: Mapping[RouteKey, BaseGeometry],
    stops: Mapping[StopKey, tuple[float, float]],
    *,
    within_m: float = DEFAULT_WITHIN_M,
) -> TransitImpact:
    """The routes (lines) within `within_m` of `worksite`, and the stops (lon, lat) in it."""
    return impact_of(
        worksite,
        [(operator, route_id, route_id, line) for (operator, route_id), line in routes.items()],
        [
            StopRef(operator, stop_id, stop_id, lat, lon, 0.0)
            for (operator, stop_id), (lon, lat) in stops.items()
        ],
        within_m,
    )


def network_of(
    store: TransitStore, operator: str | None = None
) -> tuple[dict[RouteKey, BaseGeometry], dict[StopKey, tuple[float, float]]]:
    """The current feeds' route lines and stop positions, as `impact` takes them."""
    collection: dict[str, Any] = network.routes_geojson(store, operator)
    lines: dict[RouteKey, BaseGeometry] = {
        (f["properties"]["operator"], f["properties"]["route_id"]): MultiLineString(
            f["geometry"]["coordinates"]
        )
        for f in collection["features"]
    }
    stops = {
        (s.operator, s.stop_id): (s.lon, s.lat)
        for s in network.stops(store, operator)
        if s.lon is not None and s.lat is not None
    }
    return lines, stops


def worksite_impact(
    store: TransitStore,
    worksite: BaseGeometry,
    *,
    operator: str | None = None,
    within_m: float = DEFAULT_WITHIN_M,
) -> TransitImpact:
    """`impact` on the current feeds, keeping only what can be near (a bounding-box pre-filter)."""
    lines, stops = network_of(store, operator)
    margin_deg = within_m / 111_000 * 2 + 1e-4  # generous: the exact test is in metres
    box = shapely.box(*worksite.bounds).buffer(margin_deg)
    lines = {k: v for k, v in lines.items() if box.intersects(v)}
    stops = {k: v for k, v in stops.items() if box.covers(Point(*v))}
    return impact(worksite, lines, stops, within_m=within_m)
