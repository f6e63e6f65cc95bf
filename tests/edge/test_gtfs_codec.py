"""The GTFS codec under edge/contract/gtfs: times, ids, and a reader that never raises on bad input."""

from __future__ import annotations

import io
import zipfile
from datetime import date
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.contract import is_id
from edge.contract.gtfs.ids import NO_ROUTE, sensor_id, tag_value
from edge.contract.gtfs.static import FeedError, GtfsReader
from edge.contract.gtfs.times import at, format_time, parse_date, parse_time, service_day_start
from edge.contract.ids import TAG_VALUE_PATTERN
from edge.simulators.transit import prato_feed_zip

ROME = ZoneInfo("Europe/Rome")


@given(st.integers(0, 99 * 3600 + 59 * 60 + 59))
def test_a_gtfs_time_round_trips_through_its_text_even_past_midnight(seconds: int) -> None:
    assert parse_time(format_time(seconds)) == seconds


@pytest.mark.parametrize(
    "text", ["25:61:00", "8:5:00", "08:00", "08:00:60", "-1:00:00", "08:00:00 ", "\uff11:00:00", ""]
)
def test_a_malformed_time_is_not_hh_mm_ss(text: str) -> None:
    with pytest.raises(ValueError, match="is not HH:MM:SS"):
        parse_time(text)


def test_one_digit_hours_are_allowed_as_the_reference_says() -> None:
    assert parse_time("8:05:00") == 8 * 3600 + 300


@pytest.mark.parametrize(
    ("text", "why"), [("20260230", "is not a calendar date"), ("2026-01-01", "is not YYYYMMDD")]
)
def test_a_bad_date_says_why(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_date(text)


def test_the_service_day_starts_at_noon_minus_twelve_hours_on_the_day_the_clocks_change() -> None:
    # 2026-03-29: Italy goes from UTC+1 to UTC+2 at 02:00, so "noon minus 12 h" is 23:00 the day before.
    start = service_day_start(date(2026, 3, 29), ROME)

    assert start.astimezone(ROME).isoformat() == "2026-03-28T23:00:00+01:00"
    assert at(date(2026, 3, 29), 12 * 3600, ROME).astimezone(ROME).hour == 12


@given(st.text(max_size=80))
def test_any_gtfs_id_becomes_a_contract_id(gtfs_id: str) -> None:
    assert is_id(sensor_id(gtfs_id))


@given(st.text(max_size=80))
def test_any_gtfs_route_id_becomes_a_tag_value_never_the_no_route_one(route_id: str) -> None:
    import re  # noqa: PLC0415

    value = tag_value(route_id)

    assert re.fullmatch(TAG_VALUE_PATTERN, value)
    assert value != NO_ROUTE


@given(st.text(min_size=1, max_size=20), st.text(min_size=1, max_size=20))
def test_two_different_gtfs_ids_never_share_a_sensor_id(a: str, b: str) -> None:
    if a != b:
        assert sensor_id(a) != sensor_id(b)


def test_an_id_that_already_fits_is_kept_as_it_is() -> None:
    assert (sensor_id("bus-4127"), tag_value("LAM-BLU")) == ("bus-4127", "LAM-BLU")
    assert sensor_id("PO-Duomo").startswith("po-duomo-")


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_as_a_feed_are_refused_and_never_crash_the_reader(payload: bytes) -> None:
    def read() -> None:
        reader = GtfsReader(payload)
        list(reader.read())
        if reader.problems:
            raise reader.error()

    with pytest.raises(FeedError):
        read()


@settings(max_examples=80, deadline=None)
@given(st.text(max_size=400))
def test_any_text_as_stops_txt_gives_rows_or_problems_never_an_exception(content: str) -> None:
    feed = prato_feed_zip({"stops.txt": content.encode("utf-8", errors="surrogatepass")})
    reader = GtfsReader(feed)

    rows = sum(len(chunk) for _table, chunk in reader.read())

    assert rows > 0 or reader.problems


def test_files_in_a_folder_of_the_zip_are_named_as_misplaced() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("gtfs/agency.txt", "agency_name\n")
    reader = GtfsReader(out.getvalue())

    list(reader.read())

    assert "gtfs/agency.txt: is in a folder of the zip; GTFS files belong at its root" in map(
        str, reader.problems
    )


def test_a_gateway_never_loads_protobuf() -> None:
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    code = (
        "import sys, gateway.agent, edge.contract, edge.cli\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(('google.protobuf', 'edge.contract.gtfs')))\n"
        "print(loaded)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout

    assert out.strip() == "[]"
