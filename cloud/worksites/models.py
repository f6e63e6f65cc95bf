"""The worksite model, aligned with the FIWARE Smart Data Model `CityWork`.

The mapping to CityWork, both ways, is the exchange's (`cloud/exchange/entities.py`,
`citywork.py`; docs/exchange.md); the vocabulary (status, work type, approval) is the kernel's
(`cloud/core/worksites.py`). Fields CityWork has no slot for (actual dates, most of the impact)
are ours; see docs/worksites.md.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from cloud.core.errors import InvalidInputError
from cloud.core.geo import GeometryError, parse_geojson, to_geojson
from cloud.core.orgs import ID_PATTERN, OrgId
from cloud.core.worksites import Approval, WorksiteStatus, WorkType

ID_RE = re.compile(ID_PATTERN)
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
LongText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=5000)]
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
# The column is a 32-bit INTEGER on PostgreSQL; no worksite changes two billion times.
MAX_VERSION = 2**31 - 1


class InvalidWorksiteError(InvalidInputError):
    """A worksite that fails validation; `problems` name each field."""


# The status vocabulary is the kernel's: other features (console, exports) speak it too.
Status = WorksiteStatus


class Restriction(StrEnum):
    """Vehicle restrictions, named as WZDx 4.2 `RestrictionType` so they export one to one."""

    NO_TRUCKS = "no-trucks"
    NO_PARKING = "no-parking"
    REDUCED_WIDTH = "reduced-width"
    REDUCED_HEIGHT = "reduced-height"
    REDUCED_WEIGHT = "reduced-weight"
    LOCAL_ACCESS_ONLY = "local-access-only"
    NO_PASSING = "no-passing"


class Impact(BaseModel):
    """What the worksite takes from traffic."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    road_closed: bool = False
    lanes_closed: int = Field(0, ge=0, le=10)
    detour: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] | None = None
    parking_spaces_removed: int = Field(0, ge=0, le=10_000)
    bus_lines: list[Label] = Field(default_factory=list, max_length=50)
    bus_stops: list[Label] = Field(default_factory=list, max_length=100)
    restrictions: list[Restriction] = Field(default_factory=list, max_length=len(Restriction))


def _geometry(value: Any) -> dict[str, Any]:
    try:
        return to_geojson(parse_geojson(value))
    except GeometryError as exc:
        raise ValueError(exc.reason) from None


def _utc(value: datetime | None) -> datetime | None:
    # Stored with microseconds cut to milliseconds, like every timestamp on our wire.
    if value is None:
        return None
    try:
        value = value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        raise ValueError("out of the range of dates (years 1 to 9999 in UTC)") from None
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


class WorksiteFields(BaseModel):
    """The fields a client writes. Every check names its field (pydantic `loc`)."""

    model_config = ConfigDict(extra="forbid", str_max_length=5000)

    title: Text
    description: LongText = ""
    street: Text = Field(description="Road name(s) as signposted, e.g. 'Via Roma'; WZDx road_names")
    work_type: WorkType
    permit_ref: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] | None = None
    geometry: dict[str, Any] = Field(
        description="GeoJSON Point, LineString or Polygon (or Multi-) in WGS84 [lon, lat]",
    )
    planned_start: AwareDatetime
    planned_end: AwareDatetime
    actual_start: AwareDatetime | None = None
    actual_end: AwareDatetime | None = None
    status: Status = Status.PLANNED
    impact: Impact = Field(default_factory=Impact)

    @field_validator("geometry", mode="before")
    @classmethod
    def _check_geometry(cls, value: Any) -> dict[str, Any]:
        return _geometry(value)

    @field_validator("planned_start", "planned_end", "actual_start", "actual_end")
    @classmethod
    def _to_utc(cls, value: datetime | None) -> datetime | None:
        return _utc(value)

    @field_validator("planned_end")
    @classmethod
    def _end_after_start(cls, value: datetime, info: ValidationInfo) -> datetime:
        start = info.data.get("planned_start")
        if start is not None and value <= start:
            raise ValueError(f"must be after planned_start ({start.isoformat()})")
        return value

    @field_validator("actual_end")
    @classmethod
    def _actual_end_after_start(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        start = info.data.get("actual_start")
        if value is not None:
            if start is None:
                raise ValueError("actual_end needs actual_start")
            if value <= start:
                raise ValueError(f"must be after actual_start ({start.isoformat()})")
        return value


class WorksiteCreate(WorksiteFields):
    owner: OrgId | None = Field(
        None,
        description="Owner organisation; defaults to the caller's. Only the municipality may set another.",
    )
    id: OrgId | None = Field(None, description="Optional client-chosen id ([a-z0-9-]); generated otherwise")


class WorksiteImport(WorksiteCreate):
    """One worksite of an import (WZDx, CSV): what a client writes, plus what the file claims
    about the registry's own state. The claims are checked by the workflow, never taken as they
    are (`WorksiteStore.import_many`): `version` is the one the file was exported at (a worksite
    changed since is a conflict, as with `If-Match`); `approval` counts only as the
    municipality's own decision."""

    approval: Approval | None = None
    version: Annotated[int, Field(strict=True, ge=1, le=MAX_VERSION)] | None = None


class WorksitePatch(BaseModel):
    """A partial update: only the fields present change; the result is validated whole."""

    model_config = ConfigDict(extra="forbid")

    title: Any = None
    description: Any = None
    street: Any = None
    work_type: Any = None
    permit_ref: Any = None
    geometry: Any = None
    planned_start: Any = None
    planned_end: Any = None
    actual_start: Any = None
    actual_end: Any = None
    status: Any = None
    impact: Any = None


class Worksite(WorksiteFields):
    """A stored worksite."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    owner: str
    approval: Approval = Approval.PENDING
    approved_by: str | None = None
    created_at: datetime
    updated_at: datetime
    version: int = 1

    @property
    def start(self) -> datetime:
        """When the street is (or will be) taken: actual start when known, else the plan."""
        return self.actual_start or self.planned_start

    @property
    def end(self) -> datetime:
        return self.actual_end or self.planned_end

    def writable(self) -> dict[str, Any]:
        return self.model_dump(mode="python", include=set(WorksiteFields.model_fields))


class HistoryEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    worksite_id: str
    version: int
    at: datetime
    actor: str
    action: Literal["create", "update", "approve", "reject", "import"]
    changes: dict[str, list[Any]] = Field(description="field → [old, new] (JSON values)")
