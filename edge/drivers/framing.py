"""What every decoder returns, and the line framer the serial drivers share.

Decoders are sans-IO: bytes in, `DecoderOutput` out — readings plus rejects, each reject with the
reason (a short stable slug, counted in `stats()`), a human detail and where it was in the input.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from edge.contract import Reading


@dataclass(frozen=True, slots=True)
class RejectedInput:
    """Input a decoder refused: why (`reason`, a slug such as `bad_checksum`), and where."""

    reason: str
    detail: str
    raw: bytes
    line: int | None = None  # 1-based line number in the stream, when the input is line-framed


@dataclass(slots=True)
class DecoderOutput:
    readings: list[Reading] = field(default_factory=list)
    rejects: list[RejectedInput] = field(default_factory=list)

    def extend(self, other: DecoderOutput) -> None:
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

    def reject(self, out: DecoderOutput, rejected: RejectedInput) -> None:
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
    """Splits a serial byte stream into lines that begin with `start` (e.g. `$`) and end at LF.

    Resynchronises on garbage: bytes before the start character are skipped (a `garbage`
    reject), a start character inside a line begins a new line (the one before lost its end
    and will fail its checksum), and a stream that never sends a line end is cut at `max_len`
    so the buffer stays bounded. Blanks around a line and CR (also a doubled one) are not garbage.
    """

    def __init__(self, start: bytes, max_len: int) -> None:
        if len(start) != 1:
            raise ValueError(f"start: {start!r} must be one byte")
        self._start = start
        self._max_len = max_len
        self._rest = b""
        self.line_no = 0  # lines seen so far (ends of line), for reject reports

    def feed(self, data: bytes) -> tuple[list[tuple[int, bytes]], list[RejectedInput]]:
        """Return the complete lines in `data` (with their line numbers) and the garbage."""
        parts = (self._rest + data if self._rest else data).split(b"\n")
        rest = parts.pop()
        lines: list[tuple[int, bytes]] = []
        garbage: list[RejectedInput] = []
        start, max_len = self._start, self._max_len
        n = self.line_no
        for raw in parts:
            n += 1
            if raw and raw[-1] in b"\r \t":
                raw = raw.rstrip(b"\r \t")  # noqa: PLW2901  (CR, also doubled, and trailing blanks)
            if raw[:1] == start and raw.find(start, 1) < 0 and len(raw) <= max_len:
                lines.append((n, raw))  # the usual case, fast
            elif raw:
                self._split_line(raw, n, lines, garbage)
        self.line_no = n
        if len(rest) > max_len:
            # No line end in sight: keep from the last start character, if it could still fit.
            cut = rest.rfind(start)
            if cut <= 0 or len(rest) - cut > max_len:
                cut = len(rest)
            garbage.append(RejectedInput("garbage", f"{cut} bytes without a line end", rest[:80], n + 1))
            rest = rest[cut:]
        self._rest = rest
        return lines, garbage

    def _split_line(
        self, raw: bytes, n: int, lines: list[tuple[int, bytes]], garbage: list[RejectedInput]
    ) -> None:
        start = self._start
        begins = [i for i in range(len(raw)) if raw[i : i + 1] == start]
        if not begins:
            garbage.append(RejectedInput("garbage", "no start character", raw[:80], n))
            return
        if begins[0] > 0 and raw[: begins[0]].strip(b" \t"):
            garbage.append(
                RejectedInput("garbage", f"{begins[0]} bytes before the start", raw[: begins[0]][:80], n)
            )
        for begin, end in zip(begins, [*begins[1:], len(raw)], strict=True):
            if end - begin > self._max_len:
                garbage.append(
                    RejectedInput("too_long", f"{end - begin} bytes > {self._max_len}", raw[begin:][:80], n)
                )
            else:
                lines.append((n, raw[begin:end]))

    def pending(self) -> int:
        return len(self._rest)
