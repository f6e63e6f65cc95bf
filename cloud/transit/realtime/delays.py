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

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from google.transit import gtfs_realtime_pb2 as rt

from cloud.transit.realtime.refusals import UNKNOWN_ROUTE, UNKNOWN_STOP, UNKNOWN_TRIP, Refusal, entity_path
from cloud.transit.realtime.timetable import StopTime, Timetable
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


@dataclass(slots=True)
class _Trip:
    trip_id: str
    route: str  # tag value
    times: tuple[StopTime, ...]
    scheduled: list[int]  # epoch seconds per stop: departure, arrival at the last
    next_index: int  # the first stop not sent
    predictions: dict[int, Prediction] = field(default_factory=dict)
    delay_now: int | None = None  # at the next stop, for the vehicle's reading
    last_seen: int = 0


class DelayReadings:
    def __init__(self, timetable: Callable[[], Timetable]) -> None:
        self._timetable = timetable  # the current one (it changes with a new static version)
        self._stamp = Stamps()
        self._trips: dict[tuple[str, str], _Trip] = {}
        self._sent_until: dict[tuple[str, str], tuple[int, int]] = {}  # key -> (next_index, when)
        self._delay_by_trip: dict[str, int | None] = {}
        self._sensors: dict[str, str] = {}
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
            refused = self._check(index, entity, timetable)
            if isinstance(refused, Refusal):
                refusals.append(refused)
                continue
            if refused is None:  # not comparable with the schedule
                self.unscheduled += 1
                continue
            key, trip = self._trip(tu, timetable, now)
            seen.add(key)
            readings += self._advance(key, trip, tu, now)
        for key in [k for k in self._trips if k not in seen]:
            readings += self._finish(key, header_ts)
        self._forget(header_ts)
        return readings, refusals

    # -- one trip ------------------------------------------------------------------------------

    def _check(self, index: int, entity: rt.FeedEntity, timetable: Timetable) -> bool | Refusal | None:
        """True to track, None for an unscheduled trip, or the refusal."""
        tu = entity.trip_update
        where = f"{entity_path(index, entity.id)}.trip_update"
        trip_id = tu.trip.trip_id
        relationship = tu.trip.schedule_relationship
        if relationship not in (TRIP_SCHEDULED, TRIP_CANCELED, TRIP_DELETED):
            return None
        if not trip_id:
            return Refusal(
                UNKNOWN_TRIP, f"{where}.trip.trip_id", "", "no trip_id: cannot match the schedule", entity.id
            )
        info = timetable.trips.get(trip_id)
        if info is None:
            return Refusal(
                UNKNOWN_TRIP, f"{where}.trip.trip_id", trip_id, "not in the static feed", entity.id
            )
        if tu.trip.route_id and tu.trip.route_id != info.route_id:
            return Refusal(
                UNKNOWN_ROUTE,
                f"{where}.trip.route_id",
                tu.trip.route_id,
                f"trip {trip_id} runs route {info.route_id} in the static feed",
                entity.id,
            )
        return self._check_stops(where, entity, timetable) or True

    @staticmethod
    def _check_stops(where: str, entity: rt.FeedEntity, timetable: Timetable) -> Refusal | None:
        trip_id = entity.trip_update.trip.trip_id
        sequences, on_trip = timetable.stops_of(trip_id)
        for j, stu in enumerate(entity.trip_update.stop_time_update):
            at = f"{where}.stop_time_update[{j}]"
            if stu.stop_id and stu.stop_id not in timetable.stops:
                return Refusal(
                    UNKNOWN_STOP, f"{at}.stop_id", stu.stop_id, "not in the static feed", entity.id
                )
            if stu.stop_id and stu.stop_id not in on_trip:
                return Refusal(
                    UNKNOWN_STOP, f"{at}.stop_id", stu.stop_id, f"not a stop of trip {trip_id}", entity.id
                )
            if stu.HasField("stop_sequence") and stu.stop_sequence not in sequences:
                return Refusal(
                    UNKNOWN_STOP,
                    f"{at}.stop_sequence",
                    str(stu.stop_sequence),
                    f"trip {trip_id} has no such stop_sequence",
                    entity.id,
                )
            if not stu.stop_id and not stu.HasField("stop_sequence"):
                return Refusal(UNKNOWN_STOP, at, "", "neither stop_id nor stop_sequence", entity.id)
        return None

    def _trip(self, tu: rt.TripUpdate, timetable: Timetable, now: int) -> tuple[tuple[str, str], _Trip]:
        trip_id = tu.trip.trip_id
        day = timetable.service_date(trip_id, tu.trip.start_date, datetime.fromtimestamp(now, UTC))
        key = (trip_id, day.isoformat())
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
            trip = self._trips[key] = _Trip(trip_id, route, times, scheduled, next_index=-1)
        trip.last_seen = now
        return key, trip

    def _predictions(self, trip: _Trip, tu: rt.TripUpdate) -> tuple[int, dict[int, Prediction]]:
        """(index of the first stop the feed speaks of, predictions from there on)."""
        n = len(trip.times)
        if tu.trip.schedule_relationship in (TRIP_CANCELED, TRIP_DELETED):
            return 0, dict.fromkeys(range(n), (CANCELLED, None))
        updates = self._updates(trip, tu)
        if not updates:
            if tu.HasField("delay"):
                return 0, dict.fromkeys(range(n), (SCHEDULED, tu.delay))
            return n, {}
        first = min(updates)
        out: dict[int, Prediction] = {}
        carried: int | None = None
        for i in range(first, n):
            if i in updates:
                status, delay = updates[i]
                if status == SCHEDULED and delay is not None:
                    carried = delay
                elif status == NO_DATA:
                    carried = None  # the reference: no propagation past NO_DATA
                out[i] = (status, delay if status != SCHEDULED else carried)
            else:
                out[i] = (SCHEDULED, carried) if carried is not None else (NO_DATA, None)
        return first, out

    def _updates(self, trip: _Trip, tu: rt.TripUpdate) -> dict[int, Prediction]:
        """The stops the StopTimeUpdates speak of, by index in the trip."""
        updates: dict[int, Prediction] = {}
        cursor = 0
        for stu in tu.stop_time_update:
            i = self._index(trip, stu, cursor)
            if i is None:
                continue
            cursor = i
            if stu.schedule_relationship == STOP_SKIPPED:
                updates[i] = (SKIPPED, None)
            elif stu.schedule_relationship == STOP_NO_DATA:
                updates[i] = (NO_DATA, None)
            else:
                updates[i] = (SCHEDULED, self._stu_delay(trip, i, stu))
        return updates

    @staticmethod
    def _index(trip: _Trip, stu: rt.TripUpdate.StopTimeUpdate, cursor: int) -> int | None:
        times = trip.times
        if stu.HasField("stop_sequence"):
            for i in range(len(times)):
                if times[i].stop_sequence == stu.stop_sequence:
                    return i
            return None
        for i in range(cursor, len(times)):  # a stop visited twice (a loop): the next visit
            if times[i].stop_id == stu.stop_id:
                return i
        return None

    @staticmethod
    def _stu_delay(trip: _Trip, i: int, stu: rt.TripUpdate.StopTimeUpdate) -> int | None:
        for event in (stu.departure, stu.arrival) if stu.HasField("departure") else (stu.arrival,):
            if event.HasField("delay"):
                return int(event.delay)
            if event.HasField("time") and event.time:
                return int(event.time) - trip.scheduled[i]
        return None

    def _advance(self, key: tuple[str, str], trip: _Trip, tu: rt.TripUpdate, now: int) -> list[Wire]:
        first, predictions = self._predictions(trip, tu)
        if trip.next_index < 0:  # first sight: the stops it passed before we watched are not ours
            trip.next_index = max(first, self._sent_until.get(key, (0, 0))[0])
        n = len(trip.times)
        boundary = first
        while boundary < n:
            status, delay = predictions.get(boundary, (NO_DATA, None))
            predicted = trip.scheduled[boundary] + (delay or 0)
            if status == CANCELLED:
                predicted = trip.scheduled[boundary]
            if predicted > now:
                break
            boundary += 1
        trip.predictions.update(predictions)
        out = self._send(trip, boundary, now)
        following = trip.predictions.get(min(boundary, n - 1))
        trip.delay_now = following[1] if following is not None else None
        self._delay_by_trip[trip.trip_id] = trip.delay_now
        return out

    def _send(self, trip: _Trip, until: int, now: int) -> list[Wire]:
        out: list[Wire] = []
        i = trip.next_index
        while i < until and trip.scheduled[i] <= now + DUE_AHEAD_S:
            status, delay = trip.predictions.get(i, (NO_DATA, None))
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
            i += 1
        trip.next_index = i
        return out

    def _finish(self, key: tuple[str, str], now: int) -> list[Wire]:
        """A trip gone from the feed: send the stops it had passed by its last predictions."""
        trip = self._trips.pop(key)
        n = len(trip.times)
        until = trip.next_index
        while until < n:
            status, delay = trip.predictions.get(until, (NO_DATA, None))
            if status == NO_DATA and until not in trip.predictions:
                break
            if trip.scheduled[until] + (delay or 0) > now + DUE_AHEAD_S:
                break
            until += 1
        out = self._send(trip, until, now)
        self._sent_until[key] = (trip.next_index, now)
        self._delay_by_trip.pop(trip.trip_id, None)
        return out

    def _forget(self, now: int) -> None:
        for k in [k for k, (_, when) in self._sent_until.items() if now - when > FORGET_AFTER_S]:
            del self._sent_until[k]
