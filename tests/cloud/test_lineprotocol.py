"""Line protocol: escaping, value types, refusals, exact timestamps, and a round trip through influxd."""

from __future__ import annotations

import calendar
import itertools
import math
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud.io.influx.client import InfluxClient
from cloud.io.influx.lineprotocol import (
    LineProtocolError,
    escape_key,
    escape_measurement,
    format_field_value,
    line,
    reading_line,
    timestamp_ns,
)
from edge.contract import Reading, SensorKind

TS = datetime(2026, 11, 24, 8, 30, 15, 123456, tzinfo=UTC)
TS_NS = calendar.timegm(TS.utctimetuple()) * 10**9 + 123456 * 1000


# --- escaping ---------------------------------------------------------------------------------


def test_measurement_escapes_comma_and_space_but_not_equals() -> None:
    assert escape_measurement("car park,north side=1") == r"car\ park\,north\ side=1"


def test_tag_keys_tag_values_and_field_keys_escape_comma_equals_and_space() -> None:
    assert escape_key("a,b=c d") == r"a\,b\=c\ d"
    assert line("m", {"k ey": "v,a=l ue"}, {"f=1 x,y": 1.0}, TS) == (
        rf"m,k\ ey=v\,a\=l\ ue f\=1\ x\,y=1.0 {TS_NS}"
    )


def test_string_field_is_quoted_with_quote_and_backslash_escaped() -> None:
    assert format_field_value("msg", 'say "hi" \\o/') == r'"say \"hi\" \\o/"'


def test_string_field_with_a_newline_is_written_on_one_line() -> None:
    written = line("m", {}, {"msg": "one\ntwo\rthree"}, TS)
    assert "\n" not in written
    assert "\r" not in written
    assert r'msg="one\ntwo\rthree"' in written


def test_int_fields_get_the_i_suffix() -> None:
    assert format_field_value("n", 42) == "42i"
    assert format_field_value("n", -7) == "-7i"


def test_bools_are_written_true_and_false_not_as_integers() -> None:
    assert format_field_value("b", True) == "true"
    assert format_field_value("b", False) == "false"


@pytest.mark.parametrize("value", [0.1, 1.0, -2.5e-300, 1e300, 43.877712345678901])
def test_floats_are_written_by_repr_so_they_read_back_exactly(value: float) -> None:
    written = format_field_value("x", value)
    assert written == repr(value)
    assert float(written) == value


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_are_refused_naming_the_field(value: float) -> None:
    with pytest.raises(LineProtocolError, match="speed_kmh") as info:
        line("fleet", {}, {"lat": 43.9, "speed_kmh": value}, TS)
    assert info.value.field == "speed_kmh"


@pytest.mark.parametrize(
    ("tags", "fields", "measurement", "what"),
    [
        ({}, {"x": 1}, "a\nb", "measurement"),
        ({}, {"x": 1}, "a\\b", "measurement"),
        ({}, {"x": 1}, "", "measurement"),
        ({"k\n": "v"}, {"x": 1}, "m", "tag key"),
        ({"k": "v\r"}, {"x": 1}, "m", "tags.k"),
        ({"k": "v\\"}, {"x": 1}, "m", "tags.k"),
        ({"k": ""}, {"x": 1}, "m", "tags.k"),
        ({"": "v"}, {"x": 1}, "m", "tag key"),
        ({}, {"x\ny": 1}, "m", "field key"),
        ({}, {"x\\": 1}, "m", "field key"),
        ({}, {"": 1}, "m", "field key"),
    ],
)
def test_newline_backslash_and_empty_are_refused_in_names_and_tags(
    tags: dict[str, str], fields: dict[str, int], measurement: str, what: str
) -> None:
    with pytest.raises(LineProtocolError) as info:
        line(measurement, tags, fields, TS)
    assert info.value.field == what
    assert str(info.value).startswith(f"{what}: ")


@pytest.mark.parametrize(
    ("measurement", "fields", "what"),
    [
        ("#parking", {"x": 1}, "measurement"),  # influxd would read the line as a comment
        ("\tparking", {"x": 1}, "measurement"),
        ("\x00parking", {"x": 1}, "measurement"),
        ("m", {"\tx": 1}, "field key"),
        ("m", {"\x00x": 1}, "field key"),
    ],
)
def test_names_whose_first_character_influxd_would_drop_are_refused(
    measurement: str, fields: dict[str, int], what: str
) -> None:
    with pytest.raises(LineProtocolError) as info:
        line(measurement, {}, fields, TS)
    assert info.value.field == what


def test_tab_nul_and_hash_inside_names_are_written() -> None:
    assert line("a#b", {"t": "\tx"}, {"k\tk": 1}, TS) == f"a#b,t=\tx k\tk=1i {TS_NS}"


def test_a_point_without_fields_is_refused() -> None:
    with pytest.raises(LineProtocolError, match="at least one field"):
        line("m", {"k": "v"}, {}, TS)


def test_tags_are_sorted_by_key() -> None:
    written = line("m", {"zone": "z", "gateway": "g", "org": "o", "a": "1"}, {"x": 1}, TS)
    assert written.startswith("m,a=1,gateway=g,org=o,zone=z ")


def test_a_reading_becomes_one_line_with_its_ids_as_tags() -> None:
    r = Reading(
        kind=SensorKind.PARKING,
        org="comune-prato",
        gateway="gw-mercatale",
        sensor="p-mercatale",
        ts=TS,
        fields={"occupied": 410, "capacity": 520, "occupancy_pct": 78.8},
        tags={"zone": "centro"},
    )
    ms_ns = TS_NS - TS_NS % 10**6  # the contract keeps milliseconds
    assert reading_line(r) == (
        "parking,gateway=gw-mercatale,org=comune-prato,sensor=p-mercatale,zone=centro "
        f"occupied=410i,capacity=520i,occupancy_pct=78.8 {ms_ns}"
    )


# --- timestamps -------------------------------------------------------------------------------


def test_timestamp_is_exact_to_the_microsecond() -> None:
    assert timestamp_ns(TS) == TS_NS
    one_us = TS.replace(microsecond=1)
    assert timestamp_ns(one_us) == TS_NS - 123455 * 1000
    # Float seconds carry ~0.2 µs of resolution at present-day magnitudes; this one is 24 ns off.
    assert int(one_us.timestamp() * 1e9) != timestamp_ns(one_us)


def test_timestamp_of_a_non_utc_datetime_is_the_same_instant() -> None:
    rome = timezone(timedelta(hours=1))
    assert timestamp_ns(TS.astimezone(rome)) == TS_NS


@given(
    st.datetimes(
        # hypothesis takes naive bounds and adds the zone itself
        min_value=datetime(2000, 1, 1, tzinfo=UTC).replace(tzinfo=None),
        max_value=datetime(2100, 1, 1, tzinfo=UTC).replace(tzinfo=None),
        timezones=st.just(UTC),
    )
)
def test_timestamp_is_exact_for_any_present_day_datetime(ts: datetime) -> None:
    expected = calendar.timegm(ts.utctimetuple()) * 10**9 + ts.microsecond * 1000
    assert timestamp_ns(ts) == expected


# --- round trip through the real influxd ------------------------------------------------------

# Line protocol is UTF-8: no lone surrogates (orjson never decodes one, so no reading holds one).
# Tag values: no newline (refused), no backslash (refused), not empty.
tag_text = st.text(st.characters(codec="utf-8", exclude_characters="\n\r\\"), min_size=1, max_size=30)
# A leading tab or NUL is refused in field keys; "time" is InfluxDB's own column; "tag" is taken.
field_keys = tag_text.filter(lambda k: k[0] not in "\t\x00" and k not in ("time", "tag"))
# String field values may hold quotes and backslashes; newlines are written as `\n` on purpose.
string_values = st.text(st.characters(codec="utf-8", exclude_characters="\n\r"), max_size=60)
_measurements = itertools.count()


@pytest.mark.e2e
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tag_value=tag_text, field_key=field_keys, text=string_values, number=st.integers(-(2**63), 2**63 - 1))
def test_tags_field_keys_and_strings_read_back_exactly_from_influxd(
    influx_db: InfluxClient, tag_value: str, field_key: str, text: str, number: int
) -> None:
    measurement = f"roundtrip_{next(_measurements)}"
    fields: dict[str, str | int] = {field_key: text, "n": number} if field_key != "n" else {"n": number}
    influx_db.write([line(measurement, {"tag": tag_value}, fields, TS)])

    (series,) = influx_db.series(f'SELECT * FROM "{measurement}"')
    (row,) = series["values"]
    got = dict(zip(series["columns"], row, strict=True))
    assert got.pop("time") == TS_NS // 10**6  # the client asks for epoch=ms
    assert got == {"tag": tag_value, **fields}
