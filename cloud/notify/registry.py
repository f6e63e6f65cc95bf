"""The notification channel registry: channel types registered by the name a rules file uses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from cloud.core.alerts import Alert
from cloud.core.plugins import Registry, UnknownPluginError


class ChannelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")


class DeliveryError(RuntimeError):
    """A channel could not deliver, after its own retries."""

    def __init__(self, channel: str, reason: str) -> None:
        self.channel = channel
        self.reason = reason
        super().__init__(f"channel {channel!r}: {reason}")


class Channel:
    """Delivers alerts. `send` gets one alert or a storm's group (then one grouped message)."""

    kind: ClassVar[str]
    Config: ClassVar[type[ChannelConfig]]

    def __init__(self, config: ChannelConfig) -> None:
        self.config = config

    @property
    def name(self) -> str:
        return self.config.name

    def send(self, alerts: Sequence[Alert]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        return None


class UnknownChannelError(UnknownPluginError):
    what = "channel type"


_CHANNELS: Registry[Channel] = Registry("channel", "kind", UnknownChannelError)
register = _CHANNELS.register
get = _CHANNELS.get
names = _CHANNELS.names


def subject(alerts: Sequence[Alert]) -> str:
    """One line for a notification: the alert itself, or a storm's count by rule."""
    if len(alerts) == 1:
        a = alerts[0]
        return f"[{a.severity}] {a.state}: {a.rule} on {a.entity} ({a.org})"
    rules = sorted({a.rule for a in alerts})
    worst = max(alerts, key=lambda a: ("info", "warning", "critical").index(a.severity)).severity
    return f"[{worst}] {len(alerts)} alerts: {', '.join(rules[:5])}{' ...' if len(rules) > 5 else ''}"


def body(alerts: Sequence[Alert]) -> str:
    lines = []
    for a in alerts:
        where = f"{a.org}/{a.gateway}/{a.entity}"
        lines.append(f"{a.ts.isoformat()} {a.state.upper()} {a.severity} {a.rule} {where}: {a.message}")
        if a.context:
            lines.extend(f"    {k}: {v}" for k, v in a.context.items())
    return "\n".join(lines) + "\n"
