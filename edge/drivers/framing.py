"""What every decoder returns, and the line framer the serial drivers share.

Decoders are sans-IO: bytes in, `Decoded` out — readings plus rejects, each reject with the
reason (a short stable slug, counted in `stats()`), a human detail and where it was in the input.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from edge.contract import Reading


@dataclass(frozen=True, slots=True)
class Rejected:
    """Input a decoder refused: why (`reason`, a slug such as `bad_checksum`), and where."""

    reason: str
    detail: str
    raw: bytes
    line: int | None = None  # 1-based line number in the stream, when the input is line-framed


@dataclass(slots=True)
class Decoded:
    readings: list[Reading] = field(default_factory=list)
    rejects: list[Rejected] = field(default_factory=list)

    def extend(self, other: Decoded) -> None:
        self.readings.extend(other.readings)
        self.rejects.extend(other.rejects)


@dataclass(slots=True)
class DecodeCounters:
    """Counts a decoder keeps about its input, reported by its source's `stats()`."""

    bytes: int = 0
    frames_ok: int = 0
    readings: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    last_error: str | None = None

    def reject(self, out: Decoded, rejected: Rejected) -> None:
        self.rejected[rejected.reason] += 1
        self.last_error = f"{rejected.reason}: {rejected.detail}"
        out.rejects.append(rejected)

    def snapshot(self) -> dict[str, object]:
        return {
            "bytes": self.bytes,
            "frames_ok": self.frames_ok,
            "readings": self.readings,
            "rejected": dict(self.rejected),
            "last_error": self.last_error,
        }


class LineFramer:
    """Splits a serial byte stream into lines that start with one of `starts` and end at LF.

    Resynchronises on garbage: bytes before a start character are skipped (counted as
    `garbage`), and a line longer than `max_len` is dropped up to the next start character
    (a lost line end, or line noise that never stops). CR before LF is stripped.
    """

    def __init__(self, starts: bytes, max_len: int) -> None:
        self._starts = starts
        self._max_len = max_len
        self._buf = bytearray()
        self.line_no = 0  # lines seen so far (ends of line), for reject reports

    def feed(self, data: bytes) -> tuple[list[tuple[int, bytes]], list[Rejected]]:
        """Return the complete lines in `data` (with their line numbers) and the garbage."""
        self._buf += data
        lines: list[tuple[int, bytes]] = []
        garbage: list[Rejected] = []
        buf = self._buf
        pos = 0
        while True:
            nl = buf.find(b"\n", pos)
            if nl < 0:
                break
            self.line_no += 1
            raw = bytes(buf[pos:nl])
            pos = nl + 1
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            self._split_line(raw, lines, garbage)
        rest = bytes(buf[pos:])
        if len(rest) > self._max_len:
            # No line end in sight: keep from the last start character, if it could still fit.
            cut = max(rest.rfind(bytes([s])) for s in self._starts)
            if cut <= 0 or len(rest) - cut > self._max_len:
                cut = len(rest)
            garbage.append(
                Rejected("garbage", f"{cut} bytes without a line end", rest[:cut][:80], self.line_no + 1)
            )
            rest = rest[cut:]
        self._buf = bytearray(rest)
        return lines, garbage

    def _split_line(self, raw: bytes, lines: list[tuple[int, bytes]], garbage: list[Rejected]) -> None:
        if not raw:
            return
        starts = [i for i, b in enumerate(raw) if b in self._starts] if len(self._starts) > 1 else None
        if starts is None:
            start = self._starts[0]
            if raw[0] == start and raw.find(start, 1) < 0:  # the usual case, fast
                self._add(raw, lines, garbage)
                return
            starts = [i for i, b in enumerate(raw) if b == start]
        if not starts:
            garbage.append(Rejected("garbage", "no start character", raw[:80], self.line_no))
            return
        if starts[0] > 0:
            # Resync: line noise before the start character.
            garbage.append(
                Rejected(
                    "garbage", f"{starts[0]} bytes before the start", raw[: starts[0]][:80], self.line_no
                )
            )
        # A start character inside a line begins a new sentence: the one before lost its end.
        for begin, end in zip(starts, [*starts[1:], len(raw)], strict=True):
            self._add(raw[begin:end], lines, garbage)

    def _add(self, raw: bytes, lines: list[tuple[int, bytes]], garbage: list[Rejected]) -> None:
        if len(raw) > self._max_len:
            garbage.append(
                Rejected("too_long", f"{len(raw)} bytes > {self._max_len}", raw[:80], self.line_no)
            )
            return
        lines.append((self.line_no, raw))

    def pending(self) -> int:
        return len(self._buf)
