"""The notification channel registry: channel types registered by the name a rules file uses.

The built-in types are folders under `cloud/notify/channels/`, registered by one import line
each in `cloud/notify/channels/__init__.py`; `folder(cls)` is where a type's README, sample and
cases are.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from cloud.core.plugins import Registry, UnknownPluginError
from cloud.notify.base import NotificationChannel


class UnknownChannelError(UnknownPluginError):
    what = "channel type"


_CHANNELS: Registry[NotificationChannel[Any]] = Registry("channel", "kind", UnknownChannelError)
register = _CHANNELS.register
get = _CHANNELS.get
names = _CHANNELS.names
all_channels = _CHANNELS.all


def folder(cls: type[NotificationChannel[Any]]) -> Path:
    """The channel type's folder (README.md, sample.yaml, cases.yaml beside its code)."""
    return Path(inspect.getfile(cls)).parent
