"""The Batch envelope: what one MQTT data message carries.

A batch holds readings of one kind from one gateway. `seq` counts the gateway's batches and
survives restarts, so the cloud can count gaps (lost batches) and duplicates (redeliveries).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from edge.contract.errors import SchemaError
from edge.contract.ids import Id
from edge.contract.kinds import SensorKind
from edge.contract.reading import Reading, to_utc_ms

SCHEMA_VERSION = 1
MAX_READINGS_PER_BATCH = 10_000
# seq must fit the signed 64-bit integers of orjson, SQLite and InfluxDB; above it `encode` fails.
MAX_SEQ = 2**63 - 1


class Envelope(BaseModel):
    """The batch header, validated before (and independently of) its readings."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Literal[1] = 1  # SCHEMA_VERSION
    org: Id
    gateway: Id
    kind: SensorKind
    seq: int = Field(ge=0, le=MAX_SEQ)
    sent_at: AwareDatetime

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
            org=first.org,
            gateway=first.gateway,
            kind=first.kind,
            seq=seq,
            sent_at=sent_at,
            readings=tuple(readings),
        )
