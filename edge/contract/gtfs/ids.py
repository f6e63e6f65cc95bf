"""GTFS ids (any text) as contract ids and tag values, deterministically.

A GTFS id may hold any UTF-8 ("Linea 2/A", "PO_Duomo"), while a contract id is `[a-z0-9-]` (it
is an MQTT topic level and an InfluxDB tag) and a tag value `[A-Za-z0-9_.:@-]`. An id that
already fits is kept as it is; any other is folded to the allowed characters and given a short
hash of the original, so two different GTFS ids never share a sensor or a series.
"""

from __future__ import annotations

import hashlib
import re

from edge.contract.ids import ID_RE, TAG_VALUE_PATTERN

_TAG_RE = re.compile(TAG_VALUE_PATTERN)
_NOT_ID = re.compile(r"[^a-z0-9]+")
_NOT_TAG = re.compile(r"[^A-Za-z0-9_.:@-]+")
_HASH_CHARS = 8
NO_ROUTE = "none"  # the route tag of a vehicle that runs no trip (the kind's tag set is fixed)


def _digest(text: str) -> str:
    return hashlib.blake2s(text.encode("utf-8"), digest_size=8).hexdigest()[:_HASH_CHARS]


def sensor_id(gtfs_id: str) -> str:
    """A contract id (`[a-z0-9][a-z0-9-]{0,62}`) for a vehicle or stop id of a GTFS feed."""
    if ID_RE.fullmatch(gtfs_id):
        return gtfs_id
    folded = _NOT_ID.sub("-", gtfs_id.lower()).strip("-")[: 63 - _HASH_CHARS - 1]
    return f"{folded}-{_digest(gtfs_id)}" if folded else f"x{_digest(gtfs_id)}"


def tag_value(gtfs_id: str) -> str:
    """A contract tag value (`[A-Za-z0-9_.:@-]{1,64}`) for a route id of a GTFS feed; never
    `NO_ROUTE`, which a route called "none" would otherwise be mistaken for."""
    if _TAG_RE.fullmatch(gtfs_id) and gtfs_id != NO_ROUTE:
        return gtfs_id
    folded = _NOT_TAG.sub("_", gtfs_id).strip("_")[: 64 - _HASH_CHARS - 1]
    return f"{folded}@{_digest(gtfs_id)}" if folded else _digest(gtfs_id)
