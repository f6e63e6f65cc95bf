"""A refused entity: what it referred to that the static feed does not hold, or what was wrong."""

from __future__ import annotations

from dataclasses import dataclass

UNKNOWN_TRIP = "unknown_trip"
UNKNOWN_STOP = "unknown_stop"
UNKNOWN_ROUTE = "unknown_route"
BAD_ENTITY = "bad_entity"
BAD_FEED = "bad_feed"


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: str  # one of the constants above
    field: str  # the path in the message: entity[3].vehicle.trip.trip_id
    value: str
    message: str
    entity_id: str = ""


def entity_path(index: int, entity_id: str) -> str:
    """Where an entity is: its place in this message, or (carried over from an earlier message of
    a differential feed) its id."""
    return f"entity[{index}]" if index >= 0 else f"entity[id={entity_id}]"
