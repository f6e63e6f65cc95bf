"""Bosch Parking Lot Sensor payloads inside ChirpStack v4 uplink events, to parking_spot readings.

Payload layout (Bosch PLS, TTN device repository `vendor/bosch/tpl110-0292.js` and its
examples in `tps110-0292-codec.yaml`; see docs/protocols/bosch-parking.md):
- fPort 1, parking status: 1 byte, bit 0 = occupied.
- fPort 2, heartbeat: byte 0 bit 0 = occupied; byte 1 (optional) = temperature, °C, signed.
- fPort 3, start-up: 17 bytes: three 4-byte debug records (code = (b[i+1] & 0x0F) << 8 | b[i]),
  firmware version in bytes 12..14, reset cause in byte 15 (1 watchdog, 2 power on,
  3 system request, 4 other), byte 16 bit 0 = occupied.
- fPort 4 device information, 5 device usage, 6 debug: valid frames that carry no occupancy.

The ChirpStack v4 event JSON (protobuf JSON mapping) omits fields at their default value, so a
missing `fCnt` is 0 and a missing `adr`/`confirmed` is false; we fill them in.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from edge.contract import Reading, SensorKind
from edge.drivers.framing import DecodeCounters, DecoderOutput, RejectedInput

RESET_CAUSES = {1: "watchdog", 2: "power on", 3: "system request", 4: "other"}
INFO_PORTS = frozenset({4, 5, 6})
MAX_EVENT = 64 * 1024
_EUI = re.compile(r"[0-9a-fA-F]{16}")
_FRACTION = re.compile(r"(\.\d{6})\d+")


class UplinkError(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


@dataclass(frozen=True, slots=True)
class Device:
    sensor: str
    tags: dict[str, str]


@dataclass(slots=True)
class Radio:
    """Per-device link data: health, not readings."""

    sensor: str = ""  # the sensor id its readings carry
    fcnt: int | None = None
    rssi: int | None = None
    snr: float | None = None
    gateways: int = 0
    uplinks: int = 0
    fcnt_gaps: int = 0  # frames lost between two we received
    fcnt_resets: int = 0  # the counter went back (device rejoined)
    duplicates: int = 0
    temperature_c: int | None = None
    firmware: str | None = None
    reset_cause: str | None = None
    debug_codes: list[int] = field(default_factory=list)
    last_data: bytes = b""


def payload_occupied(port: int, data: bytes, radio: Radio | None = None) -> bool | None:
    """The occupancy a Bosch PLS payload carries, None for ports without it; raises UplinkError."""
    if port == 1:
        if len(data) != 1:
            raise UplinkError("bad_length", f"port 1 payload of {len(data)} bytes, expected 1")
        return bool(data[0] & 0x01)
    if port == 2:
        if len(data) not in (1, 2):
            raise UplinkError("bad_length", f"port 2 payload of {len(data)} bytes, expected 1 or 2")
        if radio is not None and len(data) == 2:
            radio.temperature_c = data[1] - 0x100 if data[1] & 0x80 else data[1]
        return bool(data[0] & 0x01)
    if port == 3:
        if len(data) != 17:
            raise UplinkError("bad_length", f"port 3 payload of {len(data)} bytes, expected 17")
        cause = RESET_CAUSES.get(data[15])
        if cause is None:
            raise UplinkError("bad_field", f"start-up reset cause {data[15]} is not 1..4")
        if radio is not None:
            radio.firmware = f"{data[12]}.{data[13]}.{data[14]}"
            radio.reset_cause = cause
            radio.debug_codes = [c for i in (0, 4, 8) if (c := ((data[i + 1] & 0x0F) << 8) | data[i])]
        return bool(data[16] & 0x01)
    if port in INFO_PORTS:
        return None
    raise UplinkError("unsupported_port", f"fPort {port} is not a Bosch PLS port (1..6)")


def _time(event: dict[str, Any], received_at: datetime | None) -> datetime:
    candidates = [event.get("time")]
    rx = event.get("rxInfo")
    if isinstance(rx, list):
        candidates += [r.get(k) for r in rx if isinstance(r, dict) for k in ("gwTime", "nsTime")]
    for value in candidates:
        if isinstance(value, str) and value:
            # protobuf JSON carries nanoseconds; Python takes at most microseconds.
            text = _FRACTION.sub(r"\1", value).replace("Z", "+00:00")
            try:
                ts = datetime.fromisoformat(text)
            except ValueError:
                raise UplinkError("bad_time", f"time {value!r} is not RFC 3339") from None
            if ts.tzinfo is None:
                raise UplinkError("bad_time", f"time {value!r} has no offset")
            return ts.astimezone(UTC)
    if received_at is None:
        raise UplinkError("bad_time", "no time, gwTime or nsTime in the event")
    return received_at


def _frame(event: dict[str, Any]) -> tuple[int, int, bytes]:
    """fCnt, fPort and the payload, with the protobuf JSON defaults for absent fields."""
    fcnt = event.get("fCnt", 0)
    port = event.get("fPort", 0)
    data_b64 = event.get("data", "")
    if not isinstance(fcnt, int) or isinstance(fcnt, bool) or not 0 <= fcnt < 2**32:
        raise UplinkError("bad_field", f"fCnt {fcnt!r} is not a 32-bit counter")
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 255:
        raise UplinkError("bad_field", f"fPort {port!r} is not 0..255")
    if not isinstance(data_b64, str):
        raise UplinkError("bad_field", f"data {data_b64!r} is not base64 text")
    try:
        data = base64.b64decode(data_b64, validate=True)
    except (binascii.Error, ValueError):
        raise UplinkError("bad_field", f"data {data_b64[:40]!r} is not base64") from None
    if port == 0:
        raise UplinkError("no_payload", "fPort 0 (MAC commands only)")
    return fcnt, port, data


class BoschParkingDecoder:
    """Decodes ChirpStack v4 `event/up` JSON; tracks frame counters and radio quality per device."""

    def __init__(
        self,
        *,
        org: str,
        gateway: str,
        devices: dict[str, Device],
        default_tags: dict[str, str] | None = None,
        accept_unknown: bool = True,
    ) -> None:
        self.org = org
        self.gateway = gateway
        self.devices = {eui.lower(): d for eui, d in devices.items()}
        self.default_tags = dict(default_tags or {})
        self.accept_unknown = accept_unknown
        self.counters = DecodeCounters()
        self.radio: dict[str, Radio] = {}
        self.info_frames = 0

    def feed(self, data: bytes) -> DecoderOutput:
        """One event (as the CLI reads a file); same as `uplink(data)`."""
        return self.uplink(data)

    def uplink(
        self, payload: bytes, *, received_at: datetime | None = None, line: int | None = None
    ) -> DecoderOutput:
        out = DecoderOutput()
        self.counters.bytes += len(payload)
        try:
            reading = self._parse(payload, received_at)
        except UplinkError as exc:
            self.counters.reject(out, RejectedInput(exc.reason, exc.detail, payload[:200], line))
            return out
        except (ValueError, TypeError, KeyError, AttributeError) as exc:  # never raise out of a decoder
            self.counters.reject(out, RejectedInput("garbled", str(exc), payload[:200], line))
            return out
        self.counters.frames_ok += 1
        if reading is not None:
            self.counters.readings += 1
            out.readings.append(reading)
        return out

    def _parse(self, payload: bytes, received_at: datetime | None) -> Reading | None:
        if len(payload) > MAX_EVENT:
            raise UplinkError("too_long", f"{len(payload)} bytes > {MAX_EVENT}")
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise UplinkError("bad_json", str(exc)) from None
        if not isinstance(event, dict):
            raise UplinkError("bad_json", f"expected an object, got {type(event).__name__}")
        eui, device = self._device(event)
        fcnt, port, data = _frame(event)
        ts = _time(event, received_at)
        radio = self.radio.setdefault(eui, Radio(sensor=device.sensor))
        if radio.fcnt is not None:
            if fcnt == radio.fcnt and data == radio.last_data:
                # A redelivery (QoS 1 after a reconnect, a replayed capture): drop it.
                radio.duplicates += 1
                raise UplinkError("duplicate", f"devEui {eui} fCnt {fcnt} seen already")
            if fcnt > radio.fcnt + 1:
                radio.fcnt_gaps += fcnt - radio.fcnt - 1
            elif fcnt <= radio.fcnt:
                radio.fcnt_resets += 1  # the device rejoined and counts from 0 again
        radio.fcnt = fcnt
        radio.last_data = data
        radio.uplinks += 1
        self._radio_quality(radio, event.get("rxInfo"))
        occupied = payload_occupied(port, data, radio)
        if occupied is None:
            self.info_frames += 1
            return None
        return Reading(
            kind=SensorKind.PARKING_SPOT,
            org=self.org,
            gateway=self.gateway,
            sensor=device.sensor,
            ts=ts,
            fields={"occupied": occupied},
            tags={**self.default_tags, **device.tags},
        )

    def _device(self, event: dict[str, Any]) -> tuple[str, Device]:
        info = event.get("deviceInfo")
        eui = info.get("devEui") if isinstance(info, dict) else None
        if not isinstance(eui, str) or not _EUI.fullmatch(eui):
            raise UplinkError("bad_field", f"deviceInfo.devEui {eui!r} is not 16 hex digits")
        eui = eui.lower()
        device = self.devices.get(eui)
        if device is None:
            if not self.accept_unknown:
                raise UplinkError("unknown_device", f"devEui {eui} is not in this config's devices")
            device = Device(f"eui-{eui}", {})
        return eui, device

    @staticmethod
    def _radio_quality(radio: Radio, rx: Any) -> None:
        if not isinstance(rx, list):
            return
        best = [r for r in rx if isinstance(r, dict)]
        radio.gateways = len(best)
        if best:
            top = max(best, key=lambda r: r.get("rssi", 0) if isinstance(r.get("rssi", 0), int) else -999)
            rssi, snr = top.get("rssi", 0), top.get("snr", 0.0)
            radio.rssi = rssi if isinstance(rssi, int) else None
            radio.snr = float(snr) if isinstance(snr, int | float) else None

    def stats(self) -> dict[str, Any]:
        return {
            **self.counters.snapshot(),
            "info_frames": self.info_frames,
            "devices": {
                eui: {
                    "sensor": r.sensor,
                    "fcnt": r.fcnt,
                    "rssi": r.rssi,
                    "snr": r.snr,
                    "gateways": r.gateways,
                    "uplinks": r.uplinks,
                    "fcnt_gaps": r.fcnt_gaps,
                    "fcnt_resets": r.fcnt_resets,
                    "duplicates": r.duplicates,
                    "temperature_c": r.temperature_c,
                    "firmware": r.firmware,
                    "reset_cause": r.reset_cause,
                }
                for eui, r in sorted(self.radio.items())
            },
        }
