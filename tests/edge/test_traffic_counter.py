"""The traffic_counter decoder: round trips, CRC, hostile bytes, field checks."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.drivers.traffic_counter.decoder import CLASSES, HEAVY, TrafficCounterDecoder, crc16
from edge.drivers.traffic_counter.encoder import record, split_classes

LINE = b"$TCR,1,repubblica,1,inbound,20261124T081500Z,300,1,3,61,9,1,4,1,2,2,42.7,11.4*79B0\r\n"


def decoder(site: str | None = None) -> TrafficCounterDecoder:
    return TrafficCounterDecoder(org="comune-prato", gateway="gw-traffico", sensor="t-rep", site=site)


def test_crc_is_ccitt_false_with_its_catalogue_check_value():
    assert crc16(b"123456789") == 0x29B1


ids = st.from_regex(r"[a-z0-9][a-z0-9-]{0,15}", fullmatch=True)


@given(
    site=ids,
    direction=ids,
    lane=st.integers(1, 9),
    end=st.datetimes(
        min_value=datetime(2000, 1, 1),  # noqa: DTZ001  (hypothesis zones naive bounds)
        max_value=datetime(2099, 1, 1),  # noqa: DTZ001
        timezones=st.just(UTC),
    ).map(lambda t: t.replace(microsecond=0)),
    interval_s=st.integers(1, 3600),
    counts=st.fixed_dictionaries({c: st.integers(0, 9999) for c in CLASSES}),
    speed_d=st.integers(1, 2500),
    occ_d=st.integers(0, 1000),
)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_encode_then_decode_returns_the_same_record(
    site: str,
    direction: str,
    lane: int,
    end: datetime,
    interval_s: int,
    counts: dict[str, int],
    speed_d: int,
    occ_d: int,
):
    wire = record(
        site=site, lane=lane, direction=direction, end=end, interval_s=interval_s, counts=counts,
        speed_kmh=speed_d / 10, occupancy_pct=occ_d / 10,
    )  # fmt: skip
    out = decoder().feed(wire)
    assert out.rejects == []
    [r] = out.readings
    vehicles = sum(counts.values())
    assert r.ts == end
    assert r.fields == {
        "vehicles": vehicles,
        "heavy": sum(v for c, v in counts.items() if c in HEAVY),
        "interval_s": interval_s,
        "speed_kmh": speed_d / 10 if vehicles else 0.0,
        "occupancy_pct": occ_d / 10,
    }
    assert r.tags == {"site": site, "lane": str(lane), "direction": direction}


@given(vehicles=st.integers(0, 5000), heavy_share=st.floats(0, 1))
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_class_split_keeps_the_totals_of_the_simulators(vehicles: int, heavy_share: float):
    heavy = int(vehicles * heavy_share)
    counts = split_classes(vehicles, heavy)
    assert sum(counts.values()) == vehicles
    assert sum(v for c, v in counts.items() if c in HEAVY) == heavy
    assert min(counts.values()) >= 0


@given(st.binary(max_size=600))
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_random_bytes_never_raise_and_never_yield_a_reading(data: bytes):
    d = decoder()
    assert d.feed(data).readings == []
    assert d.record(data).readings == []


@given(position=st.integers(1, len(LINE) - 8), flip=st.integers(1, 255))
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_corrupted_byte_is_rejected(position: int, flip: int):
    corrupted = bytearray(LINE)
    corrupted[position] ^= flip
    out = decoder().feed(bytes(corrupted))
    assert out.readings == []
    assert out.rejects


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("TCR,2,repubblica,1,inbound,20261124T081500Z,300,0,0,1,0,0,0,0,0,0,42.7,11.4", "unsupported"),
        ("TCS,1,repubblica,ok", "unsupported"),
        ("TCR,1,repubblica,1,inbound,20261124T081500Z,300,0,0,1,0,0,0,0,0,42.7,11.4", "truncated"),
        ("TCR,1,Repubblica,1,inbound,20261124T081500Z,300,0,0,1,0,0,0,0,0,0,42.7,11.4", "bad_field"),
        ("TCR,1,repubblica,0,inbound,20261124T081500Z,300,0,0,1,0,0,0,0,0,0,42.7,11.4", "out_of_range"),
        ("TCR,1,repubblica,1,inbound,20261124T081500,300,0,0,1,0,0,0,0,0,0,42.7,11.4", "bad_time"),
        ("TCR,1,repubblica,1,inbound,20261131T081500Z,300,0,0,1,0,0,0,0,0,0,42.7,11.4", "bad_time"),
        ("TCR,1,repubblica,1,inbound,20261124T081500Z,0,0,0,1,0,0,0,0,0,0,42.7,11.4", "out_of_range"),
        ("TCR,1,repubblica,1,inbound,20261124T081500Z,300,0,0,-1,0,0,0,0,0,0,42.7,11.4", "bad_field"),
        ("TCR,1,repubblica,1,inbound,20261124T081500Z,300,0,0,1,0,0,0,0,0,0,,11.4", "bad_field"),
        ("TCR,1,repubblica,1,inbound,20261124T081500Z,300,0,0,1,0,0,0,0,0,0,42.75,11.4", "bad_field"),
        ("TCR,1,repubblica,1,inbound,20261124T081500Z,300,0,0,1,0,0,0,0,0,0,42.7,100.1", "out_of_range"),
        ("TCR,1,repubblica,1,inbound,20261124T081500Z,300,0,0,1,0,0,0,0,0,0,250.1,1.0", "out_of_range"),
    ],
)
def test_invalid_record_is_rejected_with_its_reason(body: str, reason: str):
    raw = body.encode()
    out = decoder().feed(b"$" + raw + b"*" + f"{crc16(raw):04X}".encode() + b"\r\n")
    assert out.readings == []
    assert [r.reason for r in out.rejects] == [reason]


def test_record_of_another_site_is_refused_when_the_site_is_configured():
    d = decoder(site="declassata")
    out = d.feed(LINE)
    assert out.readings == []
    assert d.stats()["rejected"] == {"wrong_site": 1}


def test_repeated_record_after_a_link_reset_is_decoded_and_counted():
    d = decoder()
    assert len(d.feed(LINE + LINE).readings) == 2
    assert d.stats()["repeats"] == 1


def test_lower_case_crc_is_refused_as_the_spec_says_upper_case():
    assert decoder().feed(LINE.replace(b"79B0", b"79b0")).readings == []
