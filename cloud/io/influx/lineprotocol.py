"""The only place that builds InfluxDB line protocol, with its escaping rules.

Escaping (InfluxDB 1.x line protocol reference): measurement names escape comma and space;
tag keys, tag values and field keys escape comma, equals sign and space; string field values
are double-quoted and escape double quote and backslash. A newline cannot be escaped anywhere,
so it is refused in names and tags and written as the two characters `\\n` in string fields.
InfluxDB 1.x reads a backslash in a name or tag literally unless it precedes a special
character, so a tag value ending in one cannot be written faithfully: backslashes are refused
there (measured against influxd 1.6; the contract's id and tag patterns never contain them).
influxd also skips tabs and NULs at the start of a line and of its field set, and reads a line
starting with `#` as a comment, so a measurement or field key starting so is refused too.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta

from edge.contract import KINDS, Reading

FieldValue = float | int | bool | str
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_MEASUREMENT = str.maketrans({",": r"\,", " ": r"\ "})
_KEY = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_STRING = str.maketrans({'"': r"\"", "\\": "\\\\", "\n": r"\n", "\r": r"\r"})
# Leading characters influxd 1.6 drops (or, for `#`, takes the whole line for a comment).
_BAD_START = {"measurement": "\t\x00#", "field key": "\t\x00"}


class LineProtocolError(ValueError):
    def __init__(self, message: str, *, field: str, value: object) -> None:
        self.field = field
        self.value = value
        super().__init__(f"{field}: {message}: {value!r}"[:300])


def _checked_name(what: str, text: str) -> str:
    if "\n" in text or "\r" in text:
        raise LineProtocolError("newline cannot be written in line protocol", field=what, value=text)
    if "\\" in text:
        raise LineProtocolError("backslash cannot be written faithfully here", field=what, value=text)
    if not text:
        raise LineProtocolError("must not be empty", field=what, value=text)
    if text[0] in _BAD_START.get(what, ""):
        raise LineProtocolError("influxd would drop this first character", field=what, value=text)
    return text


def escape_measurement(name: str) -> str:
    return _checked_name("measurement", name).translate(_MEASUREMENT)


def escape_key(key: str, what: str = "key") -> str:
    return _checked_name(what, key).translate(_KEY)


def quote_string(value: str) -> str:
    """A string field value: double-quoted, with its quotes, backslashes and newlines escaped."""
    return '"' + value.translate(_STRING) + '"'


def format_field_value(name: str, value: FieldValue) -> str:
    if isinstance(value, bool):  # before int: bool is an int subclass
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise LineProtocolError("InfluxDB stores no NaN or infinity", field=name, value=value)
        return repr(value)
    return quote_string(value)


def timestamp_ns(ts: datetime) -> int:
    # Integer arithmetic: float seconds lose the microseconds of present-day timestamps.
    return (ts - _EPOCH) // timedelta(microseconds=1) * 1000


def line(
    measurement: str,
    tags: Mapping[str, str],
    fields: Mapping[str, FieldValue],
    ts: datetime,
) -> str:
    if not fields:
        raise LineProtocolError("a point needs at least one field", field="fields", value={})
    # Tags sorted by key, as InfluxDB recommends for its series index.
    tag_part = "".join(
        f",{escape_key(k, 'tag key')}={escape_key(v, f'tags.{k}')}" for k, v in sorted(tags.items())
    )
    field_part = ",".join(
        f"{escape_key(k, 'field key')}={format_field_value(k, v)}" for k, v in fields.items()
    )
    return f"{escape_measurement(measurement)}{tag_part} {field_part} {timestamp_ns(ts)}"


def reading_tags(r: Reading) -> dict[str, str]:
    return {**r.tags, "org": r.org, "gateway": r.gateway, "sensor": r.sensor}


def reading_line(r: Reading) -> str:
    # Fields in the kind's declared order, whatever order the sender used: one reading, one line.
    declared = KINDS[r.kind].by_name
    fields = {name: r.fields[name] for name in declared if name in r.fields}
    return line(r.kind.value, reading_tags(r), fields, r.ts)


def reading_lines(readings: Iterable[Reading]) -> list[str]:
    return [reading_line(r) for r in readings]
