"""Bytes ⇄ GatewayMeta: round trips, hostile input, and refusals that name the field and the value."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.contract import (
    ID_PATTERN,
    ContractError,
    DecodeError,
    GatewayMeta,
    PayloadTooLargeError,
    SchemaError,
    SensorKind,
    SensorMeta,
    decode_meta,
    encode_meta,
)
from edge.contract.ids import RESERVED_ORGS
from edge.contract.meta import DRIVER_NAME_PATTERN

ids = st.from_regex(ID_PATTERN, fullmatch=True)
orgs = ids.filter(lambda org: org not in RESERVED_ORGS)
drivers = st.from_regex(DRIVER_NAME_PATTERN, fullmatch=True)


@st.composite
def metas(draw: st.DrawFn) -> GatewayMeta:
    # Unique ids across sensors and their devices, as the contract wants.
    names = draw(st.lists(ids, min_size=0, max_size=30, unique=True))
    sensors = []
    while names:
        sensor, *names = names
        n_devices = draw(st.integers(0, min(3, len(names))))
        devices, names = names[:n_devices], names[n_devices:]
        sensors.append(
            SensorMeta(
                id=sensor,
                kind=draw(st.sampled_from(SensorKind)),
                driver=draw(drivers),
                devices=tuple(devices),
                unlisted_devices=draw(st.booleans()) if devices else False,
            )
        )
    return GatewayMeta(
        v=1,
        org=draw(orgs),
        gateway=draw(ids),
        config_version=draw(st.none() | st.text(min_size=1, max_size=80)),
        sensors=tuple(sensors),
    )


def wire(**over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "v": 1,
        "org": "comune-prato",
        "gateway": "gw-lora",
        "sensors": [
            {"id": "p-1", "kind": "parking", "driver": "sim_parking"},
            {"id": "lora-centro", "kind": "parking_spot", "driver": "bosch_parking",
             "devices": ["s-1", "s-2"], "unlisted_devices": True},
        ],
    }  # fmt: skip
    doc.update(over)
    return doc


@given(metas())
def test_a_meta_round_trips_through_its_wire_form(meta: GatewayMeta) -> None:
    assert decode_meta(encode_meta(meta)) == meta


@given(metas())
def test_one_declaration_always_encodes_to_the_same_bytes(meta: GatewayMeta) -> None:
    again = GatewayMeta.model_validate(json.loads(encode_meta(meta)))

    assert encode_meta(again) == encode_meta(meta)


@given(st.binary(max_size=300))
def test_random_bytes_are_refused_with_a_contract_error_never_anything_else(payload: bytes) -> None:
    with contextlib.suppress(ContractError):
        decode_meta(payload)


def test_a_source_lists_its_devices_and_says_whether_it_reports_unlisted_ones() -> None:
    meta = decode_meta(json.dumps(wire()).encode())

    (_, source) = meta.sensors
    assert (source.kind, source.devices, source.unlisted_devices) == (
        SensorKind.PARKING_SPOT,
        ("s-1", "s-2"),
        True,
    )


@pytest.mark.parametrize(
    ("doc", "field", "value"),
    [
        (wire(v=2), "v", 2),
        (wire(v=True), "v", True),
        (wire(org="services"), "org", "services"),
        (wire(gateway="GW"), "gateway", "GW"),
        (wire(extra=1), "extra", 1),
        (wire(sensors=[{"id": "p-1", "kind": "bus", "driver": "sim_parking"}]), "sensors[0].kind", "bus"),
        (wire(sensors=[{"id": "p-1", "kind": "parking", "driver": "Sim"}]), "sensors[0].driver", "Sim"),
        (wire(sensors=[{"id": "p-1", "kind": "parking"}]), "sensors[0].driver", None),
        (
            wire(sensors=[{"id": "p-1", "kind": "parking", "driver": "x", "unlisted_devices": "yes"}]),
            "sensors[0].unlisted_devices",
            "yes",
        ),
        (
            wire(sensors=[{"id": "p-1", "kind": "parking", "driver": "x"},
                          {"id": "p-1", "kind": "traffic", "driver": "y"}]),
            "sensors[1].id",
            "p-1",
        ),
        (
            wire(sensors=[{"id": "p-1", "kind": "parking", "driver": "x"},
                          {"id": "src", "kind": "parking_spot", "driver": "y", "devices": ["p-1"]}]),
            "sensors[1].devices[0]",
            "p-1",
        ),
    ],
)  # fmt: skip
def test_a_broken_meta_is_refused_naming_the_field_and_the_value(
    doc: dict[str, Any], field: str, value: Any
) -> None:
    with pytest.raises(SchemaError) as info:
        decode_meta(json.dumps(doc).encode())

    assert (info.value.field, info.value.value) == (field, value)


def test_a_sensor_declared_twice_is_refused_with_where_it_was_first() -> None:
    doc = wire(sensors=[{"id": "p-1", "kind": "parking", "driver": "x"},
                        {"id": "p-1", "kind": "traffic", "driver": "y"}])  # fmt: skip

    with pytest.raises(SchemaError, match=r"already declared at sensors\[0\]\.id"):
        decode_meta(json.dumps(doc).encode())


def test_not_json_and_too_large_are_refused_before_any_validation() -> None:
    with pytest.raises(DecodeError):
        decode_meta(b"{not json")
    with pytest.raises(PayloadTooLargeError):
        decode_meta(json.dumps(wire()).encode(), max_bytes=10)
    with pytest.raises(SchemaError, match="expected a JSON object"):
        decode_meta(b"[]")
