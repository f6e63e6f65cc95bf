"""The operator console: one live board of Prato and fast channels between the organisations."""

from cloud.console.api import mount_console
from cloud.console.app import Console, PostNotifier
from cloud.console.auth import ConsoleRole, Operator
from cloud.console.live import Sources
from cloud.console.store import ConsoleStore, Post

__all__ = [
    "Console",
    "ConsoleRole",
    "ConsoleStore",
    "Operator",
    "Post",
    "PostNotifier",
    "Sources",
    "mount_console",
]
