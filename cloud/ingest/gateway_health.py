"""Gateways' health and status messages as InfluxDB points, for the pipeline dashboard.

Health arrives on `…/health`, birth and last will on the retained `…/status`. Only fixed sets
of numeric health fields are kept, all as floats, so that their InfluxDB types never conflict
(a type is fixed per measurement and field on its first write). A health message gives:

- one `sitroom_gateway_health` point (tags org, gateway): the agent's counters and its clock
  (`clock_synchronized` 1/0, `clock_max_error_s`, the kernel's view through adjtimex);
- one `sitroom_device_health` point per source (tags org, gateway, sensor and device, the
  source's sensor id twice): its driver's counters — frames, rejects, link, the GPS fix
  (`fix_quality`, `satellites`, `hdop`);
- one `sitroom_device_health` point per device of a many-device source (a LoRaWAN
  application: device = the DevEUI, sensor = the sensor id its readings carry): frame-counter
  gaps and resets, RSSI and SNR of the best gateway, uplinks, and a Bosch sensor's heartbeat
  temperature.

Every point of a measurement has the same tag keys, and no field is named as a tag (the rules
of InfluxDB 3, decision 0016).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from cloud.io.influx.lineprotocol import FieldValue, line
from edge.contract import DecodeError, is_id, loads

HEALTH_MEASUREMENT = "sitroom_gateway_health"
STATUS_MEASUREMENT = "sitroom_gateway_status"
DEVICE_MEASUREMENT = "sitroom_device_health"
DEVICE_TAGS = ("org", "gateway", "sensor", "device")
HEALTH_FIELDS = (
    "uptime_s",
    "readings_read",
    "readings_published",
    "batches_published",
    "queue_depth",
    "oldest_queued_age_s",
    "dropped_readings",
    "source_errors",
    "cpu_pct",
    "rss_mb",
    "disk_free_mb",
    "clock_max_error_s",
    "clock_synchronized",  # 1 when NTP disciplines the clock, 0 when not
)
# A source's own counters (driver `stats()`), by the name they have there.
SOURCE_FIELDS = (
    "frames_ok",
    "readings",
    "bytes",
    "connects",
    "disconnects",
    "messages",
    "queue_dropped",
    "info_frames",
    "repeats",
    "sentences",
    "ignored",
    "fix_quality",
    "satellites",
    "hdop",
    "altitude_m",
)
# A device's radio and sensor data (`stats()["devices"][eui]`): its name there -> the field.
DEVICE_FIELDS = {
    "fcnt": "fcnt",
    "fcnt_gaps": "fcnt_gaps",
    "fcnt_resets": "fcnt_resets",
    "uplinks": "uplinks",
    "duplicates": "duplicates",
    "rssi": "rssi_dbm",
    "snr": "snr_db",
    "gateways": "lora_gateways",
    "temperature_c": "temperature_c",
}
# Derived: `rejected` (the sum of the rejects by reason), `link_up` (state "connected": 1).
DERIVED_SOURCE_FIELDS = ("rejected", "link_up")
MAX_DEVICES = 10_000  # per source and message: a bound on what one message can write


def _object(payload: bytes, what: str) -> dict[str, Any]:
    body = loads(payload)
    if not isinstance(body, dict):
        raise DecodeError(f"a {what} message is a JSON object", field="payload", value=payload[:64])
    return body


def _float(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _fields(body: dict[str, Any], names: Iterable[str]) -> dict[str, FieldValue]:
    return {name: v for name in names if (v := _float(body.get(name))) is not None}


def health_lines(org: str, gateway: str, payload: bytes, received: datetime) -> list[str]:
    """The points of one health message (none when it carries nothing known)."""
    body = _object(payload, "health")
    out: list[str] = []
    fields = _fields(body, HEALTH_FIELDS)
    if isinstance(body.get("clock_synchronized"), bool):
        fields["clock_synchronized"] = 1.0 if body["clock_synchronized"] else 0.0
    if fields:
        out.append(line(HEALTH_MEASUREMENT, {"org": org, "gateway": gateway}, fields, received))
    drivers = body.get("drivers")
    if isinstance(drivers, dict):
        for sensor, stats in drivers.items():
            if isinstance(stats, dict) and is_id(sensor):
                out += _source_lines(org, gateway, sensor, stats, received)
    return out


def _source_lines(
    org: str, gateway: str, sensor: str, stats: dict[str, Any], received: datetime
) -> list[str]:
    out: list[str] = []
    fields = _fields(stats, SOURCE_FIELDS)
    rejected = stats.get("rejected")
    if isinstance(rejected, dict):
        fields["rejected"] = float(sum(v for v in rejected.values() if _float(v) is not None))
    if isinstance(stats.get("state"), str):
        fields["link_up"] = 1.0 if stats["state"] == "connected" else 0.0
    if fields:
        tags = {"org": org, "gateway": gateway, "sensor": sensor, "device": sensor}
        out.append(line(DEVICE_MEASUREMENT, tags, fields, received))
    devices = stats.get("devices")
    if isinstance(devices, dict):
        for device, radio in list(devices.items())[:MAX_DEVICES]:
            if not (isinstance(radio, dict) and is_id(device)):
                continue
            values = {
                field: v
                for name, field in DEVICE_FIELDS.items()
                if (v := _float(radio.get(name))) is not None
            }
            reads_as = radio.get("sensor")
            if not (isinstance(reads_as, str) and is_id(reads_as)):
                reads_as = sensor
            tags = {
                "org": org,
                "gateway": gateway,
                "sensor": reads_as,
                "device": device,
            }
            if values:
                out.append(line(DEVICE_MEASUREMENT, tags, values, received))
    return out


def status_line(org: str, gateway: str, payload: bytes, received: datetime) -> str | None:
    """online = 1 for the birth message, 0 for the last will or a goodbye; None for a cleared
    retained status (empty payload)."""
    if not payload:
        return None
    body = _object(payload, "status")
    state = body.get("state")
    if state not in ("online", "offline"):
        raise DecodeError("state must be online or offline", field="state", value=state)
    fields: dict[str, FieldValue] = {"online": 1 if state == "online" else 0}
    if isinstance(body.get("reason"), str) and body["reason"]:
        fields["reason"] = body["reason"][:200]
    return line(STATUS_MEASUREMENT, {"org": org, "gateway": gateway}, fields, received)
