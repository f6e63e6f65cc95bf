"""An operator's current static feed, as the reader checks references and schedules against it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from cloud.transit import schema
from cloud.transit.store import FeedInfo, TransitStore
from edge.contract.gtfs.times import interpolate, parse_date, service_day_start

_CACHED_TRIPS = 20_000


@dataclass(frozen=True, slots=True)
class TripInfo:
    route_id: str
    direction_id: int | None
    is_frequency_based: bool


@dataclass(frozen=True, slots=True)
class StopTime:
    stop_sequence: int
    stop_id: str
    arrival_s: int
    departure_s: int


@dataclass(frozen=True, slots=True)
class TripIndex:
    """Where a trip's stops are in its stop times: by stop_sequence, and by stop_id (a loop
    visits a stop twice)."""

    by_seq: dict[int, int]
    by_stop: dict[str, tuple[int, ...]]


class Timetable:
    """Trips, stops and routes of one feed version in memory; stop times per trip on demand."""

    def __init__(
        self,
        store: TransitStore,
        feed: FeedInfo,
        trips: dict[str, TripInfo],
        stops: frozenset[str],
        routes: frozenset[str],
    ) -> None:
        self.store = store
        self.feed = feed
        self.tz = ZoneInfo(feed.timezone or "UTC")
        self.trips = trips
        self.stops = stops
        self.routes = routes
        self.stop_times = lru_cache(maxsize=_CACHED_TRIPS)(self._stop_times)
        self.index_of = lru_cache(maxsize=_CACHED_TRIPS)(self._index_of)

    @classmethod
    def load(cls, store: TransitStore, operator: str) -> Timetable:
        feed = store.current_feed(operator)
        t, s, r, f = schema.trips, schema.stops, schema.routes, schema.frequencies
        with store.engine.connect() as conn:
            frequent = {row[0] for row in conn.execute(sa.select(f.c.trip_id).where(f.c.feed_id == feed.id))}
            trips = {
                trip_id: TripInfo(route_id, direction_id, trip_id in frequent)
                for trip_id, route_id, direction_id in conn.execute(
                    sa.select(t.c.trip_id, t.c.route_id, t.c.direction_id).where(t.c.feed_id == feed.id)
                )
            }
            stops = frozenset(
                row[0] for row in conn.execute(sa.select(s.c.stop_id).where(s.c.feed_id == feed.id))
            )
            routes = frozenset(
                row[0] for row in conn.execute(sa.select(r.c.route_id).where(r.c.feed_id == feed.id))
            )
        return cls(store, feed, trips, stops, routes)

    def _stop_times(self, trip_id: str) -> tuple[StopTime, ...]:
        rows = self.store.trip_stop_times(self.feed.id, trip_id)
        if not rows:
            return ()
        arrivals = interpolate([r.arrival_s if r.arrival_s is not None else r.departure_s for r in rows])
        departures = interpolate([r.departure_s if r.departure_s is not None else r.arrival_s for r in rows])
        return tuple(
            StopTime(r.stop_sequence, r.stop_id, a, d)
            for r, a, d in zip(rows, arrivals, departures, strict=True)
        )

    def _index_of(self, trip_id: str) -> TripIndex:
        by_seq: dict[int, int] = {}
        by_stop: dict[str, list[int]] = {}
        for i, st in enumerate(self.stop_times(trip_id)):
            by_seq[st.stop_sequence] = i
            by_stop.setdefault(st.stop_id, []).append(i)
        return TripIndex(by_seq, {stop: tuple(ix) for stop, ix in by_stop.items()})

    def service_date(self, trip_id: str, start_date: str, now: datetime) -> date:
        """The service day a trip instance runs on: the feed's `start_date` when it gives one,
        else the day (today or yesterday, local time) whose run of the trip is nearest `now`."""
        if start_date:
            return parse_date(start_date)
        today = now.astimezone(self.tz).date()
        times = self.stop_times(trip_id)
        if not times:
            return today
        best, best_gap = today, None
        for day in (today, today - timedelta(days=1), today + timedelta(days=1)):
            start = service_day_start(day, self.tz)
            begin = start + timedelta(seconds=times[0].departure_s)
            end = start + timedelta(seconds=times[-1].arrival_s)
            gap = max((begin - now).total_seconds(), (now - end).total_seconds(), 0.0)
            if best_gap is None or gap < best_gap:
                best, best_gap = day, gap
        return best
