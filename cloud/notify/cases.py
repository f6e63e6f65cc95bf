"""Cases kept beside each notification channel type (`cases.yaml`): alerts in, deliveries out.

A cases file names the kind of real `receiver` its channel delivers to — `http` (a web server),
`smtp` (a mail server) or `mqtt` (a broker) — which the meta-test starts, and an `alert`
template. Each case configures one channel (`type` and `name` are filled in; a value `"{url}"`,
`"{host}"` or `"{port}"` is the receiver's), sends it groups of alerts (each alert the template
with some values changed), and lists what the receiver must have got, in order, or the
`DeliveryError` expected. What each receiver reports of a delivery:

- `http`: `{path, headers (lower-case names), json}` per POST (`replies` lists the
  HTTP statuses to answer first, then 200);
- `smtp`: `{from, to, subject, body}` per message;
- `mqtt`: `{topic, retain, qos, json}` per retained message on `sr/v1/alerts/#` once every
  group is sent (the broker is the channel's context: a config may leave `url` out).

An expected delivery gives only the keys it cares about, at any depth; a string can also be
`{match: REGEX}` (full match) or `{contains: TEXT}`.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from cloud.core.alerts import Alert, Severity, State
from cloud.notify.base import ChannelConfig
from cloud.notify.channels import folder, get

Receiver = Literal["http", "smtp", "mqtt"]


class AlertSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rule: str
    org: str
    entity: str
    gateway: str
    kind: str
    severity: Severity
    state: State
    since: AwareDatetime
    ts: AwareDatetime
    message: str
    value: float | None = None
    threshold: float | None = None
    context: dict[str, Any] | None = None

    def alert(self) -> Alert:
        return Alert(**dict(self))


class Case(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str
    config: dict[str, Any] = {}
    replies: list[int] = []  # http receiver: statuses to answer first
    send: list[list[dict[str, Any]]] = Field(min_length=1)  # groups of changes to the template
    error: str | None = None  # a DeliveryError containing this, raised by the last send
    deliveries: list[Any]


class CasesFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    receiver: Receiver
    alert: dict[str, Any]
    cases: list[Case] = Field(min_length=1)

    def groups(self, case: Case) -> list[list[Alert]]:
        return [[AlertSpec.model_validate(self.alert | change).alert() for change in g] for g in case.send]


def load(path: Path) -> CasesFile:
    return CasesFile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))


def cases_of(channel_type: str) -> CasesFile:
    return load(folder(get(channel_type)) / "cases.yaml")


def sample_configs(channel_type: str) -> list[ChannelConfig]:
    """The channels of a type's sample.yaml (a rules file's `notifications:`), validated by its Config."""
    cls = get(channel_type)
    raw = yaml.safe_load((folder(cls) / "sample.yaml").read_text(encoding="utf-8"))
    channels = raw["notifications"]["channels"]
    return [cls.Config.model_validate(c) for c in channels if c.get("type") == channel_type]


def channel_config(channel_type: str, case: Case, receiver: dict[str, Any]) -> ChannelConfig:
    """The case's config for one channel of the type, with the receiver's address filled in."""
    filled = {
        k: receiver[v[1:-1]] if isinstance(v, str) and re.fullmatch(r"\{\w+\}", v) else v
        for k, v in case.config.items()
    }
    return get(channel_type).Config.model_validate({"type": channel_type, "name": "under-test"} | filled)


def _is_matcher(expected: Any) -> bool:
    return isinstance(expected, dict) and len(expected) == 1 and next(iter(expected)) in ("match", "contains")


def as_expected(actual: Any, expected: Any) -> Any:
    """`actual` cut to the shape of `expected`: the keys it gives, matchers that hold replaced by
    themselves; so `as_expected(actual, expected) == expected` says the delivery is as expected."""
    if _is_matcher(expected):
        how, want = next(iter(expected.items()))
        text = actual if isinstance(actual, str) else repr(actual)
        holds = re.fullmatch(want, text) is not None if how == "match" else str(want) in text
        return expected if holds else actual
    if isinstance(expected, dict) and isinstance(actual, dict):
        return {k: as_expected(actual[k], v) if k in actual else "<missing>" for k, v in expected.items()}
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        return [as_expected(a, e) for a, e in zip(actual, expected, strict=True)]
    if isinstance(expected, datetime) and isinstance(actual, str):
        return expected if datetime.fromisoformat(actual.replace("Z", "+00:00")) == expected else actual
    return actual
