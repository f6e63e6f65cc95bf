"""Organisations: who takes part in the Situation Room, in which role, and who is calling.

ONE registry of organisations serves provisioning (`sitroom provision org add`), the worksite
registry, the alert API and the console: its storage is `cloud.io.orgstore.OrgStore`, and the
features see it only through the `OrgDirectory` protocol that the wiring (`cloud/apps/`) hands
them. An organisation's id is also its MQTT topic segment (`sr/v1/{org}/...`). It belongs to
one or more of the configured areas (edge.contract.areas), the first being its home area
(where its rules run when the rules service is sharded by area); none means any area.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Protocol

from pydantic import BaseModel, ConfigDict, StringConstraints, field_validator

ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,63}$"
OrgId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
OrgName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class Role(StrEnum):
    MUNICIPALITY = "municipality"  # operators: see, edit and approve everything of their area
    UTILITY = "utility"  # utilities and operators (water, gas, waste, transport, parking, telecom)


class Organisation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: OrgId
    name: OrgName
    role: Role
    areas: tuple[OrgId, ...] = ()  # area ids, home area first; () = not bound to an area

    @field_validator("areas")
    @classmethod
    def _distinct(cls, areas: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(areas)) != len(areas):
            raise ValueError(f"an area is listed twice: {list(areas)}")
        return areas


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated organisation (an API token, a console operator acting for it)."""

    org: str
    role: Role

    @property
    def is_operator(self) -> bool:
        return self.role is Role.MUNICIPALITY


class OrgDirectory(Protocol):
    """What features ask of the organisation registry."""

    def organisations(self) -> list[Organisation]: ...

    def organisation(self, org_id: str) -> Organisation: ...  # NotFoundError when unknown

    def caller_for_token(self, token: str) -> Caller | None: ...
