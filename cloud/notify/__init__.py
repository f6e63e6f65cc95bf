"""Notification channels (mqtt, webhook, email), routed by organisation and severity.

Built-in channel types, one import line each (importing registers them).
"""

from cloud.notify import mqtt, smtp, webhook  # noqa: F401
from cloud.notify.registry import Channel, ChannelConfig, DeliveryError, UnknownChannelError, get, names
from cloud.notify.router import NotificationsConfig, Notifier, Route, build_channels

__all__ = [
    "Channel",
    "ChannelConfig",
    "DeliveryError",
    "NotificationsConfig",
    "Notifier",
    "Route",
    "UnknownChannelError",
    "build_channels",
    "get",
    "names",
]
