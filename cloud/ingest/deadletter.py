"""Dead letters: rejected input kept with its reason, field and value, and counted.

Each dead letter is written to InfluxDB (measurement `sitroom_deadletter`, in the same write as
the valid readings beside it, so it is as durable as they are) and published on
`sr/v1/deadletter/{org}/{gateway}` for anyone watching live.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from cloud.core.intake import Refusal
from cloud.io.influx.lineprotocol import line
from edge.contract import ContractError, format_ts, short_repr, topics

MEASUREMENT = "sitroom_deadletter"
_EXCERPT_BYTES = 256


@dataclass(frozen=True, slots=True)
class DeadLetter:
    received_at: datetime
    topic: str
    reason: str  # too_large | bad_json | schema | topic | policy | unknown_sensor | wrong_kind | influx
    field: str
    value: str
    message: str
    org: str
    gateway: str
    sensor: str
    seq: int | None
    payload_size: int
    payload_sha256: str
    payload_excerpt: str

    @classmethod
    def of(
        cls,
        error: ContractError | None,
        *,
        topic: str,
        payload: bytes,
        org: str = topics.UNKNOWN,
        gateway: str = topics.UNKNOWN,
        sensor: str = "",
        seq: int | None = None,
        received_at: datetime | None = None,
        reason: str | None = None,
        message: str | None = None,
    ) -> DeadLetter:
        return cls(
            received_at=received_at or datetime.now(UTC),
            topic=topic[:256],
            reason=reason or (error.reason if error else "unknown"),
            field=error.field if error else "",
            value=short_repr(error.value) if error and error.value is not None else "",
            message=(message or (error.message if error else ""))[:1000],
            org=org,
            gateway=gateway,
            sensor=sensor,
            seq=seq,
            payload_size=len(payload),
            payload_sha256=hashlib.sha256(payload).hexdigest(),
            payload_excerpt=payload[:_EXCERPT_BYTES].decode("utf-8", errors="replace"),
        )

    @classmethod
    def of_refusal(
        cls,
        refusal: Refusal,
        *,
        topic: str,
        payload: bytes,
        org: str,
        gateway: str = topics.UNKNOWN,
        seq: int | None = None,
    ) -> DeadLetter:
        """The dead letter of what a way in refused before it was a reading (an NGSI-LD entity of
        an unknown type, a GeoJSON feature without a vehicle), as its refusal says."""
        return cls(
            received_at=datetime.now(UTC),
            topic=topic[:256],
            reason=refusal.reason,
            field=refusal.field,
            value=refusal.value,
            message=refusal.message[:1000],
            org=org,
            gateway=gateway,
            sensor=refusal.sensor,
            seq=seq,
            payload_size=len(payload),
            payload_sha256=hashlib.sha256(payload).hexdigest(),
            payload_excerpt=payload[:_EXCERPT_BYTES].decode("utf-8", errors="replace"),
        )

    @property
    def mqtt_topic(self) -> str:
        return topics.deadletter(self.org, self.gateway)

    def to_json(self) -> bytes:
        body: dict[str, Any] = {
            "received_at": format_ts(self.received_at),
            "topic": self.topic,
            "reason": self.reason,
            "field": self.field,
            "value": self.value,
            "message": self.message,
            "org": self.org,
            "gateway": self.gateway,
            "sensor": self.sensor,
            "seq": self.seq,
            "payload_size": self.payload_size,
            "payload_sha256": self.payload_sha256,
            "payload_excerpt": self.payload_excerpt,
        }
        return orjson.dumps(body)

    def to_line(self, ts_ns_unique: datetime, instance: str = "") -> str:
        """`ts_ns_unique` must differ between one instance's dead letters, or InfluxDB would
        collapse them; the `instance` tag keeps workers of a shared group apart, whose clocks
        may give two dead letters the same nanosecond."""
        org = self.org if self.org else topics.UNKNOWN
        tags = {"reason": self.reason, "org": org, "gateway": self.gateway or topics.UNKNOWN}
        if instance:
            tags["instance"] = instance
        return line(
            MEASUREMENT,
            tags,
            {
                "count": 1,
                "field": self.field,
                "value": self.value,
                "message": self.message,
                "topic": self.topic,
                "sensor": self.sensor,
                "payload_size": self.payload_size,
                "payload_sha256": self.payload_sha256,
            },
            ts_ns_unique,
        )
