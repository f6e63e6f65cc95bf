"""Bytes ⇄ Batch: the JSON wire format of data messages, with a size cap.

Wire form (one kind, one gateway per message)::

    {"v": 1, "org": "comune-prato", "gateway": "gw-mercatale", "kind": "parking", "seq": 42,
     "sent_at": "2026-11-24T08:00:01.250Z",
     "readings": [{"sensor": "p-mercatale", "ts": "2026-11-24T08:00:00.000Z",
                   "fields": {"occupied": 410, "capacity": 520, "occupancy_pct": 78.8},
                   "tags": {"zone": "centro"}}]}

`decode` is lenient per reading: a bad reading is rejected with its path and value while its
valid neighbours are kept, because one broken sensor must not silence a whole gateway.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import ValidationError

from edge.contract.batch import MAX_READINGS_PER_BATCH, Batch, Envelope
from edge.contract.errors import (
    ContractError,
    DecodeError,
    PayloadTooLargeError,
    SchemaError,
)
from edge.contract.reading import Reading

DEFAULT_MAX_PAYLOAD_BYTES = 1_048_576


def format_ts(ts: datetime) -> str:
    """RFC 3339 UTC with milliseconds, the one timestamp form on the wire."""
    # isoformat, not strftime: glibc's %Y does not zero-pad years below 1000 ("999-01-01").
    return ts.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def reading_to_wire(r: Reading) -> dict[str, Any]:
    wire: dict[str, Any] = {"sensor": r.sensor, "ts": format_ts(r.ts), "fields": r.fields}
    if r.tags:
        wire["tags"] = r.tags
    return wire


def encode(batch: Batch) -> bytes:
    return orjson.dumps(
        {
            "v": batch.v,
            "org": batch.org,
            "gateway": batch.gateway,
            "kind": batch.kind.value,
            "seq": batch.seq,
            "sent_at": format_ts(batch.sent_at),
            "readings": [reading_to_wire(r) for r in batch.readings],
        }
    )


@dataclass(frozen=True, slots=True)
class RejectedReading:
    """A reading (or a whole message, index None) refused: it broke the contract (or, in ingest,
    a limit such as the time window), with the error naming the field and value."""

    error: ContractError
    index: int | None = None
    sensor: str | None = None


@dataclass(slots=True)
class DecodedBatch:
    """One data message decoded: its envelope, the readings that keep the contract, the rejected."""

    envelope: Envelope
    readings: list[Reading] = field(default_factory=list)
    rejects: list[RejectedReading] = field(default_factory=list)


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if part == "[key]":  # pydantic's marker for "the key itself", already named before it
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def schema_error(exc: ValidationError, prefix: str = "") -> ContractError:
    """The first problem of a pydantic error as a ContractError naming the field and value."""
    err = exc.errors(include_url=False)[0]
    cause = (err.get("ctx") or {}).get("error")
    join = "." if prefix else ""
    if isinstance(cause, ContractError):
        sub = f"{join}{cause.field}" if cause.field else ""
        return type(cause)(cause.message, field=f"{prefix}{sub}", value=cause.value)
    loc = _path(tuple(err["loc"]))
    # For a missing key pydantic's "input" is the whole enclosing object, not the field's value.
    value = None if err["type"] == "missing" else err.get("input")
    return SchemaError(err["msg"], field=f"{prefix}{join if loc else ''}{loc}", value=value)


def loads(payload: bytes) -> Any:
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        pass
    # orjson refuses NaN and Infinity, which Python's json module happily emits. Parse those
    # with the stdlib so that the one bad reading is rejected by validation, not its whole batch.
    # The fallback must stay no more lenient than orjson otherwise: UTF-8 only (RFC 8259 §8.1),
    # and no lone surrogates (`"\ud800"`, RFC 8259 §8.2), which crash pydantic's error
    # reporting and every later UTF-8 encode; orjson.dumps refuses them (and maps NaN to null).
    try:
        raw = json.loads(payload.decode("utf-8"))
        orjson.dumps(raw)
        return raw
    except (ValueError, RecursionError, TypeError) as exc:
        raise DecodeError(f"not JSON: {exc}", field="payload", value=payload[:64]) from None


def decode(payload: bytes, *, max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> DecodedBatch:
    """Decode a data message; raises ContractError only when the whole message is unusable."""
    if len(payload) > max_bytes:
        raise PayloadTooLargeError(
            f"{len(payload)} bytes exceeds the limit of {max_bytes}", field="payload", value=len(payload)
        )
    raw = loads(payload)
    if not isinstance(raw, dict):
        raise SchemaError("expected a JSON object", field="payload", value=raw)
    readings_raw = raw.pop("readings", None)
    try:
        envelope = Envelope.model_validate(raw)
    except ValidationError as exc:
        raise schema_error(exc) from None
    if not isinstance(readings_raw, list) or not readings_raw:
        raise SchemaError("expected a non-empty list", field="readings", value=readings_raw)
    if len(readings_raw) > MAX_READINGS_PER_BATCH:
        raise SchemaError(
            f"more than {MAX_READINGS_PER_BATCH} readings", field="readings", value=len(readings_raw)
        )
    out = DecodedBatch(envelope)
    common = {"kind": envelope.kind, "org": envelope.org, "gateway": envelope.gateway}
    for i, item in enumerate(readings_raw):
        sensor = item.get("sensor") if isinstance(item, dict) else None
        if not isinstance(item, dict):
            err: ContractError = SchemaError("expected an object", field=f"readings[{i}]", value=item)
            out.rejects.append(RejectedReading(err, i))
            continue
        if common.keys() & item.keys():
            extra = sorted(common.keys() & item.keys())[0]
            err = SchemaError("belongs to the envelope", field=f"readings[{i}].{extra}", value=item[extra])
            out.rejects.append(RejectedReading(err, i, sensor if isinstance(sensor, str) else None))
            continue
        try:
            out.readings.append(Reading.model_validate({**item, **common}))
        except ValidationError as exc:
            out.rejects.append(
                RejectedReading(
                    schema_error(exc, f"readings[{i}]"), i, sensor if isinstance(sensor, str) else None
                )
            )
    return out


def decode_strict(payload: bytes, *, max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> Batch:
    """Decode a whole batch or raise the first problem found."""
    decoded = decode(payload, max_bytes=max_bytes)
    if decoded.rejects:
        raise decoded.rejects[0].error
    return Batch(**decoded.envelope.model_dump(), readings=tuple(decoded.readings))
