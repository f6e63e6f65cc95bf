"""A `CityWork` entity read back as a worksite: the inverse of `entities.city_work`.

Not wired to the notification receiver yet (a partner's worksites would enter our registry,
which needs a decision on ownership and area first); it is what makes an export of our worksites
readable again, and what an import of a partner's CityWork entities will use.
"""

from __future__ import annotations

from typing import Any

from cloud.core.worksites import Approval, WorkType
from cloud.core.worksites import WorksiteStatus as Status
from cloud.exchange.context import local_id
from cloud.exchange.entities import WORK_TARGETS
from cloud.exchange.forms import key_values

_TARGET_TYPES = {target: work_type for work_type, target in WORK_TARGETS.items()}
# CityWork `workState` -> (our status, our approval); the inverse of entities.work_state.
_STATES: dict[str, tuple[Status, Approval | None]] = {
    "pendingAuthorization": (Status.PLANNED, Approval.PENDING),
    "approved": (Status.PLANNED, Approval.APPROVED),
    "reject": (Status.PLANNED, Approval.REJECTED),
    "open": (Status.ACTIVE, None),
    "other": (Status.SUSPENDED, None),
    "completed": (Status.COMPLETED, None),
    "canceled": (Status.CANCELLED, None),
}


def _work_type(attrs: dict[str, Any]) -> str:
    ours = attrs.get("workType")
    if ours in {t.value for t in WorkType}:
        return str(ours)
    targets = attrs.get("workTarget") or []
    found = _TARGET_TYPES.get(targets[0]) if isinstance(targets, list) and targets else None
    return (found or WorkType.OTHER).value


def _local(entity_id: str) -> str:
    parts = entity_id.split(":", 4)
    return (
        parts[4] if len(parts) == 5 and parts[:3] == ["urn", "ngsi-ld", "CityWork"] else local_id(entity_id)
    )


def worksite_fields(entity: dict[str, Any]) -> tuple[dict[str, Any], Approval | None]:
    """The `WorksiteCreate` fields of a CityWork entity (either form), and its approval if it says."""
    attrs = key_values(entity)
    street = (attrs.get("address") or {}).get("streetAddress")
    if not street and attrs.get("roadImpacted"):
        street = attrs["roadImpacted"][0].get("roadName")
    status, approval = _STATES.get(str(attrs.get("workState")), (Status.PLANNED, None))
    fields: dict[str, Any] = {
        "id": _local(str(attrs["id"])),
        "owner": attrs.get("dataProvider") or (attrs.get("owner") or [None])[0],
        "title": attrs.get("name"),
        "description": attrs.get("description", ""),
        "street": street,
        "work_type": _work_type(attrs),
        "permit_ref": attrs.get("workNumber"),
        "geometry": attrs.get("location"),
        "planned_start": attrs.get("startDate"),
        "planned_end": attrs.get("endDate"),
        "status": status.value,
        "impact": {"bus_lines": [b.get("lineName") for b in attrs.get("busImpacted") or []]},
    }
    return fields, approval


__all__ = ["worksite_fields"]
