"""Bosch PLS payloads and the ChirpStack v4 uplink events that carry them (simulators, tests)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import orjson


def status(occupied: bool) -> bytes:
    """fPort 1 payload."""
    return bytes([0x01 if occupied else 0x00])


def heartbeat(occupied: bool, temperature_c: int | None = None) -> bytes:
    """fPort 2 payload."""
    if temperature_c is None:
        return bytes([int(occupied)])
    return bytes([int(occupied), temperature_c & 0xFF])


def startup(occupied: bool, *, firmware: tuple[int, int, int] = (0, 29, 2), reset_cause: int = 2) -> bytes:
    """fPort 3 payload, with no debug codes."""
    return bytes(12) + bytes(firmware) + bytes([reset_cause, int(occupied)])


def uplink_event(
    *,
    dev_eui: str,
    application_id: str,
    f_port: int,
    payload: bytes,
    f_cnt: int,
    ts: datetime,
    rssi: int = -95,
    snr: float = 7.5,
    device_name: str = "",
    gateway_id: str = "0016c001ff10a235",
) -> dict[str, Any]:
    """A ChirpStack v4 `event/up` as its MQTT integration publishes it (protobuf JSON mapping):
    fields at their default value (fCnt 0, adr false, confirmed false) are left out, as ChirpStack does."""
    ts = ts.astimezone(UTC)
    event: dict[str, Any] = {
        "deduplicationId": f"{dev_eui}-{f_cnt}",
        "time": ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond:06d}000Z",
        "deviceInfo": {
            "tenantId": "52f14cd4-c6f1-4fbd-8f87-4025e1d49242",
            "tenantName": "ChirpStack",
            "applicationId": application_id,
            "applicationName": "parking",
            "deviceProfileId": "f9f4e6c2-7b7a-4d59-9b3b-0d7f3d1a2e55",
            "deviceProfileName": "Bosch PLS",
            "deviceName": device_name or dev_eui,
            "devEui": dev_eui,
        },
        "devAddr": "01f2e3d4",
        "dr": 5,
        "fPort": f_port,
        "data": base64.b64encode(payload).decode("ascii"),
        "rxInfo": [
            {
                "gatewayId": gateway_id,
                "uplinkId": 4242 + f_cnt,
                "rssi": rssi,
                "snr": snr,
                "crcStatus": "CRC_OK",
            }
        ],
        "txInfo": {
            "frequency": 868100000,
            "modulation": {"lora": {"bandwidth": 125000, "spreadingFactor": 7}},
        },
    }
    if f_cnt:
        event["fCnt"] = f_cnt
    return event


def uplink_json(**kwargs: Any) -> bytes:
    return orjson.dumps(uplink_event(**kwargs))


def uplink_topic(application_id: str, dev_eui: str) -> str:
    return f"application/{application_id}/device/{dev_eui}/event/up"
