"""The serial options every serial driver's config takes (a device's usual 8N1 by default)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from edge.drivers.registry import DriverConfig

BAUDRATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600)

# What a serial port's path may be when the config comes from the network (gateway/remote_config):
# a tty device, or udev's stable name for a USB adapter. A local config may name any path (a udev
# rule's own symlink, a test's pseudo-terminal): whoever writes that file owns the box anyway.
DEVICE_PATHS = ("/dev/tty*", "/dev/serial/by-id/*")
_DEVICE = re.compile(r"/dev/tty[A-Za-z0-9._-]*|/dev/serial/by-id/[A-Za-z0-9._:+@-]+")


def is_device_path(port: str) -> bool:
    """A serial device path: `/dev/tty*` or `/dev/serial/by-id/*`, one name, no `..`."""
    return _DEVICE.fullmatch(port) is not None and not port.endswith(("/.", "/.."))


class SerialDriverConfig(DriverConfig):
    """The serial options every serial driver takes (a device's usual 8N1 by default)."""

    port: str = Field(min_length=1)  # a device path; prefer a stable udev symlink
    baudrate: int = 9600
    parity: Literal["N", "E", "O"] = "N"
    bytesize: Literal[7, 8] = 8
    stopbits: Literal[1, 2] = 1
    reconnect_max_s: float = Field(default=5.0, gt=0, le=300)

    @field_validator("baudrate")
    @classmethod
    def _baudrate(cls, value: int) -> int:
        if value not in BAUDRATES:
            raise ValueError(f"{value} is not one of {', '.join(map(str, BAUDRATES))}")
        return value
