"""The nmea decoder: round trips, exact positions, hostile bytes, checksums, fix validity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.contract import Reading
from edge.drivers.nmea import encoder
from edge.drivers.nmea.decoder import KNOT_KMH, NmeaDecoder, checksum

RMC = b"$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A\r\n"
GGA = b"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47\r\n"
VTG = b"$GPVTG,054.7,T,034.4,M,005.5,N,010.2,K*48\r\n"


def decoder() -> NmeaDecoder:
    return NmeaDecoder(org="alia", gateway="gw-fleet", sensor="v-01", tags={"vehicle_type": "waste"})


def reference_degrees(text: str, deg_digits: int) -> Decimal:
    """The conversion done independently with Decimal: deg + minutes / 60, half-up to 1e-7."""
    deg, minutes = Decimal(text[:deg_digits]), Decimal(text[deg_digits:])
    return (deg + minutes / 60).quantize(Decimal("1e-7"), ROUND_HALF_UP)


# hypothesis takes naive bounds and zones them with `timezones=`.
timestamps = st.datetimes(
    min_value=datetime(1980, 1, 6),  # noqa: DTZ001
    max_value=datetime(2079, 12, 31, 23, 59, 59),  # noqa: DTZ001
    timezones=st.just(UTC),
).map(lambda t: t.replace(microsecond=t.microsecond // 10_000 * 10_000))
lats_e7 = st.integers(-900_000_000, 900_000_000)
lons_e7 = st.integers(-1_800_000_000, 1_800_000_000)


@given(
    ts=timestamps,
    lat_e7=lats_e7,
    lon_e7=lons_e7,
    knots_e3=st.integers(0, 161_000),
    course_e2=st.integers(0, 36_000),
    talker=st.sampled_from(["GP", "GN", "GL", "GA", "BD"]),
)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_encode_then_decode_returns_the_same_fix(
    ts: datetime, lat_e7: int, lon_e7: int, knots_e3: int, course_e2: int, talker: str
):
    speed_kmh = knots_e3 / 1000 * KNOT_KMH
    wire = encoder.epoch(ts, lat_e7 / 1e7, lon_e7 / 1e7, speed_kmh, course_e2 / 100, talker=talker)
    decoded = decoder().feed(wire)
    assert decoded.rejects == []
    [reading] = decoded.readings
    assert reading.ts == ts
    assert reading.fields["lat"] == lat_e7 / 10_000_000
    assert reading.fields["lon"] == lon_e7 / 10_000_000
    assert reading.fields["speed_kmh"] == round(knots_e3 / 1000 * KNOT_KMH, 3)
    assert reading.fields["heading_deg"] == course_e2 / 100
    # What the decoder built is a valid contract reading, equal to its own re-validation.
    assert Reading.model_validate(reading.model_dump()) == reading


@given(
    deg=st.integers(0, 89),
    minutes=st.integers(0, 59),
    frac=st.text("0123456789", min_size=0, max_size=8),
    hemi=st.sampled_from("NS"),
)
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_latitude_is_exactly_the_decimal_conversion(deg: int, minutes: int, frac: str, hemi: str):
    text = f"{deg:02d}{minutes:02d}" + (f".{frac}" if frac else "")
    body = f"GPRMC,120000.00,A,{text},{hemi},01106.0000,E,0.0,0.0,241126,,,A"
    [reading] = decoder().feed(encoder.sentence(body)).readings
    expected = reference_degrees(text, 2) * (-1 if hemi == "S" else 1)
    assert Decimal(str(reading.fields["lat"])) == expected
    assert reading.fields["lon"] == float(reference_degrees("01106.0000", 3))


@given(
    deg=st.integers(0, 179),
    minutes=st.integers(0, 59),
    frac=st.text("0123456789", max_size=8),
    hemi=st.sampled_from("EW"),
)
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_longitude_is_exactly_the_decimal_conversion(deg: int, minutes: int, frac: str, hemi: str):
    text = f"{deg:03d}{minutes:02d}" + (f".{frac}" if frac else "")
    body = f"GNRMC,120000.00,A,4352.9500,N,{text},{hemi},0.0,0.0,241126,,,A"
    [reading] = decoder().feed(encoder.sentence(body)).readings
    expected = reference_degrees(text, 3) * (-1 if hemi == "W" else 1)
    assert Decimal(str(reading.fields["lon"])) == expected


@given(st.binary(max_size=600))
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_random_bytes_never_raise_and_never_yield_a_reading(data: bytes):
    d = decoder()
    assert d.feed(data).readings == []
    assert d.sentence(data).readings == []


@given(st.lists(st.binary(max_size=80), max_size=12))
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_random_lines_with_dollars_never_yield_a_reading(parts: list[bytes]):
    assert decoder().feed(b"$".join(parts) + b"\r\n").readings == []


@given(position=st.integers(1, len(RMC) - 6), flip=st.integers(1, 255))
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_corrupted_byte_is_never_accepted_as_a_different_fix(position: int, flip: int):
    """A changed byte either fails the checksum or the parse; it never yields another fix."""
    corrupted = bytearray(RMC)
    corrupted[position] ^= flip
    decoded = decoder().feed(bytes(corrupted))
    # XOR checksums miss two compensating changes, but a single changed byte always shows.
    assert decoded.readings == []
    assert decoded.rejects


def test_bad_checksum_is_rejected_and_counted():
    d = decoder()
    out = d.feed(RMC.replace(b"*6A", b"*6B") + RMC.replace(b"*6A", b"*XX"))
    assert out.readings == []
    assert [r.reason for r in out.rejects] == ["bad_checksum", "bad_checksum"]
    assert d.stats()["rejected"] == {"bad_checksum": 2}
    assert d.stats()["last_error"].startswith("bad_checksum")


def test_lower_case_hex_checksum_is_accepted():
    assert decoder().feed(RMC.replace(b"*6A", b"*6a")).readings


def test_sentence_split_across_reads_is_decoded_once_whole():
    d = decoder()
    assert d.feed(RMC[:20]).readings == []
    assert d.feed(RMC[20:50]).readings == []
    assert len(d.feed(RMC[50:]).readings) == 1


def test_garbage_between_sentences_is_skipped_and_the_stream_resyncs():
    d = decoder()
    out = d.feed(b"\xff\xfe\x00noise" + RMC + b"$GPR\x00\x01" + RMC)
    assert len(out.readings) == 2
    assert {r.reason for r in out.rejects} <= {"garbage", "no_checksum", "bad_checksum", "truncated"}
    assert out.rejects


def test_endless_noise_without_line_end_is_dropped_without_growing():
    d = decoder()
    for _ in range(100):
        d.feed(b"x" * 1000)
    assert d.framer.pending() <= 120
    assert d.feed(b"\r\n" + RMC).readings


def test_position_and_time_of_the_reference_sentence():
    [r] = decoder().feed(RMC).readings
    assert r.ts == datetime(1994, 3, 23, 12, 35, 19, tzinfo=UTC)
    assert r.fields == {"lat": 48.1173, "lon": 11.5166667, "speed_kmh": 41.485, "heading_deg": 84.4}
    assert r.tags == {"vehicle_type": "waste"}
    assert (r.org, r.gateway, r.sensor) == ("alia", "gw-fleet", "v-01")


def test_gga_and_vtg_give_fix_health_but_no_reading():
    d = decoder()
    assert d.feed(GGA + VTG).readings == []
    stats = d.stats()
    assert (stats["fix_quality"], stats["satellites"], stats["hdop"], stats["altitude_m"]) == (
        1,
        8,
        0.9,
        545.4,
    )
    assert stats["sentences"] == {"GGA": 1, "VTG": 1}
    assert stats["frames_ok"] == 2


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("GPRMC,123519,V,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W", "no_fix"),
        ("GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W,N", "no_fix"),
        ("GPGGA,123519,4807.038,N,01131.000,E,0,00,,,M,,M,,", "no_fix"),
        ("GPRMC,123519,A,4807.038,X,01131.000,E,022.4,084.4,230394,003.1,W", "bad_position"),
        ("GPRMC,123519,A,4867.038,N,01131.000,E,022.4,084.4,230394,003.1,W", "bad_position"),
        ("GPRMC,123519,A,9107.038,N,01131.000,E,022.4,084.4,230394,003.1,W", "bad_position"),
        ("GPRMC,123519,A,807.038,N,01131.000,E,022.4,084.4,230394,003.1,W", "bad_position"),
        ("GPRMC,123519,A,48O7.038,N,01131.000,E,022.4,084.4,230394,003.1,W", "bad_position"),
        ("GPRMC,123519,A,,N,01131.000,E,022.4,084.4,230394,003.1,W", "bad_position"),
        ("GPRMC,123519,A,4807.038,N,18131.000,E,022.4,084.4,230394,003.1,W", "bad_position"),
        ("GPRMC,126019,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W", "bad_time"),
        ("GPRMC,123560,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W", "bad_time"),
        ("GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,310294,003.1,W", "bad_date"),
        ("GPRMC,123519,A,4807.038,N,01131.000,E,022.4,361.0,230394,003.1,W", "out_of_range"),
        ("GPRMC,123519,A,4807.038,N,01131.000,E,nan,084.4,230394,003.1,W", "out_of_range"),
        ("GPRMC,123519,A,4807.038,N,01131.000,E,-1.0,084.4,230394,003.1,W", "out_of_range"),
        ("GPRMC,123519,A,4807.038,N,01131.000,E", "truncated"),
        ("XXRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W", "unsupported"),
    ],
)
def test_invalid_sentence_is_rejected_with_its_reason(body: str, reason: str):
    out = decoder().feed(encoder.sentence(body))
    assert out.readings == []
    assert [r.reason for r in out.rejects] == [reason]


def test_date_rollover_at_midnight_and_century_pivot():
    d = decoder()
    t = datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC)
    stream = b"".join(encoder.rmc(t + timedelta(seconds=i), 43.88, 11.1, 20, 90) for i in range(3))
    assert [r.ts.isoformat() for r in d.feed(stream).readings] == [
        "1999-12-31T23:59:59+00:00",
        "2000-01-01T00:00:00+00:00",
        "2000-01-01T00:00:01+00:00",
    ]
    [r80] = decoder().feed(encoder.sentence("GPRMC,000000,A,4352.95,N,01106.02,E,,,060180,,,A")).readings
    assert r80.ts.year == 1980


def test_empty_course_keeps_the_last_course_known():
    d = decoder()
    d.feed(encoder.rmc(datetime(2026, 11, 24, 8, tzinfo=UTC), 43.88, 11.1, 20, 123.45))
    [r] = d.feed(encoder.sentence("GPRMC,080001.00,A,4352.80,N,01106.00,E,0.0,,241126,,,A")).readings
    assert r.fields["heading_deg"] == 123.45


def test_checksum_is_the_xor_of_the_body():
    body = b"GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"
    expected = 0
    for b in body:
        expected ^= b
    assert checksum(body) == expected == 0x47
    assert checksum(b"") == 0
    assert checksum(b"A") == 0x41


def test_proprietary_sentences_are_ignored_not_rejected():
    d = decoder()
    out = d.feed(encoder.sentence("PUBX,00,081350.00,4717.113210,N,00833.915187,E") + RMC)
    assert len(out.readings) == 1
    assert out.rejects == []
    assert d.stats()["ignored"] == 1


def test_doubled_cr_and_trailing_blanks_of_a_capture_tool_are_tolerated():
    out = decoder().feed(RMC.replace(b"\r\n", b"\r\r\n") + RMC.replace(b"\r\n", b"  \n"))
    assert len(out.readings) == 2
    assert out.rejects == []


def test_leading_blanks_before_a_sentence_are_not_garbage():
    """As in a SiRF capture of gpsd's test logs, where one sentence starts with a space."""
    out = decoder().feed(b" " + RMC + b"\t" + RMC)
    assert len(out.readings) == 2
    assert out.rejects == []


def test_navigational_status_v_of_nmea_41_does_not_void_a_valid_fix():
    """Furuno GT-88 (gpsd's furuno_gl_ga.log): a differential fix with status field `V`,
    which NMEA 4.1 defines as "equipment does not provide navigational status"."""
    line = b"$GNRMC,120213.000,A,5957.0062,N,01100.6429,E,0.00,0.00,310722,,,D,V*0A\r\n"
    [r] = decoder().feed(line).readings
    assert r.fields == {"lat": 59.9501033, "lon": 11.0107150, "speed_kmh": 0.0, "heading_deg": 0.0}
    assert r.ts == datetime(2022, 7, 31, 12, 2, 13, tzinfo=UTC)
