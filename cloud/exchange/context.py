"""NGSI-LD `@context`s and entity ids.

Each Smart Data Models domain publishes its JSON-LD context; the NGSI-LD core context comes last
(ETSI GS CIM 009: the core context's terms may not be overridden, and a broker adds it anyway).
Entity ids are URNs `urn:ngsi-ld:{type}:{org}:{local id}`, the form the models' normalized
examples use, so that one organisation's ids never collide with another's.
"""

from __future__ import annotations

import hashlib
import re

CORE_CONTEXT = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"
PARKING_CONTEXT = (
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Parking/master/context.jsonld"
)
TRANSPORTATION_CONTEXT = (
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Transportation/master/context.jsonld"
)
DOMAIN_OF = {
    "OffStreetParking": PARKING_CONTEXT,
    "ParkingSpot": PARKING_CONTEXT,
    "TrafficFlowObserved": TRANSPORTATION_CONTEXT,
    "Vehicle": TRANSPORTATION_CONTEXT,
    "FleetVehicleStatus": TRANSPORTATION_CONTEXT,
    "CityWork": TRANSPORTATION_CONTEXT,
    "EVChargingStation": TRANSPORTATION_CONTEXT,
}
_NOT_ID = re.compile(r"[^a-z0-9-]+")
_MAX_ID = 63


def context_of(entity_type: str) -> list[str]:
    return [DOMAIN_OF[entity_type], CORE_CONTEXT]


def urn(entity_type: str, org: str, local: str) -> str:
    return f"urn:ngsi-ld:{entity_type}:{org}:{local}"


def local_id(entity_id: str) -> str:
    """Our id (`[a-z0-9-]`, as sensors and worksites have) for an entity id of any form.

    The last `:`-separated part of the URN, as it is when it already is one of our ids (so our
    own ids come back unchanged); otherwise lower-cased, other characters turned into `-`, and
    a short hash of the whole id added, so that two partner ids never end up as one.
    """
    last = entity_id.rsplit(":", 1)[-1]
    if re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", last):
        return last
    digest = hashlib.sha256(entity_id.encode()).hexdigest()[:8]
    base = _NOT_ID.sub("-", last.lower()).strip("-")[: _MAX_ID - 9] or "x"
    return f"{base}-{digest}"


__all__ = [
    "CORE_CONTEXT",
    "DOMAIN_OF",
    "PARKING_CONTEXT",
    "TRANSPORTATION_CONTEXT",
    "context_of",
    "local_id",
    "urn",
]
