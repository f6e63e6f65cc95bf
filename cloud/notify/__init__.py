"""Notifications: alerts routed by organisation and severity to channels (mqtt, webhook, email).

The channel types are plug-in folders under `cloud/notify/channels/`; `router.py` builds them
from a rules file's `notifications:` and delivers, grouping storms.
"""

from cloud.notify.base import ChannelConfig, ChannelContext, DeliveryError, NotificationChannel
from cloud.notify.channels import UnknownChannelError, get, names
from cloud.notify.router import NotificationsConfig, Notifier, Route, build_channels

__all__ = [
    "ChannelConfig",
    "ChannelContext",
    "DeliveryError",
    "NotificationChannel",
    "NotificationsConfig",
    "Notifier",
    "Route",
    "UnknownChannelError",
    "build_channels",
    "get",
    "names",
]
