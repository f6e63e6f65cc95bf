"""Timetabled departures from stops in a window of time, from an operator's current static feed.

A departure is a trip's `departure_time` at a stop on a service day whose calendar runs the
trip's service (`calendar.txt` by weekday and date range, `calendar_dates.txt` adding or
removing days), placed in time from the start of that service day (GTFS "noon minus 12 h", so a
25:10:00 departure is the next morning's 01:10). A trip of `frequencies.txt` runs every
`headway_secs` from `start_time` to before `end_time`, its stop times shifted by each run's start
from the template's first departure (exact_times 0 or 1 alike: the timetable's estimate).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from cloud.transit import schema
from cloud.transit.store import FeedInfo, TransitStore
from edge.contract.gtfs.times import format_date, interpolate, service_day_start

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
ADDED, REMOVED = 1, 2  # calendar_dates.exception_type


@dataclass(frozen=True, slots=True)
class Call:
    """A trip instance at one of its stops: when it leaves (aware UTC) and where in the trip."""

    trip_id: str
    index: int  # the stop's place among the trip's stop times (0-based, sequence order)
    departure: datetime
    shift_s: int  # added to the trip's timetable times: the run's start for frequency trips


@dataclass(frozen=True, slots=True)
class TripTimes:
    sequences: tuple[int, ...]
    stop_ids: tuple[str, ...]
    arrivals_s: tuple[int, ...]
    departures_s: tuple[int, ...]


def services_on(store: TransitStore, feed_id: int, day: date) -> set[str]:
    """The service_ids that run on `day`."""
    c, cd = schema.calendar, schema.calendar_dates
    ymd = format_date(day)
    with store.engine.connect() as conn:
        running = {
            row[0]
            for row in conn.execute(
                sa.select(c.c.service_id).where(
                    c.c.feed_id == feed_id,
                    c.c[WEEKDAYS[day.weekday()]] == 1,
                    c.c.start_date <= ymd,
                    c.c.end_date >= ymd,
                )
            )
        }
        for service_id, kind in conn.execute(
            sa.select(cd.c.service_id, cd.c.exception_type).where(cd.c.feed_id == feed_id, cd.c.date == ymd)
        ):
            if kind == ADDED:
                running.add(service_id)
            elif kind == REMOVED:
                running.discard(service_id)
    return running


def trip_times(store: TransitStore, feed_id: int, trip_id: str) -> TripTimes:
    """A trip's stops and times, the times missing between timepoints interpolated."""
    rows = store.trip_stop_times(feed_id, trip_id)
    arrivals = interpolate([r.arrival_s if r.arrival_s is not None else r.departure_s for r in rows])
    departures = interpolate([r.departure_s if r.departure_s is not None else r.arrival_s for r in rows])
    return TripTimes(
        tuple(r.stop_sequence for r in rows),
        tuple(r.stop_id for r in rows),
        tuple(arrivals),
        tuple(departures),
    )


def calls_at(
    store: TransitStore, feed: FeedInfo, stop_ids: set[str], after: datetime, until: datetime
) -> list[Call]:
    """Every trip instance leaving one of `stop_ids` in [after, until], soonest first."""
    tz = ZoneInfo(feed.timezone or "UTC")
    st, t, f = schema.stop_times, schema.trips, schema.frequencies
    with store.engine.connect() as conn:
        frequencies: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
        for trip_id, start_s, end_s, headway in conn.execute(
            sa.select(f.c.trip_id, f.c.start_s, f.c.end_s, f.c.headway_secs).where(f.c.feed_id == feed.id)
        ):
            frequencies[trip_id].append((start_s, end_s, headway))
        # The stop times at these stops, with their trip's service and place in the trip.
        rows = list(
            conn.execute(
                sa.select(st.c.trip_id, st.c.stop_sequence, t.c.service_id, st.c.departure_s, st.c.arrival_s)
                .join(t, sa.and_(t.c.feed_id == st.c.feed_id, t.c.trip_id == st.c.trip_id))
                .where(st.c.feed_id == feed.id, st.c.stop_id.in_(sorted(stop_ids)))
            )
        )
    # A service day starts at most a day and a few hours before its latest times (GTFS times
    # stay under 48:00 in practice): the day before `after`'s local date and every one up to `until`.
    first = after.astimezone(tz).date() - timedelta(days=1)
    days = [first + timedelta(days=i) for i in range((until.astimezone(tz).date() - first).days + 1)]
    running = {day: services_on(store, feed.id, day) for day in days}
    times: dict[str, TripTimes] = {}
    out: list[Call] = []
    starts = {day: service_day_start(day, tz) for day in days}

    def times_of(trip_id: str) -> TripTimes:
        found = times.get(trip_id)
        if found is None:
            found = times[trip_id] = trip_times(store, feed.id, trip_id)
        return found

    for trip_id, stop_sequence, service_id, departure_s, arrival_s in rows:
        if not any(service_id in running[day] for day in days):
            continue
        runs = frequencies.get(trip_id)
        given = departure_s if departure_s is not None else arrival_s
        if runs is None and given is not None:
            # The usual case, settled from the row alone: a trip's times are read only when
            # it leaves in the window (a stop is served by hundreds of trips a day).
            leaves = [starts[day] + timedelta(seconds=given) for day in days if service_id in running[day]]
            if not any(after <= when <= until for when in leaves):
                continue
        tt = times_of(trip_id)
        index = tt.sequences.index(stop_sequence)
        leave_s = tt.departures_s[index]
        for day in days:
            if service_id not in running[day]:
                continue
            start = starts[day]
            if runs is None:
                when = start + timedelta(seconds=leave_s)
                if after <= when <= until:
                    out.append(Call(trip_id, index, when, 0))
                continue
            template_start = tt.departures_s[0]
            for begin_s, end_s, headway in runs:
                for run_s in range(begin_s, end_s, max(headway, 1)):
                    shift = run_s - template_start
                    when = start + timedelta(seconds=leave_s + shift)
                    if after <= when <= until:
                        out.append(Call(trip_id, index, when, shift))
    out.sort(key=lambda c: (c.departure, c.trip_id))
    return out
