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
from dataclasses import dataclass
from typing import Any

import shapely
from shapely.geometry import MultiLineString, Point
from shapely.geometry.base import BaseGeometry

from cloud.core.geo import LocalProjection
from cloud.transit import network
from cloud.transit.store import TransitStore

DEFAULT_WITHIN_M = 30.0
RouteKey = tuple[str, str]  # (operator, route_id)
StopKey = tuple[str, str]  # (operator, stop_id)


@dataclass(frozen=True, slots=True)
class NearRoute:
    operator: str
    route_id: str
    distance_m: float


@dataclass(frozen=True, slots=True)
class StopIn:
    operator: str
    stop_id: str
    distance_m: float  # 0 inside the worksite's area


@dataclass(frozen=True, slots=True)
class Impact:
    routes: tuple[NearRoute, ...]  # nearest first
    stops: tuple[StopIn, ...]

    @property
    def is_empty(self) -> bool:
        return not self.routes and not self.stops


def _projection(geom: BaseGeometry) -> LocalProjection:
    centre = geom.centroid
    return LocalProjection(centre.x, centre.y)


def impact(
    worksite: BaseGeometry,
    routes: Mapping[RouteKey, BaseGeometry],
    stops: Mapping[StopKey, tuple[float, float]],
    *,
    within_m: float = DEFAULT_WITHIN_M,
) -> Impact:
    """The routes (lines) within `within_m` of `worksite`, and the stops (lon, lat) in it."""
    if within_m < 0:
        raise ValueError(f"within_m: {within_m} must not be negative")
    projection = _projection(worksite)
    site = projection.to_metres(worksite)
    zone = site.buffer(within_m)
    near = []
    for (operator, route_id), line in routes.items():
        metres = projection.to_metres(line)
        if zone.intersects(metres):
            near.append(NearRoute(operator, route_id, round(float(site.distance(metres)), 1)))
    has_area = site.area > 0
    inside = []
    for (operator, stop_id), (lon, lat) in stops.items():
        point = projection.to_metres(Point(lon, lat))
        if (has_area and site.covers(point)) or (not has_area and zone.covers(point)):
            inside.append(StopIn(operator, stop_id, round(float(site.distance(point)), 1)))
    near.sort(key=lambda r: (r.distance_m, r.operator, r.route_id))
    inside.sort(key=lambda s: (s.distance_m, s.operator, s.stop_id))
    return Impact(tuple(near), tuple(inside))


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
) -> Impact:
    """`impact` on the current feeds, keeping only what can be near (a bounding-box pre-filter)."""
    lines, stops = network_of(store, operator)
    margin_deg = within_m / 111_000 * 2 + 1e-4  # generous: the exact test is in metres
    box = shapely.box(*worksite.bounds).buffer(margin_deg)
    lines = {k: v for k, v in lines.items() if box.intersects(v)}
    stops = {k: v for k, v in stops.items() if box.covers(Point(*v))}
    return impact(worksite, lines, stops, within_m=within_m)
