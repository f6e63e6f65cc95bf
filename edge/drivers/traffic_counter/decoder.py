"""Traffic counter interval records (`$TCR`, docs/protocols/traffic-counter.md) to readings.

One line per lane, direction and interval: counts in the TLS 8+1 vehicle classes, mean speed,
loop occupancy, protected by a CRC-16/CCITT-FALSE. Sans-IO: bytes in, readings and rejects out.
"""

from __future__ import annotations

import binascii
from datetime import UTC, datetime
from typing import Any

from edge.contract import Reading, SensorKind, is_id
from edge.drivers.framing import DecodeCounters, DecoderOutput, LineFramer, RejectedInput

VERSION = b"1"
# The TLS 2012 "8+1" classes, in the order the record carries them.
CLASSES = ("nk", "krad", "pkw", "lfw", "pkwa", "lkw", "lkwa", "sattel", "bus")
HEAVY = frozenset({"lkw", "lkwa", "sattel", "bus"})  # over 3.5 t
_HEAVY_IDX = tuple(i for i, c in enumerate(CLASSES) if c in HEAVY)
FIELDS = 7 + len(CLASSES) + 2  # TCR, version, site, lane, direction, end, interval; classes; speed, occ
MAX_LINE = 200
MAX_COUNT = 99_999


def crc16(body: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection): binascii's crc_hqx."""
    return binascii.crc_hqx(body, 0xFFFF)


class RecordError(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


def _int(value: bytes, what: str, lo: int, hi: int) -> int:
    if not value.isdigit() or len(value) > 6:
        raise RecordError("bad_field", f"{what} {value.decode('ascii', 'replace')!r} is not a whole number")
    n = int(value)
    if not lo <= n <= hi:
        raise RecordError("out_of_range", f"{what} {n} outside [{lo}, {hi}]")
    return n


def _decimal1(value: bytes, what: str, hi: int) -> float:
    whole, dot, frac = value.partition(b".")
    if not whole.isdigit() or len(whole) > 3 or dot != b"." or len(frac) != 1 or not frac.isdigit():
        raise RecordError("bad_field", f"{what} {value.decode('ascii', 'replace')!r} is not d.d")
    tenths = int(whole) * 10 + int(frac)
    if tenths > hi * 10:
        raise RecordError("out_of_range", f"{what} {tenths / 10} above {hi}")
    return tenths / 10


def _end(value: bytes) -> datetime:
    # ISO 8601 basic format, UTC: 20261124T081500Z
    if len(value) != 16 or value[8:9] != b"T" or value[15:] != b"Z":
        raise RecordError(
            "bad_time", f"interval end {value.decode('ascii', 'replace')!r} is not yyyymmddThhmmssZ"
        )
    digits = value[:8] + value[9:15]
    if not digits.isdigit():
        raise RecordError(
            "bad_time", f"interval end {value.decode('ascii', 'replace')!r} is not yyyymmddThhmmssZ"
        )
    try:
        return datetime(
            int(digits[0:4]), int(digits[4:6]), int(digits[6:8]),
            int(digits[8:10]), int(digits[10:12]), int(digits[12:14]), tzinfo=UTC,
        )  # fmt: skip
    except ValueError:
        raise RecordError("bad_time", f"interval end {value.decode()!r} does not exist") from None


class TrafficCounterDecoder:
    """Decodes a counter's serial export; `site` (when set) refuses other sites' records."""

    def __init__(self, *, org: str, gateway: str, sensor: str, site: str | None = None) -> None:
        self.org = org
        self.gateway = gateway
        self.sensor = sensor
        self.site = site
        self.framer = LineFramer(b"$", MAX_LINE)
        self.counters = DecodeCounters()
        self.last_end: dict[tuple[str, int, str], datetime] = {}
        self.repeats = 0

    def feed(self, data: bytes) -> DecoderOutput:
        out = DecoderOutput()
        self.counters.bytes += len(data)
        lines, garbage = self.framer.feed(data)
        for g in garbage:
            self.counters.reject(out, g)
        for line_no, raw in lines:
            self._one(raw, line_no, out)
        return out

    def record(self, raw: bytes, line: int | None = None) -> DecoderOutput:
        out = DecoderOutput()
        self.counters.bytes += len(raw)
        self._one(raw.rstrip(b"\r\n"), line, out)
        return out

    def _one(self, raw: bytes, line: int | None, out: DecoderOutput) -> None:
        try:
            reading = self._parse(raw)
        except RecordError as exc:
            self.counters.reject(out, RejectedInput(exc.reason, exc.detail, raw[:MAX_LINE], line))
            return
        except (ValueError, IndexError, UnicodeDecodeError) as exc:  # never raise out of a decoder
            self.counters.reject(out, RejectedInput("garbled", str(exc), raw[:MAX_LINE], line))
            return
        self.counters.frames_ok += 1
        if reading is not None:
            self.counters.readings += 1
            out.readings.append(reading)

    def _parse(self, raw: bytes) -> Reading | None:
        star = raw.rfind(b"*")
        if not raw.startswith(b"$") or star < 0 or len(raw) - star != 5:
            raise RecordError("no_checksum", "no *CCCC at the end (truncated?)")
        body = raw[1:star]
        given = raw[star + 1 :]
        if not all(c in b"0123456789ABCDEF" for c in given):
            raise RecordError("bad_checksum", f"CRC {given!r} is not four upper-case hex digits")
        if crc16(body) != int(given, 16):
            raise RecordError("bad_checksum", f"CRC {given.decode()} != computed {crc16(body):04X}")
        if not body.isascii():
            raise RecordError("garbled", "non-ASCII record")
        f = body.split(b",")
        if f[0] != b"TCR":
            raise RecordError("unsupported", f"record type {f[0].decode()!r}")
        if len(f) < 2 or f[1] != VERSION:
            raise RecordError("unsupported", f"TCR version {f[1].decode() if len(f) > 1 else ''!r}")
        if len(f) != FIELDS:
            raise RecordError("truncated", f"TCR has {len(f)} fields, expected {FIELDS}")
        site, direction = f[2].decode(), f[4].decode()
        if not is_id(site) or not is_id(direction):
            raise RecordError("bad_field", f"site {site!r} or direction {direction!r} is not [a-z0-9-]+")
        if self.site is not None and site != self.site:
            raise RecordError("wrong_site", f"record of site {site!r}, this counter is {self.site!r}")
        lane = _int(f[3], "lane", 1, 9)
        end = _end(f[5])
        interval_s = _int(f[6], "interval", 1, 3600)
        counts = [_int(v, CLASSES[i], 0, MAX_COUNT) for i, v in enumerate(f[7 : 7 + len(CLASSES)])]
        vehicles = sum(counts)
        heavy = sum(counts[i] for i in _HEAVY_IDX)
        speed_raw, occ_raw = f[7 + len(CLASSES)], f[8 + len(CLASSES)]
        if not speed_raw and vehicles:
            raise RecordError("bad_field", "mean speed missing though vehicles were counted")
        speed_kmh = _decimal1(speed_raw, "speed", 250) if speed_raw else 0.0
        occupancy_pct = _decimal1(occ_raw, "occupancy", 100)
        key = (site, lane, direction)
        if self.last_end.get(key) == end:
            # Counters resend the last record after a link reset; the series and ts collapse
            # in InfluxDB anyway, but say so.
            self.repeats += 1
        self.last_end[key] = end
        return Reading(
            kind=SensorKind.TRAFFIC,
            org=self.org,
            gateway=self.gateway,
            sensor=self.sensor,
            ts=end,
            fields={
                "vehicles": vehicles,
                "heavy": heavy,
                "interval_s": interval_s,
                "speed_kmh": speed_kmh,
                "occupancy_pct": occupancy_pct,
            },
            tags={"site": site, "lane": str(lane), "direction": direction},
        )

    def stats(self) -> dict[str, Any]:
        return {**self.counters.snapshot(), "repeats": self.repeats}
