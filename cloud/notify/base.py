"""The notification channel plug-in surface: a channel's Config, what it may use, how it fails.

A channel type is a subclass of `NotificationChannel[XConfig]`: `self.config` is an `XConfig` to
the type checker. Every channel is built the same way, `cls(config, context)`: the context holds
what the process offers its channels (the service's own MQTT broker), so the router never needs
to know which channel wants what.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from cloud.core.alerts import Alert
from cloud.io.mqtt import Outbound
from edge.contract import BrokerAddress


class ChannelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str  # the registered channel type; a Literal in each subclass
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")  # what routes call it


ConfigT = TypeVar("ConfigT", bound=ChannelConfig)


@dataclass(frozen=True, slots=True)
class ChannelContext:
    """What the process running the channels offers them."""

    broker: BrokerAddress | None = None  # the service's own MQTT broker (tools, tests)
    # The service's own connection: inside a service, channels publish on it, never on a second
    # connection under the service's identity (the broker would hand it the service's session).
    outbound: Outbound | None = None


STANDALONE = ChannelContext()  # a channel on its own (tests, tools): nothing offered


class DeliveryError(RuntimeError):
    """A channel could not deliver, after its own retries."""

    def __init__(self, channel: str, reason: str) -> None:
        self.channel = channel
        self.reason = reason
        super().__init__(f"channel {channel!r}: {reason}")


class NotificationChannel(Generic[ConfigT]):
    """Delivers alerts. `send` gets one alert or a storm's group (then one grouped message) and
    raises `DeliveryError` when it cannot deliver."""

    kind: ClassVar[str]
    Config: ClassVar[type[ChannelConfig]]

    def __init__(self, config: ConfigT, context: ChannelContext = STANDALONE) -> None:
        self.config = config
        self.context = context

    @property
    def name(self) -> str:
        return self.config.name

    def send(self, alerts: Sequence[Alert]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        return None
