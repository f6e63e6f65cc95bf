"""Notification channel types, registered by name. One import line per built-in type.

A type is a folder: its code (`channel.py`), `README.md`, `sample.yaml` and `cases.yaml`
(tests/cloud/test_notification_channels.py delivers every registered type's cases to a real
receiver). CONTRIBUTING.md says how to add one.
"""

from cloud.notify.channels import (
    email,  # noqa: F401  (registers email)
    mqtt,  # noqa: F401  (registers mqtt)
    webhook,  # noqa: F401  (registers webhook)
)
from cloud.notify.registry import UnknownChannelError, all_channels, folder, get, names, register

__all__ = ["UnknownChannelError", "all_channels", "folder", "get", "names", "register"]
