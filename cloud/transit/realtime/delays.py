"""TripUpdates as `transit_delay` readings: one per trip and stop, as the vehicle passes it.

A TripUpdate predicts; a control room wants what happened. So a stop's reading is sent once,
when the trip has passed it, with the last delay the feed gave for it, and timestamped at the
stop's *scheduled* time: one point per scheduled stop event, whatever the polling rate, which
is what "delay by line" and "on-time share" count. The series is the stop (the sensor) and the
route (the tag); the trip id is a field, so that series stay as few as the network's stops.

Per trip instance (trip_id and service day), each snapshot:

- each StopTimeUpdate gives its stop a delay (`delay`, or `time` minus the scheduled time);
  a delay carries on to the following stops until the next update (gtfs-realtime.proto,
  "propagation"), except past NO_DATA; SKIPPED marks one stop. A trip-level `delay` with no
  stop updates applies to every stop;
- the stops before the first update, and those whose predicted time is already past, are
  passed; each passed stop not yet sent is sent, with its last known delay, once its scheduled
  time has come (an early bus must not write into the future);
- a CANCELED (or DELETED) trip sends `cancelled` for each stop as its scheduled time comes;
- a trip gone from the feed sends the stops it had passed, and is forgotten; what was sent is
  remembered a while, so a trip that comes back is not sent twice.

ADDED, DUPLICATED and other unscheduled trips are not in the static feed: their times cannot
be compared with a schedule, so they give no delay readings (counted). A scheduled trip, or a
stop, the static feed does not hold refuses the entity.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from google.transit import gtfs_realtime_pb2 as rt

from cloud.transit.realtime.refusals import UNKNOWN_ROUTE, UNKNOWN_STOP, UNKNOWN_TRIP, Refusal, entity_path
from cloud.transit.realtime.timetable import StopTime, Timetable, TripIndex
from cloud.transit.realtime.wire import Stamps, Wire
from edge.contract.gtfs.ids import sensor_id, tag_value
from edge.contract.gtfs.realtime import (
    STOP_NO_DATA,
    STOP_SKIPPED,
    TRIP_CANCELED,
    TRIP_DELETED,
    TRIP_SCHEDULED,
)
from edge.contract.gtfs.times import parse_time, service_day_start

# A stop is sent once its scheduled time is at most this far ahead (ingest refuses readings
# more than `max_future_s`, 300 s by default, in the future).
DUE_AHEAD_S = 60
# What was sent for a trip that left the feed is remembered this long (a trip may flicker).
FORGET_AFTER_S = 3 * 3600
SCHEDULED, SKIPPED, CANCELLED, NO_DATA = "scheduled", "skipped", "cancelled", "no_data"

Prediction = tuple[str, int | None]  # (status, delay_s)
_Update = tuple[int, str, int | None, int]  # (stop index, status, delay_s, absolute time or 0)


@dataclass(frozen=True, slots=True)
class Predictions:
    """What one snapshot says of a trip's stops, sparse: the stops its updates name, and the
    delay each carries on to the following stops (looked up, not spread over every stop, which
    would cost as many steps as the trip has stops for every update of every poll)."""

    first: int  # the first stop it speaks of (the trip's length when it speaks of none)
    indexes: tuple[int, ...] = ()  # the stops its StopTimeUpdates name, ascending
    states: tuple[Prediction, ...] = ()  # at each of them
    carried: tuple[int | None, ...] = ()  # the delay carried on after each
    everywhere: Prediction | None = None  # a cancelled trip, or a trip-level delay: every stop

    @classmethod
    def of(cls, updates: dict[int, Prediction], n: int) -> Predictions:
        if not updates:
            return cls(n)
        if len(updates) == 1:  # the usual update: the next stop only
            ((i, (status, value)),) = updates.items()
            return cls(i, (i,), ((status, value),), (value if status == SCHEDULED else None,))
        indexes = tuple(sorted(updates))
        states, carried = [], []
        delay: int | None = None
        for i in indexes:
            status, value = updates[i]
            if status == SCHEDULED and value is not None:
                delay = value
            elif status == NO_DATA:
                delay = None  # the reference: no propagation past NO_DATA
            states.append((status, value if status != SCHEDULED else delay))
            carried.append(delay)
        return cls(indexes[0], indexes, tuple(states), tuple(carried))

    def at(self, i: int) -> Prediction | None:
        """The prediction for stop `i`, None when this snapshot does not speak of it."""
        if self.everywhere is not None:
            return self.everywhere
        if i < self.first:
            return None
        k = bisect.bisect_right(self.indexes, i) - 1 if len(self.indexes) > 1 else 0
        if self.indexes[k] == i:
            return self.states[k]
        delay = self.carried[k]
        return (SCHEDULED, delay) if delay is not None else (NO_DATA, None)


@dataclass(slots=True)
class _Trip:
    trip_id: str
    route: str  # tag value
    times: tuple[StopTime, ...]
    index: TripIndex
    scheduled: list[int]  # epoch seconds per stop: departure, arrival at the last
    next_index: int  # the first stop not sent
    latest: Predictions | None = None
    previous: Predictions | None = None
    frozen: dict[int, Prediction] = field(default_factory=dict)  # passed, waiting for their time
    delay_now: int | None = None  # at the next stop, for the vehicle's reading
    last_seen: int = 0

    def prediction(self, i: int) -> Prediction | None:
        frozen = self.frozen.get(i)
        if frozen is not None:
            return frozen
        for known in (self.latest, self.previous):
            found = known.at(i) if known is not None else None
            if found is not None:
                return found
        return None


class DelayReadings:
    def __init__(self, timetable: Callable[[], Timetable]) -> None:
        self._timetable = timetable  # the current one (it changes with a new static version)
        self._stamp = Stamps()
        self._trips: dict[tuple[str, str], _Trip] = {}
        self._sent_until: dict[tuple[str, str], tuple[int, int]] = {}  # key -> (next_index, when)
        self._delay_by_trip: dict[str, int | None] = {}
        self._sensors: dict[str, str] = {}
        self._dates: dict[str, date] = {}  # start_date text -> date
        self.unscheduled = 0  # TripUpdates of trips the static feed cannot hold

    def delay_of(self, trip_id: str) -> int | None:
        return self._delay_by_trip.get(trip_id)

    def update(
        self, entities: Iterable[tuple[int, rt.FeedEntity]], header_ts: int
    ) -> tuple[list[Wire], list[Refusal]]:
        """All of a view's TripUpdates (the whole current view: absence ends a trip)."""
        readings: list[Wire] = []
        refusals: list[Refusal] = []
        seen: set[tuple[str, str]] = set()
        timetable: Timetable = self._timetable()
        for index, entity in entities:
            tu = entity.trip_update
            now = tu.timestamp or header_ts
            checked = self._check(index, entity, timetable)
            if checked is None:  # not comparable with the schedule
                self.unscheduled += 1
                continue
            if isinstance(checked, Refusal):
                refusals.append(checked)
                continue
            located = self._located(index, entity, checked)
            if isinstance(located, Refusal):
                refusals.append(located)
                continue
            key, trip = self._trip(tu, timetable, now, checked)
            seen.add(key)
            readings += self._advance(key, trip, tu, located, now)
        for key in [k for k in self._trips if k not in seen]:
            readings += self._finish(key, header_ts)
        self._forget(header_ts)
        return readings, refusals

    # -- one trip ------------------------------------------------------------------------------

    def _check(self, index: int, entity: rt.FeedEntity, timetable: Timetable) -> TripIndex | Refusal | None:
        """The trip's stop index to track it by, None for an unscheduled trip, or the refusal."""
        trip = entity.trip_update.trip
        if trip.schedule_relationship not in (TRIP_SCHEDULED, TRIP_CANCELED, TRIP_DELETED):
            return None
        trip_id = trip.trip_id
        info = timetable.trips.get(trip_id) if trip_id else None
        if info is None:
            why = "not in the static feed" if trip_id else "no trip_id: cannot match the schedule"
            return _refusal(UNKNOWN_TRIP, index, entity, ".trip.trip_id", trip_id, why)
        if trip.route_id and trip.route_id != info.route_id:
            why = f"trip {trip_id} runs route {info.route_id} in the static feed"
            return _refusal(UNKNOWN_ROUTE, index, entity, ".trip.route_id", trip.route_id, why)
        return timetable.index_of(trip_id)

    def _located(self, index: int, entity: rt.FeedEntity, where: TripIndex) -> list[_Update] | Refusal:
        """The StopTimeUpdates, each checked against the trip and placed in it: one pass."""
        tu = entity.trip_update
        out: list[_Update] = []
        cursor = 0
        for j, stu in enumerate(tu.stop_time_update):
            stop_id = stu.stop_id
            if stu.HasField("stop_sequence"):
                i = where.by_seq.get(stu.stop_sequence)
                if i is None:
                    why = f"trip {tu.trip.trip_id} has no such stop_sequence"
                    path = f".stop_time_update[{j}].stop_sequence"
                    return _refusal(UNKNOWN_STOP, index, entity, path, str(stu.stop_sequence), why)
                if stop_id and i not in where.by_stop.get(stop_id, ()):
                    return self._bad_stop(index, entity, j, stu, where)
            elif stop_id:
                visits = where.by_stop.get(stop_id)
                if visits is None:
                    return self._bad_stop(index, entity, j, stu, where)
                # The next visit at or after the previous update (a loop calls at a stop twice).
                i = next((v for v in visits if v >= cursor), visits[-1])
            else:
                return _refusal(
                    UNKNOWN_STOP,
                    index,
                    entity,
                    f".stop_time_update[{j}]",
                    "",
                    "neither stop_id nor stop_sequence",
                )
            cursor = i
            relationship = stu.schedule_relationship
            if relationship == STOP_SKIPPED:
                out.append((i, SKIPPED, None, 0))
            elif relationship == STOP_NO_DATA:
                out.append((i, NO_DATA, None, 0))
            else:
                out.append((i, SCHEDULED, *_delay_or_time(stu)))
        return out

    def _bad_stop(
        self, index: int, entity: rt.FeedEntity, j: int, stu: rt.TripUpdate.StopTimeUpdate, where: TripIndex
    ) -> Refusal:
        trip_id = entity.trip_update.trip.trip_id
        if stu.stop_id not in where.by_stop:
            known = stu.stop_id in self._timetable().stops
            why = f"not a stop of trip {trip_id}" if known else "not in the static feed"
        else:
            why = f"trip {trip_id} does not call at it as stop_sequence {stu.stop_sequence}"
        return _refusal(UNKNOWN_STOP, index, entity, f".stop_time_update[{j}].stop_id", stu.stop_id, why)

    def _trip(
        self, tu: rt.TripUpdate, timetable: Timetable, now: int, index: TripIndex
    ) -> tuple[tuple[str, str], _Trip]:
        trip_id = tu.trip.trip_id
        start_date = tu.trip.start_date
        day = self._dates.get(start_date) if start_date else None
        if day is None:
            day = timetable.service_date(trip_id, start_date, datetime.fromtimestamp(now, UTC))
            if start_date and len(self._dates) < 1000:
                self._dates[start_date] = day
        # A frequency-based trip runs many times a day, each run told apart by its start_time.
        key = (trip_id, f"{start_date or day.isoformat()} {tu.trip.start_time}")
        trip = self._trips.get(key)
        if trip is None:
            times = timetable.stop_times(trip_id)
            base = int(service_day_start(day, timetable.tz).timestamp())
            if tu.trip.start_time and timetable.trips[trip_id].is_frequency_based:
                # A frequency-based trip runs its template's stop times from its own start.
                base += parse_time(tu.trip.start_time) - times[0].departure_s
            last = len(times) - 1
            scheduled = [base + (st.departure_s if i < last else st.arrival_s) for i, st in enumerate(times)]
            route = tag_value(timetable.trips[trip_id].route_id)
            trip = self._trips[key] = _Trip(trip_id, route, times, index, scheduled, next_index=-1)
        trip.last_seen = now
        return key, trip

    @staticmethod
    def _predictions(trip: _Trip, tu: rt.TripUpdate, located: list[_Update]) -> Predictions:
        if tu.trip.schedule_relationship in (TRIP_CANCELED, TRIP_DELETED):
            return Predictions(0, everywhere=(CANCELLED, None))
        if not located:
            if tu.HasField("delay"):
                return Predictions(0, everywhere=(SCHEDULED, tu.delay))
            return Predictions(len(trip.times))
        updates: dict[int, Prediction] = {}
        for i, status, delay, at in located:
            updates[i] = (status, at - trip.scheduled[i] if delay is None and at else delay)
        return Predictions.of(updates, len(trip.times))

    def _advance(
        self, key: tuple[str, str], trip: _Trip, tu: rt.TripUpdate, located: list[_Update], now: int
    ) -> list[Wire]:
        predictions = self._predictions(trip, tu, located)
        if trip.next_index < 0:  # first sight: the stops it passed before we watched are not ours
            trip.next_index = max(predictions.first, self._sent_until.get(key, (0, 0))[0])
        trip.previous, trip.latest = trip.latest, predictions
        n = len(trip.times)
        boundary = predictions.first
        while boundary < n:
            status, delay = predictions.at(boundary) or (NO_DATA, None)
            predicted = trip.scheduled[boundary] + (delay if delay is not None and status != CANCELLED else 0)
            if predicted > now:
                break
            boundary += 1
        out = self._send(trip, boundary, now)
        # Passed but not yet due (an early bus): their prediction is kept as it is now.
        for i in range(trip.next_index, boundary):
            trip.frozen.setdefault(i, trip.prediction(i) or (NO_DATA, None))
        following = predictions.at(min(boundary, n - 1))
        trip.delay_now = following[1] if following is not None else None
        self._delay_by_trip[trip.trip_id] = trip.delay_now
        return out

    def _send(self, trip: _Trip, until: int, now: int) -> list[Wire]:
        out: list[Wire] = []
        i = trip.next_index
        while i < until and trip.scheduled[i] <= now + DUE_AHEAD_S:
            status, delay = trip.prediction(i) or (NO_DATA, None)
            stop_id = trip.times[i].stop_id
            sensor = self._sensors.get(stop_id)
            if sensor is None:
                sensor = self._sensors[stop_id] = sensor_id(stop_id)
            fields: Wire = {
                "trip": trip.trip_id,
                "stop_sequence": trip.times[i].stop_sequence,
                "status": status,
            }
            if delay is not None and status == SCHEDULED:
                fields["delay_s"] = max(-86_400, min(86_400, delay))
            out.append(
                {
                    "sensor": sensor,
                    "ts": self._stamp(trip.scheduled[i]),
                    "fields": fields,
                    "tags": {"route": trip.route},
                }
            )
            trip.frozen.pop(i, None)
            i += 1
        trip.next_index = i
        return out

    def _finish(self, key: tuple[str, str], now: int) -> list[Wire]:
        """A trip gone from the feed: send the stops it had passed by its last predictions."""
        trip = self._trips.pop(key)
        n = len(trip.times)
        until = trip.next_index
        while until < n:
            found = trip.prediction(until)
            if found is None:
                break
            status, delay = found
            late = delay if delay is not None and status != CANCELLED else 0
            if trip.scheduled[until] + late > now + DUE_AHEAD_S:
                break
            until += 1
        out = self._send(trip, until, now)
        self._sent_until[key] = (trip.next_index, now)
        self._delay_by_trip.pop(trip.trip_id, None)
        return out

    def _forget(self, now: int) -> None:
        for k in [k for k, (_, when) in self._sent_until.items() if now - when > FORGET_AFTER_S]:
            del self._sent_until[k]


def _delay_or_time(stu: rt.TripUpdate.StopTimeUpdate) -> tuple[int | None, int]:
    """(delay, 0) when the update gives a delay, (None, time) when an absolute time, departure
    first (what a passenger waits for), else arrival."""
    for event in (stu.departure, stu.arrival) if stu.HasField("departure") else (stu.arrival,):
        if event.HasField("delay"):
            return int(event.delay), 0
        if event.time:
            return None, int(event.time)
    return None, 0


def _refusal(reason: str, index: int, entity: rt.FeedEntity, path: str, value: str, why: str) -> Refusal:
    # Paths are built only for a refusal: most entities pass, and an f-string each costs.
    return Refusal(reason, f"{entity_path(index, entity.id)}.trip_update{path}", value, why, entity.id)
