"""Alerts: what a rule raises about an entity (a sensor or a gateway), as the alert store keeps
it, and the `AlertBook` protocol through which features other than rules read and handle alerts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal, Protocol

import orjson

from edge.contract import format_ts, topics

Severity = Literal["info", "warning", "critical"]
State = Literal["firing", "acknowledged", "resolved"]
AlertKey = tuple[str, str, str]  # rule, org, entity


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


# Stored alerts are numbered by a 32-bit INTEGER column (PostgreSQL): an id past it names none.
MAX_ALERT_ID = 2**31 - 1


class AlertNotFoundError(LookupError):
    def __init__(self, alert_id: int) -> None:
        self.alert_id = alert_id
        super().__init__(f"no alert with id {alert_id}")


@dataclass(frozen=True, slots=True)
class StoredAlert:
    id: int
    rule: str
    org: str
    entity: str
    gateway: str
    kind: str
    severity: str
    state: str
    since: datetime
    fired_at: datetime
    updated_at: datetime
    acked_at: datetime | None
    acked_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    message: str
    value: float | None
    threshold: float | None
    context: dict[str, Any]
    duplicates: int
    is_silenced: bool
    is_flapping: bool

    @property
    def is_active(self) -> bool:
        return self.state != "resolved"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.__slots__:
            v = getattr(self, name)
            out[name] = v.isoformat() if isinstance(v, datetime) else v
        return out


Outcome = Literal["opened", "duplicate", "acknowledged", "resolved", "unchanged"]
ENGINE = "engine"  # the actor of the engine's own transitions in `alert_events`


@dataclass(frozen=True, slots=True)
class OperatorMove:
    """An acknowledgement or a resolution made by a person (CLI, API, console), from the
    history, with the alert as it is now."""

    event_id: int
    event: Literal["ack", "resolve"]
    actor: str
    note: str
    ts: datetime
    alert: StoredAlert


@dataclass(frozen=True, slots=True)
class Transition:
    outcome: Outcome
    alert: StoredAlert

    @property
    def should_notify(self) -> bool:
        """Opened or resolved, and neither silenced nor flapping."""
        changed = self.outcome in ("opened", "resolved", "acknowledged")
        return changed and not (self.alert.is_silenced or self.alert.is_flapping)


@dataclass(frozen=True, slots=True)
class Silence:
    id: int
    kind: str
    org: str | None
    rule: str | None
    entity: str | None
    gateway: str | None
    starts_at: datetime
    ends_at: datetime
    reason: str
    created_by: str

    def matches(self, a: Alert, at: datetime) -> bool:
        return (
            self.starts_at <= at < self.ends_at
            and self.org in (None, a.org)
            and self.rule in (None, a.rule)
            and self.entity in (None, a.entity)
            and self.gateway in (None, a.gateway)
        )


class AlertBook(Protocol):
    """What the features beside rules (the console, the demo's summary) may do with stored
    alerts: read them and move them as an operator. The rules feature's `AlertStore` is one."""

    def get(self, alert_id: int) -> StoredAlert: ...

    def active(self, org: str | None = None) -> list[StoredAlert]: ...

    def history(self, org: str | None = None, limit: int = 100) -> list[StoredAlert]: ...

    def events(self, alert_id: int) -> list[tuple[str, str, str]]: ...

    def acknowledge(
        self, alert_id: int, by: str, note: str = "", at: datetime | None = None
    ) -> Transition: ...

    def resolve(self, alert_id: int, by: str, note: str = "", at: datetime | None = None) -> Transition: ...


class AlertSink(Protocol):
    """Where alert transitions go besides MQTT and InfluxDB (notification channels, Grafana
    annotations). `submit` must not block the caller on the far end: sinks queue and deliver
    from a thread of their own."""

    def submit(self, alerts: Sequence[Alert]) -> None: ...

    def close(self) -> None: ...
