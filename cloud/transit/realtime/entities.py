"""One view of a feed's entities, whether it sends them whole or as differences.

FULL_DATASET: every message holds all current entities; one missing is gone. DIFFERENTIAL
(gtfs-realtime.proto, `Incrementality`): a message holds only what changed, `is_deleted` removes
an entity, and the rest stay as last sent. `apply` turns both into the same thing: the entities
of this message (for readings: what was sent is what is new) and the whole current view (for
what depends on absence: a trip that ended, an alert that was lifted).
"""

from __future__ import annotations

from dataclasses import dataclass

from google.transit import gtfs_realtime_pb2 as rt

from edge.contract.gtfs.realtime import DIFFERENTIAL


@dataclass(frozen=True, slots=True)
class Applied:
    sent: list[tuple[int, rt.FeedEntity]]  # (index in the message, entity), deletions left out
    view: dict[str, rt.FeedEntity]  # every current entity by id
    deleted: list[str]
    is_differential: bool


class EntityView:
    def __init__(self) -> None:
        self._view: dict[str, rt.FeedEntity] = {}

    def apply(self, message: rt.FeedMessage) -> Applied:
        is_differential = message.header.incrementality == DIFFERENTIAL
        sent: list[tuple[int, rt.FeedEntity]] = []
        deleted: list[str] = []
        view = self._view if is_differential else {}
        for i, entity in enumerate(message.entity):
            if entity.is_deleted:
                # In a full dataset a deleted entity is simply not current (the reference allows
                # is_deleted only in differential feeds; some full feeds send it anyway).
                if view.pop(entity.id, None) is not None or not is_differential:
                    deleted.append(entity.id)
                continue
            view[entity.id] = entity
            sent.append((i, entity))
        self._view = view
        # A differential view lives on and changes with the next message: the caller gets a copy.
        return Applied(sent, dict(view) if is_differential else view, deleted, is_differential)
