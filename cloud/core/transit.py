"""Public transport as other features see it: the `TransitNetwork` protocol (routes near a
geometry, stops near a point, next departures toward a place), the latest real-time delay of
each trip (`DelayBook`), and what they answer.

The transit feature implements the protocol on an operator's imported GTFS feed
(`cloud/transit/lookup.py`); the wiring (`cloud/apps/`) hands it to the worksites (affected
routes and stops), the console, the rules (the park-and-ride hint, bus delays near worksites)
and the snapshot writer, none of which imports the transit feature. `ListedNetwork` is the
same protocol over a few stops and departures written out, for rule cases and tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from shapely.geometry import Point, shape
from shapely.geometry.base import BaseGeometry

from cloud.core.metres import LocalProjection, distance_m
from edge.contract import Reading, SensorKind
from edge.contract.gtfs.ids import sensor_id, tag_value

DEFAULT_WITHIN_M = 30.0  # a route passes a worksite: about a carriageway's width
DEFAULT_WALK_M = 400.0  # a stop is within walking distance of a car park (five minutes)


@dataclass(frozen=True, slots=True)
class RouteRef:
    """A route passing near something, `distance_m` away (0: through it)."""

    operator: str
    route_id: str
    name: str  # short name, else long name
    distance_m: float

    @property
    def tag(self) -> str:
        """The route as the `route` tag of its `transit_vehicle` and `transit_delay` readings."""
        return tag_value(self.route_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "operator": self.operator,
            "route_id": self.route_id,
            "name": self.name,
            "distance_m": self.distance_m,
        }


@dataclass(frozen=True, slots=True)
class StopRef:
    """A stop near (or inside) something, `distance_m` away, with the routes serving it."""

    operator: str
    stop_id: str
    name: str
    lat: float
    lon: float
    distance_m: float
    routes: tuple[str, ...] = ()

    @property
    def sensor(self) -> str:
        """The stop as the `sensor` of its `transit_delay` readings."""
        return sensor_id(self.stop_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "operator": self.operator,
            "stop_id": self.stop_id,
            "name": self.name,
            "lat": self.lat,
            "lon": self.lon,
            "distance_m": self.distance_m,
            "routes": list(self.routes),
        }


@dataclass(frozen=True, slots=True)
class TransitImpact:
    """What a worksite takes from public transport: the routes passing within the distance
    (nearest first) and the stops inside its area (or within the distance of a line or point)."""

    routes: tuple[RouteRef, ...] = ()
    stops: tuple[StopRef, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not self.routes and not self.stops

    def to_dict(self) -> dict[str, Any]:
        return {"routes": [r.to_dict() for r in self.routes], "stops": [s.to_dict() for s in self.stops]}

    def properties(self) -> dict[str, str]:
        """Flat GeoJSON properties for maps (Grafana's Geomap labels by top-level strings)."""
        return {
            "transit_routes": ", ".join(dict.fromkeys(r.name for r in self.routes)),
            "transit_stops": ", ".join(dict.fromkeys(s.name for s in self.stops)),
        }


@dataclass(frozen=True, slots=True)
class Departure:
    """A trip leaving `stop` at `scheduled`, alighting at `alight` at `arrival` (timetable);
    `delay_s` is its trip's real-time delay when known (None: timetable only)."""

    operator: str
    route_id: str
    route_name: str
    trip_id: str
    headsign: str
    stop_id: str
    stop_name: str
    scheduled: datetime
    alight_stop_id: str
    alight_stop_name: str
    arrival: datetime
    delay_s: int | None = None

    @property
    def expected(self) -> datetime:
        return self.scheduled + timedelta(seconds=self.delay_s or 0)

    @property
    def expected_arrival(self) -> datetime:
        return self.arrival + timedelta(seconds=self.delay_s or 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "operator": self.operator,
            "route_id": self.route_id,
            "route": self.route_name,
            "trip_id": self.trip_id,
            "headsign": self.headsign,
            "stop_id": self.stop_id,
            "stop": self.stop_name,
            "scheduled": self.scheduled.isoformat(),
            "delay_s": self.delay_s,
            "expected": self.expected.isoformat(),
            "alight_stop_id": self.alight_stop_id,
            "alight_stop": self.alight_stop_name,
            "arrival": self.expected_arrival.isoformat(),
        }


class TransitNetwork(Protocol):
    """The operators' current networks, for features that are not the transit feature."""

    def impact(self, geometry: Mapping[str, Any], within_m: float = DEFAULT_WITHIN_M) -> TransitImpact:
        """Routes within `within_m` of a GeoJSON geometry, and the stops in it."""
        ...

    def stops_near(self, lat: float, lon: float, radius_m: float) -> list[StopRef]:
        """Stops within `radius_m` of a point, nearest first."""
        ...

    def stop(self, operator: str, sensor: str) -> StopRef | None:
        """The stop whose `transit_delay` readings carry `sensor` (distance 0), or None."""
        ...

    def departures(
        self,
        stops: Sequence[StopRef],
        after: datetime,
        *,
        toward: tuple[float, float],
        walk_m: float = DEFAULT_WALK_M,
        horizon: timedelta = timedelta(hours=1),
        limit: int = 3,
    ) -> list[Departure]:
        """The next `limit` timetabled departures from `stops` in [after, after + horizon] whose
        trip later stops within `walk_m` of `toward` (lat, lon), nearer to it than where it
        boards; each alights at the trip's stop nearest `toward`. Soonest first."""
        ...


class NoTransit:
    """No network imported (or none wired): nothing is near, nothing departs."""

    def impact(self, geometry: Mapping[str, Any], within_m: float = DEFAULT_WITHIN_M) -> TransitImpact:
        return TransitImpact()

    def stops_near(self, lat: float, lon: float, radius_m: float) -> list[StopRef]:
        return []

    def stop(self, operator: str, sensor: str) -> StopRef | None:
        return None

    def departures(
        self,
        stops: Sequence[StopRef],
        after: datetime,
        *,
        toward: tuple[float, float],
        walk_m: float = DEFAULT_WALK_M,
        horizon: timedelta = timedelta(hours=1),
        limit: int = 3,
    ) -> list[Departure]:
        return []


# -- pure pieces both implementations share ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class TripStop:
    """One stop of a trip, with where it is and when the trip leaves it (aware UTC)."""

    stop_id: str
    name: str
    lat: float
    lon: float
    departure: datetime
    arrival: datetime


def alighting(
    remaining: Sequence[TripStop], board: TripStop, toward: tuple[float, float], walk_m: float
) -> TripStop | None:
    """Where a trip boarded at `board` is best left for `toward`: its later stop nearest to
    `toward`, when that is within `walk_m` of it and nearer than the boarding stop (a trip going
    away from the place is no way there)."""
    lat, lon = toward
    here = distance_m(board.lat, board.lon, lat, lon)
    best: tuple[float, TripStop] | None = None
    for stop in remaining:
        d = distance_m(stop.lat, stop.lon, lat, lon)
        if best is None or d < best[0]:
            best = (d, stop)
    if best is None or best[0] > walk_m or best[0] >= here:
        return None
    return best[1]


def impact_of(
    geometry: BaseGeometry,
    routes: Iterable[tuple[str, str, str, BaseGeometry]],
    stops: Iterable[StopRef],
    within_m: float,
) -> TransitImpact:
    """Routes (operator, route_id, name, line) within `within_m` of `geometry`, and the stops
    inside its area (for a line or a point: within `within_m`), measured in local metres."""
    if within_m < 0:
        raise ValueError(f"within_m: {within_m} must not be negative")
    centre = geometry.centroid
    projection = LocalProjection(centre.x, centre.y)
    site = projection.to_metres(geometry)
    zone = site.buffer(within_m)
    near = []
    for operator, route_id, name, line in routes:
        metres = projection.to_metres(line)
        if zone.intersects(metres):
            near.append(RouteRef(operator, route_id, name, round(float(site.distance(metres)), 1)))
    has_area = site.area > 0
    inside = []
    for s in stops:
        point = projection.to_metres(Point(s.lon, s.lat))
        if (has_area and site.covers(point)) or (not has_area and zone.covers(point)):
            inside.append(replace(s, distance_m=round(float(site.distance(point)), 1)))
    near.sort(key=lambda r: (r.distance_m, r.operator, r.route_id))
    inside.sort(key=lambda s: (s.distance_m, s.operator, s.stop_id))
    return TransitImpact(tuple(near), tuple(inside))


def stops_within(stops: Iterable[StopRef], lat: float, lon: float, radius_m: float) -> list[StopRef]:
    near = []
    for s in stops:
        d = distance_m(lat, lon, s.lat, s.lon)
        if d <= radius_m:
            near.append(replace(s, distance_m=round(d, 1)))
    return sorted(near, key=lambda s: (s.distance_m, s.operator, s.stop_id))


# -- real-time delays -------------------------------------------------------------------------


class DelayBook:
    """The latest real-time delay of each trip (operator, trip_id), from the `transit_vehicle`
    readings (its trip's current delay) and the `transit_delay` ones (the delay as it passed a
    stop), whichever is newer. A delay older than `max_age` is not used: trip ids repeat every
    service day, and a bus's delay an hour ago says little about now."""

    def __init__(self, max_age: timedelta = timedelta(minutes=30)) -> None:
        self.max_age = max_age
        self._latest: dict[tuple[str, str], tuple[datetime, int]] = {}

    def __len__(self) -> int:
        return len(self._latest)

    def note(self, operator: str, trip_id: str, delay_s: int, ts: datetime) -> None:
        key = (operator, trip_id)
        seen = self._latest.get(key)
        if seen is None or ts >= seen[0]:
            self._latest[key] = (ts, delay_s)

    def observe(self, reading: Reading) -> bool:
        """Note a transit reading's trip delay; False when it carries none."""
        if reading.kind not in (SensorKind.TRANSIT_VEHICLE, SensorKind.TRANSIT_DELAY):
            return False
        trip, delay = reading.fields.get("trip"), reading.fields.get("delay_s")
        if not isinstance(trip, str) or isinstance(delay, bool) or not isinstance(delay, int | float):
            return False
        if reading.fields.get("status", "scheduled") != "scheduled":
            return False  # a skipped or cancelled stop has no delay to carry on
        self.note(reading.org, trip, int(delay), reading.ts)
        return True

    def delay(self, operator: str, trip_id: str, at: datetime) -> int | None:
        seen = self._latest.get((operator, trip_id))
        if seen is None or not (at - self.max_age <= seen[0] <= at + self.max_age):
            return None
        return seen[1]

    def forget_before(self, ts: datetime) -> None:
        """Drop what is too old to be used at `ts` or later (bounded memory on a live stream)."""
        oldest = ts - self.max_age
        self._latest = {k: v for k, v in self._latest.items() if v[0] >= oldest}

    def apply(self, departures: Iterable[Departure], at: datetime) -> list[Departure]:
        """`departures` with their trips' real-time delays, re-sorted by expected time."""
        out = [replace(d, delay_s=self.delay(d.operator, d.trip_id, at)) for d in departures]
        return sorted(out, key=lambda d: (d.expected, d.route_name, d.trip_id))


# -- a network written out --------------------------------------------------------------------


class ListedNetwork:
    """`TransitNetwork` over routes, stops and trips given as plain data (rule cases, tests):

    routes: {route_id: {name, operator?, line: [[lon, lat], ...]}}
    stops:  {stop_id: {name, lat, lon, operator?}}
    trips:  [{trip, route, headsign?, operator?, stops: [[stop_id, ISO time or datetime], ...]}]
    """

    def __init__(
        self,
        routes: Mapping[str, Mapping[str, Any]],
        stops: Mapping[str, Mapping[str, Any]],
        trips: Sequence[Mapping[str, Any]],
        *,
        operator: str = "autolinee-toscane",
    ) -> None:
        self.operator = operator
        serving: dict[str, set[str]] = {}
        self.trips: list[tuple[str, str, str, str, list[TripStop]]] = []
        self._stops: dict[str, StopRef] = {
            stop_id: StopRef(
                str(s.get("operator", operator)), stop_id, str(s.get("name", stop_id)),
                float(s["lat"]), float(s["lon"]), 0.0,
            )
            for stop_id, s in stops.items()
        }  # fmt: skip
        for i, trip in enumerate(trips):
            calls = []
            for stop_id, when in trip["stops"]:
                if stop_id not in self._stops:
                    raise ValueError(f"trips[{i}].stops: {stop_id!r} is not in stops")
                s = self._stops[stop_id]
                ts = when if isinstance(when, datetime) else datetime.fromisoformat(str(when))
                calls.append(TripStop(stop_id, s.name, s.lat, s.lon, ts, ts))
                serving.setdefault(stop_id, set()).add(str(trip["route"]))
            self.trips.append(
                (str(trip.get("operator", operator)), str(trip["trip"]), str(trip["route"]),
                 str(trip.get("headsign", "")), calls)
            )  # fmt: skip
        self._stops = {
            k: replace(s, routes=tuple(sorted(serving.get(k, ())))) for k, s in self._stops.items()
        }
        self.routes = {
            route_id: (str(r.get("operator", operator)), str(r.get("name", route_id)), shape(
                {"type": "LineString", "coordinates": r["line"]}
            ))
            for route_id, r in routes.items()
        }  # fmt: skip

    def _route_name(self, route_id: str) -> str:
        found = self.routes.get(route_id)
        return found[1] if found else route_id

    def impact(self, geometry: Mapping[str, Any], within_m: float = DEFAULT_WITHIN_M) -> TransitImpact:
        lines = [(op, rid, name, line) for rid, (op, name, line) in self.routes.items()]
        return impact_of(shape(dict(geometry)), lines, self._stops.values(), within_m)

    def stops_near(self, lat: float, lon: float, radius_m: float) -> list[StopRef]:
        return stops_within(self._stops.values(), lat, lon, radius_m)

    def stop(self, operator: str, sensor: str) -> StopRef | None:
        for s in self._stops.values():
            if s.operator == operator and s.sensor == sensor:
                return s
        return None

    def departures(
        self,
        stops: Sequence[StopRef],
        after: datetime,
        *,
        toward: tuple[float, float],
        walk_m: float = DEFAULT_WALK_M,
        horizon: timedelta = timedelta(hours=1),
        limit: int = 3,
    ) -> list[Departure]:
        boarding = {(s.operator, s.stop_id) for s in stops}
        out = []
        for operator, trip_id, route_id, headsign, calls in self.trips:
            for i, call in enumerate(calls):
                if (operator, call.stop_id) not in boarding or not after <= call.departure <= after + horizon:
                    continue
                leave = alighting(calls[i + 1 :], call, toward, walk_m)
                if leave is not None:
                    out.append(
                        Departure(
                            operator, route_id, self._route_name(route_id), trip_id, headsign,
                            call.stop_id, call.name, call.departure, leave.stop_id, leave.name, leave.arrival,
                        )
                    )  # fmt: skip
                break
        out.sort(key=lambda d: (d.scheduled, d.route_name, d.trip_id))
        return out[:limit]
