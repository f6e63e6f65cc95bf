"""What the current feeds say about the network: routes, stops, trips, and their GeoJSON.

GeoJSON (RFC 7946, `[lon, lat]`) for Grafana's Geomap and the console map: stops as points whose
feature id is the stop's contract id (the `sensor` tag of `transit_delay` points, so a map can
join delays to stops), routes as multi-lines of their shapes (or, for a feed without shapes,
of the stops of one trip per direction).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa

from cloud.transit import schema
from cloud.transit.store import TransitStore, UnknownError
from edge.contract.gtfs.ids import sensor_id, tag_value
from edge.contract.gtfs.times import format_time


@dataclass(frozen=True, slots=True)
class RouteInfo:
    operator: str
    route_id: str
    short_name: str
    long_name: str
    route_type: int
    color: str | None
    trips: int

    @property
    def name(self) -> str:
        return self.short_name or self.long_name


@dataclass(frozen=True, slots=True)
class StopInfo:
    operator: str
    stop_id: str
    name: str
    lat: float | None
    lon: float | None
    routes: tuple[str, ...]  # route_ids serving it


def _operators(store: TransitStore, operator: str | None) -> dict[int, str]:
    feeds = store.current_feeds()
    if operator is not None:
        if operator not in feeds:
            raise UnknownError("operator", operator, sorted(feeds))
        return {feeds[operator].id: operator}
    return {f.id: op for op, f in feeds.items()}


def routes(store: TransitStore, operator: str | None = None) -> list[RouteInfo]:
    ops = _operators(store, operator)
    r, t = schema.routes, schema.trips
    trips = sa.select(t.c.feed_id, t.c.route_id, sa.func.count().label("n")).group_by(
        t.c.feed_id, t.c.route_id
    )
    counted = trips.subquery()
    q = (
        sa.select(r, counted.c.n)
        .join(
            counted,
            sa.and_(counted.c.feed_id == r.c.feed_id, counted.c.route_id == r.c.route_id),
            isouter=True,
        )
        .where(r.c.feed_id.in_(ops))
        .order_by(r.c.feed_id, r.c.route_id)
    )
    with store.engine.connect() as conn:
        return [
            RouteInfo(
                ops[row.feed_id],
                row.route_id,
                row.route_short_name or "",
                row.route_long_name or "",
                row.route_type,
                row.route_color,
                int(row.n or 0),
            )
            for row in conn.execute(q)
        ]


def _stop_routes(store: TransitStore, feed_ids: list[int]) -> dict[tuple[int, str], list[str]]:
    st, t = schema.stop_times, schema.trips
    q = (
        sa.select(st.c.feed_id, st.c.stop_id, t.c.route_id)
        .join(t, sa.and_(t.c.feed_id == st.c.feed_id, t.c.trip_id == st.c.trip_id))
        .where(st.c.feed_id.in_(feed_ids))
        .distinct()
    )
    out: dict[tuple[int, str], list[str]] = defaultdict(list)
    with store.engine.connect() as conn:
        for feed_id, stop_id, route_id in conn.execute(q):
            out[(feed_id, stop_id)].append(route_id)
    return out


def stops(store: TransitStore, operator: str | None = None) -> list[StopInfo]:
    ops = _operators(store, operator)
    serving = _stop_routes(store, list(ops))
    s = schema.stops
    q = sa.select(s).where(s.c.feed_id.in_(ops)).order_by(s.c.feed_id, s.c.stop_id)
    with store.engine.connect() as conn:
        return [
            StopInfo(
                ops[row.feed_id],
                row.stop_id,
                row.stop_name or "",
                row.stop_lat,
                row.stop_lon,
                tuple(sorted(serving.get((row.feed_id, row.stop_id), []))),
            )
            for row in conn.execute(q)
        ]


def stops_geojson(store: TransitStore, operator: str | None = None) -> dict[str, Any]:
    features = [
        {
            "type": "Feature",
            "id": sensor_id(stop.stop_id),
            "geometry": {"type": "Point", "coordinates": [stop.lon, stop.lat]},
            "properties": {
                "operator": stop.operator,
                "stop_id": stop.stop_id,
                "name": stop.name,
                "routes": list(stop.routes),
            },
        }
        for stop in stops(store, operator)
        if stop.lat is not None and stop.lon is not None
    ]
    return {"type": "FeatureCollection", "features": features}


def _route_lines(store: TransitStore, feed_ids: list[int]) -> dict[tuple[int, str], list[list[list[float]]]]:
    """Per route, its lines: the shapes its trips follow, else one trip's stops per direction."""
    t, sh, st, s = schema.trips, schema.shapes, schema.stop_times, schema.stops
    lines: dict[tuple[int, str], list[list[list[float]]]] = defaultdict(list)
    with store.engine.connect() as conn:
        q = (
            sa.select(t.c.feed_id, t.c.route_id, sh.c.coordinates)
            .join(sh, sa.and_(sh.c.feed_id == t.c.feed_id, sh.c.shape_id == t.c.shape_id))
            .where(t.c.feed_id.in_(feed_ids))
            .distinct()
            .order_by(t.c.feed_id, t.c.route_id, sh.c.coordinates)
        )
        for feed_id, route_id, coordinates in conn.execute(q):
            lines[(feed_id, route_id)].append(orjson.loads(coordinates))
        # Routes without shapes: the stops of their first trip in each direction.
        first = (
            sa.select(t.c.feed_id, t.c.route_id, sa.func.min(t.c.trip_id).label("trip_id"))
            .where(t.c.feed_id.in_(feed_ids))
            .group_by(t.c.feed_id, t.c.route_id, t.c.direction_id)
            .subquery()
        )
        q2 = (
            sa.select(first.c.feed_id, first.c.route_id, first.c.trip_id, s.c.stop_lon, s.c.stop_lat)
            .join(st, sa.and_(st.c.feed_id == first.c.feed_id, st.c.trip_id == first.c.trip_id))
            .join(s, sa.and_(s.c.feed_id == st.c.feed_id, s.c.stop_id == st.c.stop_id))
            .order_by(first.c.feed_id, first.c.trip_id, st.c.stop_sequence)
        )
        by_trip: dict[tuple[int, str, str], list[list[float]]] = defaultdict(list)
        for feed_id, route_id, trip_id, lon, lat in conn.execute(q2):
            if (feed_id, route_id) not in lines and lon is not None and lat is not None:
                by_trip[(feed_id, route_id, trip_id)].append([lon, lat])
        for (feed_id, route_id, _trip), coords in by_trip.items():
            if len(coords) >= 2:
                lines[(feed_id, route_id)].append(coords)
    return lines


def routes_geojson(store: TransitStore, operator: str | None = None) -> dict[str, Any]:
    ops = _operators(store, operator)
    lines = _route_lines(store, list(ops))
    r = schema.routes
    features = []
    with store.engine.connect() as conn:
        for row in conn.execute(sa.select(r).where(r.c.feed_id.in_(ops)).order_by(r.c.feed_id, r.c.route_id)):
            coordinates = lines.get((row.feed_id, row.route_id))
            if not coordinates:
                continue
            features.append(
                {
                    "type": "Feature",
                    "id": tag_value(row.route_id),
                    "geometry": {"type": "MultiLineString", "coordinates": coordinates},
                    "properties": {
                        "operator": ops[row.feed_id],
                        "route_id": row.route_id,
                        "short_name": row.route_short_name or "",
                        "long_name": row.route_long_name or "",
                        "route_type": row.route_type,
                        "color": f"#{row.route_color}" if row.route_color else None,
                        "text_color": f"#{row.route_text_color}" if row.route_text_color else None,
                    },
                }
            )
    return {"type": "FeatureCollection", "features": features}


@dataclass(frozen=True, slots=True)
class TripStop:
    stop_sequence: int
    stop_id: str
    stop_name: str
    arrival: str
    departure: str


def trip_stops(store: TransitStore, operator: str, trip_id: str) -> list[TripStop]:
    feed = store.current_feed(operator)
    st, s = schema.stop_times, schema.stops
    q = (
        sa.select(st.c.stop_sequence, st.c.stop_id, s.c.stop_name, st.c.arrival_s, st.c.departure_s)
        .join(s, sa.and_(s.c.feed_id == st.c.feed_id, s.c.stop_id == st.c.stop_id))
        .where(st.c.feed_id == feed.id, st.c.trip_id == trip_id)
        .order_by(st.c.stop_sequence)
    )
    with store.engine.connect() as conn:
        return [
            TripStop(
                row.stop_sequence,
                row.stop_id,
                row.stop_name or "",
                format_time(row.arrival_s) if row.arrival_s is not None else "",
                format_time(row.departure_s) if row.departure_s is not None else "",
            )
            for row in conn.execute(q)
        ]
