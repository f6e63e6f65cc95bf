"""The worksite as other features see it: its vocabulary (status, work type, approval), the
`WorksiteBook` protocol (the console reads and edits worksites through it) and `WorksiteDetails`
(what an export of a worksite reads: `cloud.exchange`'s CityWork). The worksite registry
implements them; the wiring (`cloud/apps/`) hands it over."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from cloud.core.orgs import Caller


class WorksiteStatus(StrEnum):
    PLANNED = "planned"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class WorkType(StrEnum):
    """What is being done; CityWork `workType` is free text, these are Prato's usual kinds."""

    WATER = "water"
    SEWER = "sewer"
    GAS = "gas"
    ELECTRICITY = "electricity"
    TELECOM = "telecom"
    DISTRICT_HEATING = "district-heating"
    ROAD = "road"
    LIGHTING = "lighting"
    WASTE = "waste"
    GREEN = "green"
    OTHER = "other"


class Approval(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class WorksiteRecord(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def owner(self) -> str: ...

    @property
    def status(self) -> WorksiteStatus: ...

    @property
    def version(self) -> int: ...


class WorksiteBook(Protocol):
    def get(self, worksite_id: str) -> WorksiteRecord: ...  # NotFoundError when unknown

    def update(self, caller: Caller, worksite_id: str, patch: dict[str, Any]) -> WorksiteRecord: ...

    def feature_collection(self) -> dict[str, Any]:
        """Every worksite as a GeoJSON FeatureCollection, for maps."""
        ...


class ImpactDetails(Protocol):
    @property
    def bus_lines(self) -> Sequence[str]: ...


class WorksiteDetails(WorksiteRecord, Protocol):
    """A worksite as an export reads it (NGSI-LD CityWork: `cloud.exchange.entities.city_work`)."""

    @property
    def title(self) -> str: ...

    @property
    def description(self) -> str: ...

    @property
    def street(self) -> str: ...

    @property
    def work_type(self) -> WorkType: ...

    @property
    def permit_ref(self) -> str | None: ...

    @property
    def geometry(self) -> dict[str, Any]: ...  # GeoJSON, WGS84 [lon, lat]

    @property
    def planned_start(self) -> datetime: ...

    @property
    def planned_end(self) -> datetime: ...

    @property
    def approval(self) -> Approval: ...

    @property
    def updated_at(self) -> datetime: ...

    @property
    def impact(self) -> ImpactDetails: ...


class WorksiteShelf(Protocol):
    """Where an export finds one worksite (`GET /worksites/{id}/ngsi-ld`)."""

    def get(self, worksite_id: str) -> WorksiteDetails: ...  # NotFoundError when unknown
