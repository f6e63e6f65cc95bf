"""A gateway's health message as InfluxDB points: its counters and clock, each source's
counters, each LoRaWAN device's radio, frame counter and temperature; all floats, fixed tags."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.ingest.gateway_health import (
    DEVICE_FIELDS,
    DEVICE_MEASUREMENT,
    DEVICE_TAGS,
    HEALTH_FIELDS,
    HEALTH_MEASUREMENT,
    SOURCE_FIELDS,
    health_lines,
)
from edge.contract import DecodeError
from edge.drivers.bosch_parking import encoder
from edge.drivers.bosch_parking.decoder import BoschParkingDecoder, Device

NOW = datetime(2026, 11, 24, 8, tzinfo=UTC)
EUI = "70b3d5e75e00a1f0"
APP = "5c3b0a8e-3f0e-4c1a-9d7e-2b7c1f0e9a11"


def points(payload: dict[str, Any]) -> list[tuple[str, dict[str, str], dict[str, float]]]:
    """(measurement, tags, fields) of each line; a field written other than as a float (`1i`,
    `true`, a string) fails here."""
    out = []
    for text in health_lines("comune-prato", "gw-lora", orjson.dumps(payload), NOW):
        head, fields, _ = re.split(r"(?<!\\) ", text)
        measurement, *tags = re.split(r"(?<!\\),", head)
        out.append(
            (
                measurement,
                dict(t.split("=", 1) for t in tags),
                {k: float(v) for k, v in (f.split("=", 1) for f in fields.split(","))},
            )
        )
    return out


def uplink(port: int, payload: bytes, fcnt: int) -> bytes:
    return encoder.uplink_json(
        dev_eui=EUI, application_id=APP, f_port=port, payload=payload, f_cnt=fcnt, ts=NOW, rssi=-101, snr=-2.5
    )


def test_a_lorawan_sources_devices_keep_frame_gaps_radio_and_heartbeat_temperature() -> None:
    decoder = BoschParkingDecoder(
        org="comune-prato", gateway="gw-lora", devices={EUI: Device("s-mazzoni-01", {})}
    )
    decoder.uplink(uplink(1, encoder.status(True), 1))
    decoder.uplink(uplink(2, encoder.heartbeat(True, temperature_c=-4), 5))  # frames 2..4 lost
    health = {
        "uptime_s": 60,
        "clock_synchronized": True,
        "clock_max_error_s": 0.25,
        "drivers": {"lora-centro": {"state": "connected", "messages": 2, **decoder.stats()}},
    }

    (gateway, source, device) = points(health)

    assert gateway == (
        HEALTH_MEASUREMENT,
        {"org": "comune-prato", "gateway": "gw-lora"},
        {"uptime_s": 60, "clock_max_error_s": 0.25, "clock_synchronized": 1},
    )
    assert source[0] == DEVICE_MEASUREMENT
    assert source[1] == {
        "org": "comune-prato",
        "gateway": "gw-lora",
        "sensor": "lora-centro",
        "device": "lora-centro",
    }
    assert (source[2]["link_up"], source[2]["messages"], source[2]["readings"]) == (1, 2, 2)
    assert device[1] == {"org": "comune-prato", "gateway": "gw-lora", "sensor": "s-mazzoni-01", "device": EUI}
    assert {k: device[2][k] for k in ("fcnt_gaps", "rssi_dbm", "snr_db", "temperature_c", "uplinks")} == {
        "fcnt_gaps": 3,
        "rssi_dbm": -101,
        "snr_db": -2.5,
        "temperature_c": -4,
        "uplinks": 2,
    }


def test_a_gps_sources_fix_is_kept_and_its_text_is_not() -> None:
    stats = {"state": "connected", "fix_quality": 2, "satellites": 11, "hdop": 0.8,
             "last_fix": "2026-11-24T08:00:00Z", "rejected": {"checksum": 2, "no_fix": 1}}  # fmt: skip
    ((_, tags, fields),) = points({"drivers": {"v-bus-101": stats}})
    assert tags["device"] == tags["sensor"] == "v-bus-101"
    assert fields == {"link_up": 1, "fix_quality": 2, "satellites": 11, "hdop": 0.8, "rejected": 3}


def test_what_cannot_be_a_tag_or_a_number_is_left_out() -> None:
    health = {
        "cpu_pct": float("nan"),
        "drivers": {
            "Bad Id": {"frames_ok": 1},
            "ok": {
                "frames_ok": "many",
                "devices": {"NOT-AN-EUI": {"rssi": -90}, "abc": {"snr": True, "rssi": -90, "sensor": 7}},
            },
        },
    }
    assert points(health) == [
        (
            DEVICE_MEASUREMENT,
            {"org": "comune-prato", "gateway": "gw-lora", "sensor": "ok", "device": "abc"},
            {"rssi_dbm": -90},
        )
    ]


def test_a_health_message_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(DecodeError):
        health_lines("o", "g", b"[1, 2]", NOW)


SCALARS = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats() | st.text(max_size=8)
NAMES = st.sampled_from([*HEALTH_FIELDS, *SOURCE_FIELDS, *DEVICE_FIELDS, "rejected", "sensor", "state", "x"])
DEVICES = st.dictionaries(st.text(max_size=6), st.dictionaries(NAMES, SCALARS, max_size=4), max_size=3)
SOURCE = st.dictionaries(NAMES, SCALARS, max_size=5).flatmap(
    lambda d: st.just(d) | DEVICES.map(lambda devices: d | {"devices": devices})
)


@given(
    st.dictionaries(NAMES, SCALARS, max_size=5),
    st.dictionaries(st.text(max_size=6) | st.sampled_from(["gps", "lora"]), SOURCE | SCALARS, max_size=3),
)
def test_any_health_object_gives_points_with_the_fixed_tags_and_only_float_fields(
    body: dict[str, Any], drivers: dict[str, Any]
) -> None:
    for measurement, tags, fields in points(body | {"drivers": drivers}):
        expected = DEVICE_TAGS if measurement == DEVICE_MEASUREMENT else ("org", "gateway")
        assert set(tags) == set(expected)
        assert fields
        assert not set(fields) & set(tags)
