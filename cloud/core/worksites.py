"""The worksite as other features see it: its status vocabulary and the `WorksiteBook` protocol
(the console reads and edits worksites through it; the worksite registry implements it)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Protocol

from cloud.core.orgs import Caller


class WorksiteStatus(StrEnum):
    PLANNED = "planned"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


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
