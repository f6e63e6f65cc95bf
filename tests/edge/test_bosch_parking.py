"""The bosch_parking decoder: payload layout, ChirpStack defaults, fCnt gaps and duplicates."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.drivers.bosch_parking import encoder
from edge.drivers.bosch_parking.decoder import BoschParkingDecoder, Device, UplinkError, payload_occupied

APP = "5c3b0a8e-3f0e-4c1a-9d7e-2b7c1f0e9a11"
EUI = "70b3d5e75e00a1f0"
T0 = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


def decoder(**kwargs: object) -> BoschParkingDecoder:
    return BoschParkingDecoder(
        org="comune-prato",
        gateway="gw-mercatale",
        devices={EUI: Device("s-mazzoni-01", {"street": "via-mazzoni"})},
        default_tags={"zone": "centro"},
        **kwargs,  # type: ignore[arg-type]
    )


def event(port: int, payload: bytes, fcnt: int, ts: datetime = T0, eui: str = EUI) -> bytes:
    return encoder.uplink_json(
        dev_eui=eui, application_id=APP, f_port=port, payload=payload, f_cnt=fcnt, ts=ts
    )


@given(
    occupied=st.booleans(),
    port=st.sampled_from([1, 2, 3]),
    temperature=st.none() | st.integers(-128, 127),
    fcnt=st.integers(0, 2**32 - 1),
    ms=st.integers(0, 10**9),
)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_encode_then_decode_returns_the_same_occupancy(
    occupied: bool, port: int, temperature: int | None, fcnt: int, ms: int
):
    payload = {
        1: encoder.status(occupied),
        2: encoder.heartbeat(occupied, temperature),
        3: encoder.startup(occupied),
    }[port]
    ts = T0 + timedelta(milliseconds=ms)
    d = decoder()
    out = d.uplink(event(port, payload, fcnt, ts))
    assert out.rejects == []
    [r] = out.readings
    assert (r.sensor, r.ts, r.fields, r.tags) == (
        "s-mazzoni-01",
        ts,
        {"occupied": occupied},
        {"zone": "centro", "street": "via-mazzoni"},
    )
    device = d.stats()["devices"][EUI]
    assert device["fcnt"] == fcnt
    if port == 2:
        assert device["temperature_c"] == temperature


@given(st.binary(max_size=400))
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_random_bytes_never_raise_and_never_yield_a_reading(data: bytes):
    assert decoder().uplink(data).readings == []


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "deviceInfo": st.fixed_dictionaries({}, optional={"devEui": st.text(max_size=20) | json_values}),
            "fCnt": json_values,
            "fPort": json_values,
            "data": json_values,
            "time": json_values,
            "rxInfo": json_values,
        },
    )
)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_random_event_shapes_never_raise(event_dict: dict[str, object]):
    out = decoder().uplink(orjson.dumps(event_dict))
    assert len(out.readings) + len(out.rejects) == 1


@given(port=st.sampled_from([1, 2, 3]), data=st.binary(max_size=40))
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_random_payloads_decode_or_are_rejected_by_length(port: int, data: bytes):
    is_valid = len(data) in {1: {1}, 2: {1, 2}, 3: {17}}[port] and (port != 3 or data[15] in (1, 2, 3, 4))
    if is_valid:
        assert payload_occupied(port, data) == bool(data[16 if port == 3 else 0] & 1)
    else:
        with pytest.raises(UplinkError):
            payload_occupied(port, data)


def test_startup_frame_of_bosch_example_fills_the_device_health():
    d = decoder()
    payload = bytes([0x24, 3, 0, 0, 0x75, 3, 0, 0, 0, 0, 0, 0, 0, 29, 2, 3, 1])
    [r] = d.uplink(event(3, payload, 0)).readings
    assert r.fields == {"occupied": True}
    device = d.stats()["devices"][EUI]
    assert (device["firmware"], device["reset_cause"]) == ("0.29.2", "system request")


def test_absent_fcnt_adr_and_confirmed_are_chirpstack_defaults():
    raw = orjson.loads(event(1, encoder.status(True), 0))
    assert {"fCnt", "adr", "confirmed"}.isdisjoint(raw)
    d = decoder()
    assert d.uplink(orjson.dumps(raw)).readings
    assert d.stats()["devices"][EUI]["fcnt"] == 0


def test_frame_counter_gaps_and_duplicates_are_counted():
    d = decoder()
    for fcnt in (10, 11, 11, 15, 16):
        d.uplink(event(1, encoder.status(fcnt % 2 == 0), fcnt))
    device = d.stats()["devices"][EUI]
    assert (device["fcnt_gaps"], device["duplicates"], device["uplinks"]) == (3, 1, 4)
    assert d.stats()["rejected"] == {"duplicate": 1}
    d.uplink(event(3, encoder.startup(False), 0))
    assert d.stats()["devices"][EUI]["fcnt_resets"] == 1


def test_radio_quality_of_the_best_gateway_is_kept_as_health():
    raw = orjson.loads(event(1, encoder.status(True), 3))
    raw["rxInfo"] = [{"gatewayId": "a", "rssi": -110, "snr": -3.5}, {"gatewayId": "b", "rssi": -87, "snr": 8}]
    d = decoder()
    d.uplink(orjson.dumps(raw))
    device = d.stats()["devices"][EUI]
    assert (device["rssi"], device["snr"], device["gateways"]) == (-87, 8.0, 2)


def test_unknown_device_is_refused_when_the_config_says_so():
    d = decoder(accept_unknown=False)
    out = d.uplink(event(1, encoder.status(True), 1, eui="0011223344556677"))
    assert [r.reason for r in out.rejects] == ["unknown_device"]


def test_info_ports_are_valid_frames_without_a_reading_and_other_ports_are_rejected():
    d = decoder()
    assert d.uplink(event(4, b"\x01\x02", 1)).readings == []
    assert d.stats()["info_frames"] == 1
    assert [r.reason for r in d.uplink(event(9, b"\x01", 2)).rejects] == ["unsupported_port"]


def test_event_without_any_time_uses_the_arrival_time():
    raw = orjson.loads(event(1, encoder.status(True), 1))
    del raw["time"]
    assert [r.reason for r in decoder().uplink(orjson.dumps(raw)).rejects] == ["bad_time"]
    [r] = decoder().uplink(orjson.dumps(raw), received_at=T0).readings
    assert r.ts == T0


def test_data_that_is_not_base64_is_rejected():
    raw = orjson.loads(event(1, encoder.status(True), 1))
    raw["data"] = "!!" + base64.b64encode(b"\x01").decode()
    assert [r.reason for r in decoder().uplink(orjson.dumps(raw)).rejects] == ["bad_field"]
