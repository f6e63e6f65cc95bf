"""Service alerts (GTFS-Realtime `Alert`) as records to keep, with their informed entities and
active periods; one that informs about a route, trip or stop the static feed lacks is refused."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from google.transit import gtfs_realtime_pb2 as rt

from cloud.transit.realtime.refusals import (
    BAD_ENTITY,
    UNKNOWN_ROUTE,
    UNKNOWN_STOP,
    UNKNOWN_TRIP,
    Refusal,
    entity_path,
)
from cloud.transit.realtime.timetable import Timetable
from edge.contract.gtfs.realtime import CAUSE, EFFECT, SEVERITY, translation


@dataclass(frozen=True, slots=True)
class InformedEntity:
    agency_id: str | None
    route_id: str | None
    route_type: int | None
    direction_id: int | None
    trip_id: str | None
    stop_id: str | None


@dataclass(frozen=True, slots=True)
class ServiceAlert:
    alert_id: str
    cause: str | None
    effect: str | None
    severity: str | None
    header_text: str
    description_text: str
    url: str
    periods: tuple[tuple[int | None, int | None], ...]  # (start, end) ms; None is an open end
    informed: tuple[InformedEntity, ...]
    content_sha256: str  # changes when anything of the alert does


def service_alert(
    index: int, entity: rt.FeedEntity, timetable: Timetable, language: str
) -> ServiceAlert | Refusal:
    alert = entity.alert
    where = f"{entity_path(index, entity.id)}.alert"
    informed = []
    for j, sel in enumerate(alert.informed_entity):
        at = f"{where}.informed_entity[{j}]"
        trip_id = sel.trip.trip_id if sel.HasField("trip") and sel.trip.trip_id else None
        if sel.route_id and sel.route_id not in timetable.routes:
            return Refusal(UNKNOWN_ROUTE, f"{at}.route_id", sel.route_id, "not in the static feed", entity.id)
        if trip_id and trip_id not in timetable.trips:
            return Refusal(UNKNOWN_TRIP, f"{at}.trip.trip_id", trip_id, "not in the static feed", entity.id)
        if sel.stop_id and sel.stop_id not in timetable.stops:
            return Refusal(UNKNOWN_STOP, f"{at}.stop_id", sel.stop_id, "not in the static feed", entity.id)
        informed.append(
            InformedEntity(
                sel.agency_id or None,
                sel.route_id or None,
                sel.route_type if sel.HasField("route_type") else None,
                sel.direction_id if sel.HasField("direction_id") else None,
                trip_id,
                sel.stop_id or None,
            )
        )
    if not informed:
        # The reference requires at least one: an alert about nothing cannot be shown anywhere.
        return Refusal(
            BAD_ENTITY, f"{where}.informed_entity", "", "an alert needs an informed entity", entity.id
        )
    periods = tuple(
        (p.start * 1000 if p.start else None, p.end * 1000 if p.end else None) for p in alert.active_period
    )
    return ServiceAlert(
        alert_id=entity.id,
        cause=CAUSE.get(alert.cause) if alert.HasField("cause") else None,
        effect=EFFECT.get(alert.effect) if alert.HasField("effect") else None,
        severity=SEVERITY.get(alert.severity_level) if alert.HasField("severity_level") else None,
        header_text=translation(alert.header_text, language),
        description_text=translation(alert.description_text, language),
        url=translation(alert.url, language),
        periods=periods,
        informed=tuple(informed),
        content_sha256=hashlib.sha256(alert.SerializeToString(deterministic=True)).hexdigest(),
    )
