"""A serial line read without blocking, that reconnects when the device goes away.

`SerialLine.read()` is called from a source's `poll()` (every ~0.1 s): it returns what arrived
since the last call. When the device disappears (USB unplugged, pty closed) the read fails
with EIO; the line closes, reports `reconnecting`, and tries to reopen the same path with a
growing back-off, so a udev symlink (`/dev/gps0`) re-created for the new device is picked up
without restarting anything.
"""

from __future__ import annotations

import contextlib
import logging
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

import serial

from edge.contract import Reading

if TYPE_CHECKING:
    from edge.drivers.framing import DecoderOutput

log = logging.getLogger(__name__)

_PARITY = {"N": serial.PARITY_NONE, "E": serial.PARITY_EVEN, "O": serial.PARITY_ODD}
_READ_CHUNK = 65536

State = Literal["connected", "disconnected", "reconnecting", "closed"]


class SerialSettings(Protocol):
    """What a serial line needs to know (edge/drivers/serialconfig.py declares it for configs)."""

    @property
    def port(self) -> str: ...
    @property
    def baudrate(self) -> int: ...
    @property
    def parity(self) -> Literal["N", "E", "O"]: ...
    @property
    def bytesize(self) -> Literal[7, 8]: ...
    @property
    def stopbits(self) -> Literal[1, 2]: ...
    @property
    def reconnect_max_s(self) -> float: ...


class SerialLine:
    """A non-blocking reader of one serial port, reopened after errors with back-off."""

    def __init__(self, config: SerialSettings, *, clock: Any = time.monotonic) -> None:
        self.config = config
        self._clock = clock
        self._port: serial.Serial | None = None
        self._backoff_s = 0.1
        self._next_try = 0.0
        self.state: State = "disconnected"
        self.bytes_read = 0
        self.connects = 0
        self.disconnects = 0
        self.last_error: str | None = None

    def _open(self) -> None:
        now = self._clock()
        if now < self._next_try:
            return
        try:
            self._port = serial.Serial(
                self.config.port,
                baudrate=self.config.baudrate,
                parity=_PARITY[self.config.parity],
                bytesize=self.config.bytesize,
                stopbits=self.config.stopbits,
                timeout=0,
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            self._failed(f"open {self.config.port}: {exc}")
            return
        self.state = "connected"
        self.connects += 1
        self._backoff_s = 0.1
        log.info("serial %s connected", self.config.port)

    def _failed(self, why: str) -> None:
        if self.last_error != why:
            log.warning("serial %s: %s", self.config.port, why)
        self.last_error = why
        self.state = "reconnecting"
        self._next_try = self._clock() + self._backoff_s
        self._backoff_s = min(self._backoff_s * 2, self.config.reconnect_max_s)

    def read(self) -> bytes:
        """Everything available now (maybe b""); never raises on device errors."""
        if self.state == "closed":
            return b""
        if self._port is None:
            self._open()
            if self._port is None:
                return b""
        chunks: list[bytes] = []
        try:
            while True:
                data = self._port.read(_READ_CHUNK)
                if not data:
                    break
                chunks.append(data)
                if len(data) < _READ_CHUNK:
                    break
        except (serial.SerialException, OSError) as exc:
            # A pty whose master closed, or an unplugged USB adapter, reads EIO here.
            self._drop()
            self._failed(f"read: {exc}")
        out = b"".join(chunks)
        self.bytes_read += len(out)
        return out

    def _drop(self) -> None:
        if self._port is not None:
            self.disconnects += 1
            with contextlib.suppress(serial.SerialException, OSError):
                self._port.close()
            self._port = None

    def close(self) -> None:
        self._drop()
        self.state = "closed"

    def stats(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "port": self.config.port,
            "bytes": self.bytes_read,
            "connects": self.connects,
            "disconnects": self.disconnects,
            "last_io_error": self.last_error,
        }


class StreamDecoder(Protocol):
    def feed(self, data: bytes) -> DecoderOutput: ...

    def stats(self) -> dict[str, Any]: ...


class SerialSource:
    """A `Source` that reads a serial line on every poll and feeds a stream decoder."""

    def __init__(self, line: SerialLine, decoder: StreamDecoder) -> None:
        self.line = line
        self.decoder = decoder

    def poll(self, now: datetime) -> list[Reading]:
        data = self.line.read()
        if not data:
            return []
        decoded = self.decoder.feed(data)
        for rej in decoded.rejects:
            log.debug("serial %s rejected %s: %s", self.line.config.port, rej.reason, rej.detail)
        return decoded.readings

    def close(self) -> None:
        self.line.close()

    def stats(self) -> dict[str, Any]:
        return {**self.decoder.stats(), **self.line.stats()}
