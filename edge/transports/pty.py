"""Pseudo-terminal pairs that stand in for serial devices (simulators, tests, demos).

`VirtualSerialPort` opens a pty pair and points a stable symlink at the slave side, as udev
does for `/dev/gps0`. The device side writes to the master. `unplug()` closes the pair (the
reader gets EIO, exactly as when a USB adapter is pulled) and `replug()` opens a new pair and
re-points the same symlink at it: pty names change, the symlink does not.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tty
from pathlib import Path


class VirtualSerialPort:
    """A pty pair behind a symlink; `write` never blocks (bytes nobody reads are dropped)."""

    def __init__(self, link: Path) -> None:
        self.link = link
        self.master: int | None = None
        self._slave: int | None = None
        self.slave_name = ""
        self.bytes_written = 0
        self.bytes_dropped = 0
        self.replug()

    def replug(self) -> None:
        """Open a fresh pty pair and atomically point the symlink at its slave."""
        self.unplug()
        master, slave = os.openpty()
        # Raw mode on the slave: no echo back into the master, no CR/LF translation.
        tty.setraw(slave)
        os.set_blocking(master, False)
        self.master, self._slave = master, slave
        self.slave_name = os.ttyname(slave)
        tmp = self.link.with_name(f".{self.link.name}.{os.getpid()}.tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(self.slave_name)
        tmp.replace(self.link)

    def write(self, data: bytes) -> int:
        """Write what the line takes now; a full buffer drops the rest (a UART overrun)."""
        if self.master is None:
            self.bytes_dropped += len(data)
            return 0
        try:
            n = os.write(self.master, data)
        except BlockingIOError:
            n = 0
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise
            n = 0
        self.bytes_written += n
        self.bytes_dropped += len(data) - n
        return n

    def unplug(self) -> None:
        """Close both sides: a reader of the slave now reads EIO, like an unplugged adapter."""
        for fd in (self.master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.master = self._slave = None

    @property
    def is_plugged(self) -> bool:
        return self.master is not None

    def close(self) -> None:
        self.unplug()
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()

    def __enter__(self) -> VirtualSerialPort:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
