"""Data that arrives over HTTP as other features hand it to ingest: the `Intake` protocol.

The push API is ingest's own; the NGSI-LD receiver (`cloud.exchange`) is another feature, so it
reaches ingest's verdict and storage only through this protocol, which the API's wiring
(`cloud/apps/api.py`) fills with ingest's `DirectIngest`. A sender's document (a notification,
a GeoJSON collection) becomes one or more wire batches (`Submission`), each with a `renumber`
that takes a reading's index and path back to where the sender wrote it, so that every refusal
(`Refusal`) and dead letter points into the sender's own document::

    refusals = intake.store(
        org, source, body,
        [Submission(wire_bytes(batch), renumber, companions={0: site_point})],
        refused=[Refusal(3, "x", "data[3].type", "unknown_type", "not a type we read", "'Foo'")],
        gateway="ngsi-ld", is_partner_data=True,
    )

`store` returns only once InfluxDB accepted everything (the readings, their companions, the dead
letters), or raises `StorageUnavailableError` having acknowledged nothing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from edge.contract import ContractError, short_repr


class StorageUnavailableError(RuntimeError):
    """InfluxDB did not accept the write within the time allowed; nothing was acknowledged."""

    def __init__(self, cause: str, retry_after_s: int) -> None:
        self.cause = cause
        self.retry_after_s = retry_after_s
        super().__init__(f"InfluxDB unavailable: {cause}")


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why one reading (or, with index None, a whole document) was not stored."""

    index: int | None
    sensor: str
    field: str  # the path from the document's root, e.g. `readings[3].fields.lat`
    reason: str  # the dead letter's reason: schema | policy | unknown_sensor | forbidden | influx ...
    message: str
    value: str  # a bounded repr of the offending value ("" when there is none)

    @classmethod
    def of(cls, error: ContractError, index: int | None, sensor: str = "") -> Refusal:
        value = "" if error.value is None else short_repr(error.value)
        return cls(index, sensor, error.field, error.reason, error.message, value)

    def problem(self) -> dict[str, Any]:
        """As the API's refusals list each problem (`errors`: field, message, value)."""
        return {"field": self.field, "message": self.message, "value": self.value or None}


# (reading index, path in the wire batch) -> the same in the sender's own document.
Renumber = Callable[[int, str], tuple[int, str]]


def as_sent(index: int, path: str) -> tuple[int, str]:
    """The renumbering of a document that is itself a wire batch."""
    return index, path


@dataclass(frozen=True, slots=True)
class Submission:
    """One wire batch made from a sender's document."""

    payload: bytes  # the wire contract's JSON batch (`wire_bytes`)
    renumber: Renumber = as_sent
    # Reading index -> a line-protocol point stored only if that reading is admitted (the place a
    # partner's car park gave, for the map).
    companions: Mapping[int, str] = field(default_factory=dict)


class Intake(Protocol):
    """Ingest's verdict and storage for callers that wait for the answer."""

    def store(
        self,
        org: str,
        source: str,
        sent: bytes,
        submissions: Sequence[Submission],
        *,
        refused: Sequence[Refusal] = (),
        gateway: str,
        is_partner_data: bool = False,
    ) -> list[Refusal]:
        """Admit every submission of `org` (`source` names the way in, `sent` is the document
        as the sender sent it, kept by the dead letters), store the admitted readings and their
        companions, dead-letter the refused ones and `refused` (what the caller could not even
        make a reading of); return every refusal, by index. `is_partner_data`: a partner's own
        entities, which our installation records cannot list (`Admission.for_partners`).
        Raises ContractError when a submission is unusable as a whole (not stored then), and
        StorageUnavailableError."""
        ...


def wire_bytes(batch: dict[str, Any]) -> bytes:
    """A wire batch made from another document (GeoJSON, NGSI-LD), as bytes for the decoder.

    orjson writes NaN and infinities as null, which the contract would refuse as "expected a
    number, got NoneType"; a batch holding one goes through the stdlib, so that the contract
    refuses the value itself ("must be a finite number"), as it does on MQTT.
    """
    if not _has_non_finite(batch):
        return orjson.dumps(batch)
    return json.dumps(batch).encode()


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_non_finite(v) for v in value)
    return False


__all__ = [
    "Intake",
    "Refusal",
    "Renumber",
    "StorageUnavailableError",
    "Submission",
    "as_sent",
    "wire_bytes",
]
