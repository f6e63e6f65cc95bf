"""GTFS times and service days.

A GTFS time (`stop_times.arrival_time`, `frequencies.start_time`) is `H:MM:SS` counted from the
start of the *service day*, and may pass 24:00:00 for trips that run after midnight. The service
day starts at "noon minus 12 h" in the agency's time zone (GTFS reference, "Field Types: Time"),
which is midnight except on the two days a year the clocks change.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

# Hours up to 99 (a night service ends around 30:00; 48 would already be odd), minutes and
# seconds 00-59. One-digit hours are allowed ("8:05:00"), as the reference says.
# [0-9], not \d: Python's \d also takes other scripts' digits (a full-width one, U+FF11).
_TIME_RE = re.compile(r"([0-9]{1,2}):([0-5][0-9]):([0-5][0-9])")
_DATE_RE = re.compile(r"[0-9]{8}")


def parse_time(text: str) -> int:
    """Seconds since the start of the service day; ValueError when not `H:MM:SS`."""
    m = _TIME_RE.fullmatch(text)
    if m is None:
        raise ValueError("is not HH:MM:SS")
    h, mi, s = m.groups()
    return int(h) * 3600 + int(mi) * 60 + int(s)


def format_time(seconds: int) -> str:
    """The GTFS form of `seconds` since the start of the service day (may pass 24:00:00)."""
    h, rest = divmod(seconds, 3600)
    return f"{h:02d}:{rest // 60:02d}:{rest % 60:02d}"


def parse_date(text: str) -> date:
    """A `YYYYMMDD` service date; ValueError when not one."""
    if _DATE_RE.fullmatch(text) is None:
        raise ValueError("is not YYYYMMDD")
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        raise ValueError("is not a calendar date") from None


def format_date(day: date) -> str:
    return day.strftime("%Y%m%d")


def service_day_start(day: date, tz: ZoneInfo) -> datetime:
    """The instant GTFS times of `day` count from: noon minus 12 h (aware, UTC).

    In UTC: Python subtracts hours from an aware local datetime on the wall clock, which on the
    day the clocks change is an hour away from twelve real hours."""
    return datetime.combine(day, time(12), tzinfo=tz).astimezone(UTC) - timedelta(hours=12)


def at(day: date, seconds: int, tz: ZoneInfo) -> datetime:
    """The instant (aware, UTC) of GTFS time `seconds` on service day `day`."""
    return service_day_start(day, tz) + timedelta(seconds=seconds)


def interpolate(times: Sequence[int | None]) -> list[int]:
    """Times for every stop of a trip, the missing ones (between timepoints) linear by position.

    The reference lets stop times be empty between timepoints and leaves interpolation to the
    consumer; the first and last stop always have one (the importer checks it).
    """
    known = [(i, t) for i, t in enumerate(times) if t is not None]
    if not known:
        raise ValueError("a trip needs at least one time")
    out: list[int] = []
    k = 0
    for i, t in enumerate(times):
        if t is not None:
            out.append(t)
            continue
        while k + 1 < len(known) and known[k + 1][0] < i:
            k += 1
        (i0, t0), after = known[k], known[k + 1] if k + 1 < len(known) else None
        if i < i0 or after is None:
            out.append(t0)
        else:
            i1, t1 = after
            out.append(t0 + round((t1 - t0) * (i - i0) / (i1 - i0)))
    return out
