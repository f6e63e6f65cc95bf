"""NMEA 0183 decoder (sans-IO): sentences in, fleet readings and rejects with reasons out.

A reading is made from each valid RMC (NMEA 0183 v4.11 §RMC: time, status, position, speed
and course over ground, date), the one sentence that carries both date and position. GGA (fix
quality, satellites, HDOP, altitude) and VTG (course, speed) are checked and kept as health
data; GSA and GSV are checked and tolerated. A sentence is never decoded into a position unless
its checksum is right, it says the fix is valid, and every field parses strictly.

Positions: `ddmm.mmmm` is converted with integer arithmetic (exact), then rounded half-up to 7
decimal places of a degree (about 1 cm), so `4807.038,N` is exactly 48.1173 and never 48.11729999.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import reduce
from operator import xor
from typing import Any

from edge.contract import Reading, SensorKind
from edge.drivers.framing import DecodeCounters, DecoderOutput, LineFramer, RejectedInput

KNOT_KMH = 1.852  # exactly, by definition of the international nautical mile
MAX_KNOTS = 161.98  # 299.99 km/h: the fleet kind's speed_kmh range is [0, 300]
MAX_SENTENCE = 82  # NMEA 0183 §5.3: at most 82 characters including $ and <CR><LF>
# Receivers with high-precision output (NovAtel, u-blox HPG) exceed 82 characters; allow it.
MAX_LINE = 120
TALKERS = frozenset({"GP", "GN", "GL", "GA", "BD", "GB", "GQ", "GI"})
TOLERATED = frozenset({b"GSA", b"GSV", b"GLL", b"ZDA", b"TXT", b"GST", b"GNS", b"DTM", b"GBS"})
# RMC mode indicator (NMEA 2.3+): A autonomous, D differential, P precise, R RTK fixed,
# F RTK float; E (dead reckoning), M (manual), S (simulator) and N (no fix) are not a fix.
VALID_MODES = frozenset({"A", "D", "P", "R", "F"})

_HEX = {f"{i:02X}".encode(): i for i in range(256)} | {f"{i:02x}".encode(): i for i in range(256)}


def checksum(body: bytes) -> int:
    """XOR of every byte between `$` and `*` (NMEA 0183 §5.2.1).

    Folded as one big integer: after `x ^= x >> s` every byte position p holds the XOR of the
    bytes at p and p + s/8, so seven halvings leave the XOR of up to 128 bytes in the low byte.
    """
    if len(body) > 128:
        return reduce(xor, body, 0)
    x = int.from_bytes(body, "little")
    x ^= x >> 512
    x ^= x >> 256
    x ^= x >> 128
    x ^= x >> 64
    x ^= x >> 32
    x ^= x >> 16
    x ^= x >> 8
    return x & 0xFF


class SentenceError(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


_DEN: tuple[int, ...] = tuple(60 * 10**k for k in range(11))  # 60 minutes x 10^(fraction digits)


def degrees_e7(value: bytes, hemi: bytes, deg_digits: int, limit: int, what: str) -> int:
    """`ddmm.mmmm` (or `dddmm.mmmm`) and its hemisphere to signed 1e-7 degrees, exactly."""
    whole, dot, frac = value.partition(b".")
    if len(whole) != deg_digits + 2 or not whole.isdigit() or (dot and not frac.isdigit()) or len(frac) > 10:
        raise SentenceError("bad_position", f"{what} {value.decode('ascii', 'replace')!r} is not d..mm.mmmm")
    den = _DEN[len(frac)]
    minutes_scaled = int(whole[deg_digits:] + frac)  # minutes x 10^len(frac)
    if minutes_scaled >= den:
        raise SentenceError("bad_position", f"{what} minutes {value.decode()!r} >= 60")
    num = (int(whole[:deg_digits]) * den + minutes_scaled) * 10_000_000
    e7 = (2 * num + den) // (2 * den)  # round half up
    if e7 > limit * 10_000_000:
        raise SentenceError("bad_position", f"{what} {value.decode()!r} beyond {limit} degrees")
    if deg_digits == 2:
        if hemi == b"N":
            return e7
        if hemi == b"S":
            return -e7
        raise SentenceError("bad_position", f"latitude hemisphere {hemi!r} is not N or S")
    if hemi == b"E":
        return e7
    if hemi == b"W":
        return -e7
    raise SentenceError("bad_position", f"longitude hemisphere {hemi!r} is not E or W")


def utc_time(value: bytes) -> tuple[int, int, int, int]:
    """`hhmmss` or `hhmmss.sss` (UTC, NMEA 0183 §6.2 `hhmmss.ss`) as hours, minutes, seconds and
    whole milliseconds (the wire's resolution)."""
    whole, dot, frac = value.partition(b".")
    if len(whole) != 6 or not whole.isdigit() or (dot and not frac.isdigit()):
        raise SentenceError("bad_time", f"time {value.decode('ascii', 'replace')!r} is not hhmmss.ss")
    hh, mm, ss = int(whole[0:2]), int(whole[2:4]), int(whole[4:6])
    if hh > 23 or mm > 59 or ss > 59:
        # A leap second (ss == 60) cannot be a datetime; one fix a year and a half is lost.
        raise SentenceError("bad_time", f"time {value.decode()!r} out of range")
    return hh, mm, ss, int((frac + b"000")[:3]) if frac else 0


def utc_date(value: bytes) -> date:
    """`ddmmyy`; two-digit years 80..99 are 1980..1999 (GPS began in 1980), others 20yy."""
    if len(value) != 6 or not value.isdigit():
        raise SentenceError("bad_date", f"date {value.decode('ascii', 'replace')!r} is not ddmmyy")
    dd, mo, yy = int(value[0:2]), int(value[2:4]), int(value[4:6])
    try:
        return date(1900 + yy if yy >= 80 else 2000 + yy, mo, dd)
    except ValueError:
        raise SentenceError("bad_date", f"date {value.decode()!r} does not exist") from None


def number(value: bytes, what: str, lo: float, hi: float) -> float:
    try:
        x = float(value)
    except ValueError:
        raise SentenceError(
            "bad_field", f"{what} {value.decode('ascii', 'replace')!r} is not a number"
        ) from None
    if not lo <= x <= hi:  # also refuses nan; float() accepts "nan" and "inf"
        raise SentenceError("out_of_range", f"{what} {x:g} outside [{lo:g}, {hi:g}]")
    return x


@dataclass(slots=True)
class FixInfo:
    """What GGA and VTG tell beside the position: kept as health data (not in the contract)."""

    quality: int | None = None
    satellites: int | None = None
    hdop: float | None = None
    altitude_m: float | None = None
    course_deg: float | None = None


class NmeaDecoder:
    """Decodes an NMEA byte stream (`feed`) or single sentences (`sentence`) into readings."""

    def __init__(
        self,
        *,
        org: str,
        gateway: str,
        sensor: str,
        tags: dict[str, str] | None = None,
        talkers: frozenset[str] = TALKERS,
    ) -> None:
        # The ids and tags are validated where they come from (the driver's config).
        self.org = org
        self.gateway = gateway
        self.sensor = sensor
        self.tags = dict(tags or {})
        self.talkers = talkers
        self._talkers = frozenset(t.encode() for t in talkers)
        self.framer = LineFramer(b"$", MAX_LINE)
        self.counters = DecodeCounters()
        self._sentences: dict[bytes, int] = {}
        self.ignored = 0
        self.fix = FixInfo()
        self.last_ts: datetime | None = None
        self._date: tuple[bytes, date] = (b"", date.min)
        # A validated reading whose copies carry each fix: the contract checks the ids and tags
        # once, here (ValidationError for a bad sensor id), and the values per fix below.
        self._template = Reading(
            kind=SensorKind.FLEET,
            org=org,
            gateway=gateway,
            sensor=sensor,
            ts=datetime(2000, 1, 1, tzinfo=UTC),
            fields={"lat": 0.0, "lon": 0.0, "speed_kmh": 0.0, "heading_deg": 0.0},
            tags=self.tags,
        )

    @property
    def sentences(self) -> dict[str, int]:
        return {k.decode(): v for k, v in self._sentences.items()}

    # -- streams ---------------------------------------------------------------------------------
    def feed(self, data: bytes) -> DecoderOutput:
        out = DecoderOutput()
        counters = self.counters
        counters.bytes += len(data)
        lines, garbage = self.framer.feed(data)
        for g in garbage:
            counters.reject(out, g)
        talkers, sentences, hexes, tolerated = self._talkers, self._sentences, _HEX, TOLERATED
        ok = 0
        for line_no, raw in lines:
            # The fast path (checksum inlined, see `checksum`) takes well-formed sentences;
            # anything else goes through `_one`, which finds the exact reason to reject it.
            n = len(raw)
            if 9 <= n <= 131 and raw[n - 3] == 0x2A:
                body = raw[1 : n - 3]
                x = int.from_bytes(body, "little")
                x ^= x >> 512
                x ^= x >> 256
                x ^= x >> 128
                x ^= x >> 64
                x ^= x >> 32
                x ^= x >> 16
                x ^= x >> 8
                if (
                    hexes.get(raw[n - 2 :]) == (x & 0xFF)
                    and body.isascii()
                    and body[5:6] == b","
                    and body[:2] in talkers
                ):
                    kind = body[2:5]
                    sentences[kind] = sentences.get(kind, 0) + 1
                    if kind in tolerated:
                        ok += 1
                        continue
                    try:
                        reading = self._dispatch(kind, body)
                    except SentenceError as exc:
                        counters.reject(out, RejectedInput(exc.reason, exc.detail, raw, line_no))
                        continue
                    except (ValueError, IndexError, UnicodeDecodeError) as exc:  # never raise
                        counters.reject(out, RejectedInput("garbled", str(exc), raw, line_no))
                        continue
                    ok += 1
                    if reading is not None:
                        counters.readings += 1
                        out.readings.append(reading)
                    continue
            self._one(raw, line_no, out)
        counters.frames_ok += ok
        return out

    def sentence(self, raw: bytes, line: int | None = None) -> DecoderOutput:
        """Decode one sentence (with or without its CR LF)."""
        out = DecoderOutput()
        self.counters.bytes += len(raw)
        self._one(raw.rstrip(b"\r\n"), line, out)
        return out

    def _one(self, raw: bytes, line: int | None, out: DecoderOutput) -> None:
        try:
            reading = self._parse(raw)
        except SentenceError as exc:
            self.counters.reject(out, RejectedInput(exc.reason, exc.detail, raw[:MAX_LINE], line))
            return
        except (ValueError, IndexError, UnicodeDecodeError) as exc:  # belt and braces: never raise
            self.counters.reject(out, RejectedInput("garbled", str(exc), raw[:MAX_LINE], line))
            return
        self.counters.frames_ok += 1
        if reading is not None:
            self.counters.readings += 1
            out.readings.append(reading)

    # -- sentences -------------------------------------------------------------------------------
    def _parse(self, raw: bytes) -> Reading | None:
        n = len(raw)
        if n < 9 or raw[0] != 0x24:  # "$"
            raise SentenceError("truncated", f"{n} bytes is no sentence")
        if raw[n - 3] != 0x2A:  # "*"
            raise SentenceError("no_checksum", "no *hh at the end (truncated?)")
        body = raw[1 : n - 3]
        given = _HEX.get(raw[n - 2 :])
        if given is None:
            raise SentenceError("bad_checksum", f"checksum {raw[n - 2 :]!r} is not two hex digits")
        computed = checksum(body)
        if computed != given:
            raise SentenceError("bad_checksum", f"checksum {given:02X} != computed {computed:02X}")
        if not body.isascii():
            raise SentenceError("garbled", "non-ASCII bytes inside the sentence")
        if body[:1] == b"P":
            # Proprietary sentences ($PUBX, $PGRME, ... NMEA 0183 §5.3.4): valid, not ours.
            self.ignored += 1
            return None
        if body[5:6] != b",":
            raise SentenceError("unsupported", f"address {body[:8]!r} is not 5 characters")
        if body[:2] not in self._talkers:
            raise SentenceError(
                "unsupported", f"talker {body[:2]!r} not one of {', '.join(sorted(self.talkers))}"
            )
        kind = body[2:5]
        sentences = self._sentences
        sentences[kind] = sentences.get(kind, 0) + 1
        return self._dispatch(kind, body)

    def _dispatch(self, kind: bytes, body: bytes) -> Reading | None:
        if kind == b"RMC":
            return self._rmc(body.split(b","))
        if kind == b"GGA":
            self._gga(body.split(b","))
        elif kind == b"VTG":
            self._vtg(body.split(b","))
        elif kind not in TOLERATED:
            self.ignored += 1
        return None

    def _day(self, value: bytes) -> date:
        if value != self._date[0]:
            self._date = (value, utc_date(value))
        return self._date[1]

    def _rmc(self, f: list[bytes]) -> Reading:
        # $--RMC,hhmmss.ss,A,llll.ll,a,yyyyy.yy,a,x.x,x.x,ddmmyy,x.x,a[,m[,s]]*hh
        nf = len(f)
        if nf < 12 or nf > 14:
            raise SentenceError("truncated", f"RMC has {nf} fields, expected 12 to 14")
        if f[2] != b"A":
            raise SentenceError("no_fix", f"RMC status {f[2].decode()!r} (V: receiver warning)")
        if nf >= 13 and f[12] and f[12].decode() not in VALID_MODES:
            raise SentenceError("no_fix", f"RMC mode {f[12].decode()!r} is not a valid fix")
        # Field 13 (NMEA 4.1 navigational status: S safe, C caution, U unsafe, V "not valid,
        # equipment does not provide navigational status") is not about the fix: receivers such
        # as the Furuno GT-88 send `D,V` with a valid differential fix. Status and mode decide.
        day = self._day(f[9])
        hh, mm, ss, ms = utc_time(f[1])
        lat_e7 = degrees_e7(f[3], f[4], 2, 90, "latitude")
        lon_e7 = degrees_e7(f[5], f[6], 3, 180, "longitude")
        speed_kmh = number(f[7], "speed", 0, MAX_KNOTS) * KNOT_KMH if f[7] else 0.0
        if f[8]:
            course = number(f[8], "course", 0, 360)
            self.fix.course_deg = course
        else:
            # Many receivers leave course empty when stationary: keep the last one known.
            course = self.fix.course_deg if self.fix.course_deg is not None else 0.0
        # The wire carries milliseconds (Reading truncates the same way).
        ts = datetime(day.year, day.month, day.day, hh, mm, ss, ms * 1000, UTC)
        self.last_ts = ts
        # Every value was range-checked above against the fleet kind's declared ranges: skip
        # pydantic's re-validation, the hot spot of decoding. tests/edge/test_nmea.py checks that
        # a re-validated copy of every decoded reading is equal to it.
        return self._template.model_copy(
            update={
                "ts": ts,
                "fields": {
                    "lat": lat_e7 / 10_000_000,
                    "lon": lon_e7 / 10_000_000,
                    "speed_kmh": round(speed_kmh, 3),
                    "heading_deg": course,
                },
            }
        )

    def _gga(self, f: list[bytes]) -> None:
        # $--GGA,hhmmss.ss,llll.ll,a,yyyyy.yy,a,q,ss,y.y,a.a,M,g.g,M,a.a,xxxx*hh
        # Only the fix health is kept (the position comes from RMC, which has the date).
        if len(f) < 15:
            raise SentenceError("truncated", f"GGA has {len(f)} fields, expected 15")
        quality = int(number(f[6], "fix quality", 0, 9)) if f[6] else 0
        self.fix.quality = quality
        if quality == 0:
            raise SentenceError("no_fix", "GGA fix quality 0 (invalid)")
        self.fix.satellites = int(number(f[7], "satellites", 0, 99)) if f[7] else None
        self.fix.hdop = number(f[8], "hdop", 0, 99.99) if f[8] else None
        self.fix.altitude_m = number(f[9], "altitude", -10_000, 100_000) if f[9] else None

    def _vtg(self, f: list[bytes]) -> None:
        # $--VTG,x.x,T,x.x,M,x.x,N,x.x,K[,m]*hh
        if len(f) < 9:
            raise SentenceError("truncated", f"VTG has {len(f)} fields, expected 9 or 10")
        if len(f) >= 10 and f[9] == b"N":
            raise SentenceError("no_fix", "VTG mode N (not valid)")
        if f[1]:
            self.fix.course_deg = number(f[1], "course", 0, 360)

    def stats(self) -> dict[str, Any]:
        return {
            **self.counters.snapshot(),
            "sentences": self.sentences,
            "ignored": self.ignored,
            "fix_quality": self.fix.quality,
            "satellites": self.fix.satellites,
            "hdop": self.fix.hdop,
            "altitude_m": self.fix.altitude_m,
            "last_fix": self.last_ts.isoformat() if self.last_ts else None,
        }
