"""Alerts: what a rule raises about an entity (a sensor or a gateway), and how they travel."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

import orjson

from cloud.io.influx.lineprotocol import FieldValue, line
from edge.contract import format_ts, topics

Severity = Literal["info", "warning", "critical"]
State = Literal["firing", "acknowledged", "resolved"]
AlertKey = tuple[str, str, str]  # rule, org, entity
MEASUREMENT = "alerts"


@dataclass(frozen=True, slots=True)
class Alert:
    rule: str
    org: str
    entity: str  # the sensor id, or the gateway id for gateway alerts
    gateway: str
    kind: str  # the sensor kind, or "gateway"
    severity: Severity
    state: State
    since: datetime  # when the condition began (event time)
    ts: datetime  # when this state was decided (event time)
    message: str
    value: float | None = None
    threshold: float | None = None
    # What an operator needs beside the message: baseline, score, nearby worksites, a hint...
    context: dict[str, Any] | None = field(default=None, compare=False, hash=False)
    id: int | None = field(default=None, compare=False, hash=False)  # the alert store's id
    # Set on an acknowledged alert: who took it, and how long after it fired (time to acknowledge).
    acked_by: str | None = field(default=None, compare=False, hash=False)
    ack_s: float | None = field(default=None, compare=False, hash=False)

    @property
    def key(self) -> AlertKey:
        return (self.rule, self.org, self.entity)

    def resolved(self, ts: datetime, message: str, value: float | None = None) -> Alert:
        return replace(self, state="resolved", ts=ts, message=message, value=value)

    @property
    def topic(self) -> str:
        return topics.alert(self.org, self.rule, self.entity)

    def to_json(self) -> bytes:
        body: dict[str, Any] = {
            "rule": self.rule,
            "org": self.org,
            "entity": self.entity,
            "gateway": self.gateway,
            "kind": self.kind,
            "severity": self.severity,
            "state": self.state,
            "since": format_ts(self.since),
            "ts": format_ts(self.ts),
            "value": self.value,
            "threshold": self.threshold,
            "message": self.message,
        }
        if self.id is not None:
            body["id"] = self.id
        if self.acked_by is not None:
            body["acked_by"] = self.acked_by
        if self.ack_s is not None:
            body["ack_s"] = self.ack_s
        if self.context:
            body["context"] = self.context
        return orjson.dumps(body)

    def to_line(self) -> str:
        fields: dict[str, FieldValue] = {
            "message": self.message,
            "active": 0 if self.state == "resolved" else 1,
            # Open and nobody on it yet: the last point of an alert says whether it still is.
            "unacked": 1 if self.state == "firing" else 0,
            "since_ms": int(self.since.timestamp() * 1000),
        }
        if self.ack_s is not None:
            fields["ack_s"] = float(self.ack_s)
        if self.value is not None:
            fields["value"] = float(self.value)
        if self.threshold is not None:
            fields["threshold"] = float(self.threshold)
        tags = {
            "rule": self.rule,
            "org": self.org,
            "entity": self.entity,
            "gateway": self.gateway,
            "kind": self.kind,
            "severity": self.severity,
            "state": self.state,
        }
        return line(MEASUREMENT, tags, fields, self.ts)
