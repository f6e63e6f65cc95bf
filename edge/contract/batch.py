"""The Batch envelope: what one MQTT data message carries.

A batch holds readings of one kind from one gateway. `seq` counts the gateway's batches and
survives restarts, so the cloud can count gaps (lost batches) and duplicates (redeliveries).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    field_validator,
    model_validator,
)

from edge.contract.errors import SchemaError
from edge.contract.ids import RESERVED_ORGS, Id
from edge.contract.kinds import SensorKind
from edge.contract.reading import Reading, WireTimestamp, to_utc_ms

SCHEMA_VERSION = 1
MAX_READINGS_PER_BATCH = 10_000
# seq must fit the signed 64-bit integers of orjson, SQLite and InfluxDB; above it `encode` fails.
MAX_SEQ = 2**63 - 1


def _plain_int(value: Any) -> Any:
    # Literal[1] alone would take `true` and `1.0` (they equal 1 in Python).
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"schema version must be the integer {SCHEMA_VERSION}")
    return value


class Envelope(BaseModel):
    """The batch header, validated before (and independently of) its readings."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Annotated[Literal[1], BeforeValidator(_plain_int)]  # SCHEMA_VERSION; required
    org: Id
    gateway: Id
    kind: SensorKind
    seq: StrictInt = Field(ge=0, le=MAX_SEQ)
    sent_at: WireTimestamp

    @field_validator("org")
    @classmethod
    def _not_reserved(cls, org: str) -> str:
        if org in RESERVED_ORGS:
            raise ValueError(f"{org!r} is reserved for the cloud's topics")
        return org

    @field_validator("sent_at")
    @classmethod
    def _utc_ms(cls, ts: datetime) -> datetime:
        return to_utc_ms(ts)


class Batch(Envelope):
    readings: tuple[Reading, ...] = Field(min_length=1, max_length=MAX_READINGS_PER_BATCH)

    @model_validator(mode="after")
    def _readings_match_envelope(self) -> Self:
        for i, r in enumerate(self.readings):
            if (r.org, r.gateway, r.kind) != (self.org, self.gateway, self.kind):
                raise SchemaError(
                    f"reading belongs to {r.org}/{r.gateway}/{r.kind.value}, "
                    f"not to this batch's {self.org}/{self.gateway}/{self.kind.value}",
                    field=f"readings[{i}]",
                    value=r.sensor,
                )
        return self

    @classmethod
    def of(cls, readings: list[Reading], *, seq: int, sent_at: datetime) -> Batch:
        first = readings[0]
        return cls(
            v=SCHEMA_VERSION,
            org=first.org,
            gateway=first.gateway,
            kind=first.kind,
            seq=seq,
            sent_at=sent_at,
            readings=tuple(readings),
        )
