"""VehiclePosition entities as `transit_vehicle` readings, their references checked.

The vehicle is the sensor (its descriptor's id, else its label, else the entity id, as a
contract id); the route tag is its trip's route (from the descriptor or the static trip), `none`
when it runs no trip. A trip, route or stop the static feed does not hold refuses the entity. A
position no newer than the vehicle's last one is not sent again (a full dataset repeats a
vehicle that has not reported), so each fix is one reading.
"""

from __future__ import annotations

from collections.abc import Callable

from google.transit import gtfs_realtime_pb2 as rt

from cloud.transit.realtime.refusals import UNKNOWN_ROUTE, UNKNOWN_STOP, UNKNOWN_TRIP, Refusal, entity_path
from cloud.transit.realtime.timetable import Timetable
from cloud.transit.realtime.wire import Stamps, Wire
from edge.contract.gtfs.ids import NO_ROUTE, sensor_id, tag_value
from edge.contract.gtfs.realtime import OCCUPANCY_STATUS, TRIP_SCHEDULED, VEHICLE_STOP_STATUS

MS_TO_KMH = 3.6
_MAX_TRACKED = 100_000


class VehicleReadings:
    def __init__(self, timetable: Callable[[], Timetable], delay_of: Callable[[str], int | None]) -> None:
        self._timetable = timetable
        self._delay_of = delay_of
        self._stamp = Stamps()
        self._last_ts: dict[str, int] = {}  # sensor -> newest fix sent
        self._sensors: dict[str, str] = {}
        self._routes: dict[str, str] = {}
        self.repeated = 0  # fixes not newer than the last one sent
        self.without_position = 0

    def convert(self, index: int, entity: rt.FeedEntity, header_ts: int) -> Wire | Refusal | None:
        checked = self._references(index, entity)
        if isinstance(checked, Refusal):
            return checked
        trip_id, route_id = checked
        vp = entity.vehicle
        if not vp.HasField("position"):
            self.without_position += 1
            return None
        name = vp.vehicle.id or vp.vehicle.label or entity.id
        sensor = self._sensors.get(name)
        if sensor is None:
            sensor = self._sensors[name] = sensor_id(name)
        ts = vp.timestamp or header_ts
        if ts <= self._last_ts.get(sensor, -1):
            self.repeated += 1
            return None
        if len(self._last_ts) >= _MAX_TRACKED:
            self._last_ts.clear()
        self._last_ts[sensor] = ts
        route = self._routes.get(route_id)
        if route is None:
            route = self._routes[route_id] = tag_value(route_id) if route_id else NO_ROUTE
        return {
            "sensor": sensor,
            "ts": self._stamp(ts),
            "fields": self._fields(vp, trip_id),
            "tags": {"route": route},
        }

    def _references(self, index: int, entity: rt.FeedEntity) -> tuple[str, str] | Refusal:
        """(trip_id, route_id) once the trip, route and stop are known to the static feed."""
        vp = entity.vehicle
        timetable = self._timetable()

        def refuse(reason: str, path: str, value: str) -> Refusal:
            # Built only for a refusal: most entities pass, and an f-string each costs.
            where = f"{entity_path(index, entity.id)}.vehicle{path}"
            return Refusal(reason, where, value, "not in the static feed", entity.id)

        trip_id = route_id = ""
        if vp.HasField("trip"):
            trip_id, route_id = vp.trip.trip_id, vp.trip.route_id
            # An ADDED or DUPLICATED trip is not in the static feed by definition.
            scheduled = vp.trip.schedule_relationship == TRIP_SCHEDULED
            if trip_id and scheduled and trip_id not in timetable.trips:
                return refuse(UNKNOWN_TRIP, ".trip.trip_id", trip_id)
            if route_id and route_id not in timetable.routes:
                return refuse(UNKNOWN_ROUTE, ".trip.route_id", route_id)
            if not route_id and trip_id in timetable.trips:
                route_id = timetable.trips[trip_id].route_id
        if vp.stop_id and vp.stop_id not in timetable.stops:
            return refuse(UNKNOWN_STOP, ".stop_id", vp.stop_id)
        return trip_id, route_id

    def _fields(self, vp: rt.VehiclePosition, trip_id: str) -> Wire:
        pos = vp.position
        # The declared order of the kind's fields (edge.contract.kinds), so ingest's typed path takes it.
        # float32 on the wire, 7 significant digits: five decimals (a metre) is what the sender
        # meant; more would print float32's noise (43.8786 arrives as 43.87860107421875).
        fields: Wire = {"lat": round(pos.latitude, 5), "lon": round(pos.longitude, 5)}
        if pos.HasField("bearing"):
            fields["bearing_deg"] = round(pos.bearing, 1)
        if pos.HasField("speed"):
            fields["speed_kmh"] = round(pos.speed * MS_TO_KMH, 2)
        if trip_id:
            fields["trip"] = trip_id
        if vp.stop_id:
            fields["stop"] = vp.stop_id
        if vp.HasField("current_status"):
            fields["stop_status"] = VEHICLE_STOP_STATUS[vp.current_status]
        if vp.HasField("occupancy_status"):
            fields["occupancy"] = OCCUPANCY_STATUS[vp.occupancy_status]
        if vp.HasField("occupancy_percentage"):
            fields["occupancy_pct"] = vp.occupancy_percentage
        delay = self._delay_of(trip_id) if trip_id else None
        if delay is not None:
            fields["delay_s"] = delay
        return fields
