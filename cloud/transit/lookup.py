"""`TransitNetwork` (cloud.core.transit) over the transit store's current feeds.

The wiring (`cloud/apps/`) opens one per process and hands it to the features that need the
network without importing this one: the worksites (affected routes and stops), the console,
the rules (park-and-ride departures, bus delays near worksites), the snapshot writer. Routes
and stops are held in memory per set of current feed versions, looked at again every
`refresh_s` (a new import is picked up within that), or every `EMPTY_REFRESH_S` while there is
none (a first import after the process started, as the demo's once its simulator answers, is
seen within seconds); departures are read from the store when asked.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry
from sqlalchemy.exc import SQLAlchemyError

from cloud.core.transit import (
    DEFAULT_WALK_M,
    DEFAULT_WITHIN_M,
    Departure,
    StopRef,
    TransitImpact,
    TransitNetwork,
    TripStop,
    alighting,
    impact_of,
    stops_within,
)
from cloud.io.db import make_engine
from cloud.transit import network, schema
from cloud.transit.departures import TripTimes, calls_at, trip_times
from cloud.transit.impact import network_of
from cloud.transit.store import FeedInfo, TransitStore

_M_PER_DEG = 111_000.0
# No feed imported yet (or no store yet): looked at again this often, however long `refresh_s`.
EMPTY_REFRESH_S = 2.0


@dataclass(frozen=True, slots=True)
class _Loaded:
    signature: tuple[tuple[str, int], ...]  # (operator, feed id) of the current feeds
    feeds: dict[str, FeedInfo]
    routes: list[tuple[str, str, str, BaseGeometry]]  # operator, route_id, name, line
    route_names: dict[tuple[str, str], str]
    headsigns: dict[tuple[str, str], tuple[str, str]]  # (operator, trip) -> (route_id, headsign)
    stops: dict[tuple[str, str], StopRef]
    by_sensor: dict[tuple[str, str], StopRef]


def _empty() -> _Loaded:
    return _Loaded((), {}, [], {}, {}, {}, {})


class StoreNetwork:
    """The transit store's current networks as a `TransitNetwork`. Thread-safe."""

    def __init__(self, store: TransitStore, *, refresh_s: float = 60.0) -> None:
        self.store = store
        self.refresh_s = refresh_s
        self._lock = threading.Lock()
        self._loaded = _empty()
        self._checked = -float("inf")
        self._times: dict[tuple[int, str], TripTimes] = {}
        # The console asks for every worksite's impact every couple of seconds: the answer
        # changes only with the worksite's geometry or a new feed version.
        self._impacts: dict[tuple[bytes, float], TransitImpact] = {}

    def close(self) -> None:
        self.store.close()

    # -- what is held in memory -----------------------------------------------------------------

    def _current(self) -> _Loaded:
        with self._lock:
            every = self.refresh_s if self._loaded.signature else min(self.refresh_s, EMPTY_REFRESH_S)
            if time.monotonic() - self._checked < every:
                return self._loaded
            self._checked = time.monotonic()
            try:
                feeds = self.store.current_feeds()
            except SQLAlchemyError:
                return self._loaded  # the store not there yet (the API creates it): next time
            signature = tuple(sorted((op, f.id) for op, f in feeds.items()))
            if signature != self._loaded.signature:
                self._loaded = self._load(signature, feeds)
                self._times.clear()
                self._impacts.clear()
            return self._loaded

    def _load(self, signature: tuple[tuple[str, int], ...], feeds: dict[str, FeedInfo]) -> _Loaded:
        if not feeds:
            return _empty()
        names = {(r.operator, r.route_id): r.name for r in network.routes(self.store)}
        lines, _ = network_of(self.store)
        routes = [(op, rid, names.get((op, rid), rid), line) for (op, rid), line in sorted(lines.items())]
        stops = {
            (s.operator, s.stop_id): StopRef(s.operator, s.stop_id, s.name, s.lat, s.lon, 0.0, s.routes)
            for s in network.stops(self.store)
            if s.lat is not None and s.lon is not None
        }
        headsigns = {
            (op, row.trip_id): (row.route_id, row.trip_headsign or "")
            for op in feeds
            for row in self.store.rows(schema.trips, op)
        }
        return _Loaded(
            signature,
            feeds,
            routes,
            names,
            headsigns,
            stops,
            {(s.operator, s.sensor): s for s in stops.values()},
        )

    # -- TransitNetwork ---------------------------------------------------------------------------

    def impact(self, geometry: Mapping[str, Any], within_m: float = DEFAULT_WITHIN_M) -> TransitImpact:
        loaded = self._current()
        key = (orjson.dumps(dict(geometry), option=orjson.OPT_SORT_KEYS), within_m)
        found = self._impacts.get(key)
        if found is None:
            if len(self._impacts) > 10_000:
                self._impacts.clear()
            found = self._impacts[key] = self._impact(loaded, geometry, within_m)
        return found

    @staticmethod
    def _impact(loaded: _Loaded, geometry: Mapping[str, Any], within_m: float) -> TransitImpact:
        geom = shape(dict(geometry))
        # Only what can be near: a generous box in degrees, the exact test is in metres.
        box = shapely.box(*geom.bounds).buffer(within_m / _M_PER_DEG * 2 + 1e-4)
        routes = [r for r in loaded.routes if box.intersects(r[3])]
        stops = [s for s in loaded.stops.values() if box.covers(shapely.Point(s.lon, s.lat))]
        return impact_of(geom, routes, stops, within_m)

    def stops_near(self, lat: float, lon: float, radius_m: float) -> list[StopRef]:
        return stops_within(self._current().stops.values(), lat, lon, radius_m)

    def stop(self, operator: str, sensor: str) -> StopRef | None:
        return self._current().by_sensor.get((operator, sensor))

    def _trip_times(self, feed_id: int, trip_id: str) -> TripTimes:
        key = (feed_id, trip_id)
        found = self._times.get(key)
        if found is None:
            if len(self._times) > 20_000:  # bounded: a regional feed has tens of thousands of trips
                self._times.clear()
            found = self._times[key] = trip_times(self.store, feed_id, trip_id)
        return found

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
        loaded = self._current()
        by_operator: dict[str, set[str]] = {}
        for s in stops:
            by_operator.setdefault(s.operator, set()).add(s.stop_id)
        out: list[Departure] = []
        seen: set[tuple[str, str, datetime]] = set()
        for operator, stop_ids in sorted(by_operator.items()):
            feed = loaded.feeds.get(operator)
            if feed is None:
                continue
            for call in calls_at(self.store, feed, stop_ids, after, after + horizon):
                tt = self._trip_times(feed.id, call.trip_id)
                board_s = tt.departures_s[call.index]
                trip_start = call.departure - timedelta(seconds=board_s - tt.departures_s[0])
                if (operator, call.trip_id, trip_start) in seen:
                    continue  # boards at an earlier stop of the set already
                later = [
                    self._trip_stop(loaded, operator, tt, j, call.departure, board_s)
                    for j in range(call.index, len(tt.stop_ids))
                ]
                calls = [c for c in later if c is not None]
                if not calls or calls[0].stop_id != tt.stop_ids[call.index]:
                    continue
                leave = alighting(calls[1:], calls[0], toward, walk_m)
                if leave is None:
                    continue
                seen.add((operator, call.trip_id, trip_start))
                route_id, headsign = loaded.headsigns.get((operator, call.trip_id), ("", ""))
                out.append(
                    Departure(
                        operator, route_id, loaded.route_names.get((operator, route_id), route_id),
                        call.trip_id, headsign, calls[0].stop_id, calls[0].name, call.departure,
                        leave.stop_id, leave.name, leave.arrival,
                    )
                )  # fmt: skip
                if len(out) >= limit * 4:
                    break
        out.sort(key=lambda d: (d.scheduled, d.route_name, d.trip_id))
        return out[:limit]

    @staticmethod
    def _trip_stop(
        loaded: _Loaded, operator: str, tt: TripTimes, j: int, boards: datetime, board_s: int
    ) -> TripStop | None:
        s = loaded.stops.get((operator, tt.stop_ids[j]))
        if s is None:
            return None
        return TripStop(
            s.stop_id,
            s.name,
            s.lat,
            s.lon,
            boards + timedelta(seconds=tt.departures_s[j] - board_s),
            boards + timedelta(seconds=tt.arrivals_s[j] - board_s),
        )


def open_network(url: str, refresh_s: float = 60.0) -> TransitNetwork:
    """The network of the transit store at `url` (read only: the importer owns its schema)."""
    return StoreNetwork(TransitStore(make_engine(url)), refresh_s=refresh_s)
