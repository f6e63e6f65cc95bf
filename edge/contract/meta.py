"""A gateway's declaration of its sensors: the retained `sr/v1/{org}/{gateway}/meta` message.

Modelled on Home Assistant's device-based MQTT discovery (home-assistant.io, MQTT integration,
"Discovery messages"): one retained document per device, here a gateway, lists its components,
here its sensors, and is published again on every connect and whenever the configuration
changes; an empty retained payload withdraws it. The cloud learns from it which kind of reading
each sensor sends, from the data, where it used to keep a table of drivers it may not import.

Wire form (QoS 1, retained)::

    {"v": 1, "org": "comune-prato", "gateway": "gw-mercatale", "config_version": "2026-11-24.1",
     "sensors": [{"id": "p-mercatale", "kind": "parking", "driver": "sim_parking"},
                 {"id": "lora-centro", "kind": "parking_spot", "driver": "bosch_parking",
                  "devices": ["s-mazzoni-01"], "unlisted_devices": true}]}

A *source* (a LoRaWAN application) reads for many devices, each under its own sensor id: it
lists them in `devices`, and with `unlisted_devices` it also reports devices it does not list,
named `eui-<DevEUI>` (`UNLISTED_DEVICE_PATTERN`). Every sensor and device id is unique within
the declaration, so that each reading's sensor has one declared kind.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Self

import orjson
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    field_validator,
    model_validator,
)

from edge.contract.codec import DEFAULT_MAX_PAYLOAD_BYTES, loads, schema_error
from edge.contract.errors import PayloadTooLargeError, SchemaError
from edge.contract.ids import RESERVED_ORGS, Id
from edge.contract.kinds import SensorKind

META_VERSION = 1
MAX_SENSORS_PER_GATEWAY = 10_000
MAX_DEVICES_PER_SENSOR = 10_000
# A driver's registered name, the value of `driver:` in a gateway config (`sim_parking`).
DRIVER_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
# How a source names a device it does not list: `eui-` and the LoRaWAN DevEUI in lower-case hex.
UNLISTED_DEVICE_PATTERN = r"^eui-[0-9a-f]{16}$"
UNLISTED_DEVICE_RE = re.compile(UNLISTED_DEVICE_PATTERN)

DriverName = Annotated[str, Field(pattern=DRIVER_NAME_PATTERN)]


def _plain_int(value: Any) -> Any:
    # Literal[1] alone would take `true` and `1.0` (they equal 1 in Python).
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"meta version must be the integer {META_VERSION}")
    return value


class SensorMeta(BaseModel):
    """One sensor entry of a gateway: its id, the kind of its readings, the driver reading it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Id
    kind: SensorKind
    driver: DriverName
    devices: tuple[Id, ...] = Field(default=(), max_length=MAX_DEVICES_PER_SENSOR)
    unlisted_devices: StrictBool = False


class GatewayMeta(BaseModel):
    """What a gateway declares about itself: its sensors, and the configuration they come from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Annotated[Literal[1], BeforeValidator(_plain_int)]  # META_VERSION; required
    org: Id
    gateway: Id
    config_version: str | None = Field(default=None, min_length=1, max_length=80)
    sensors: tuple[SensorMeta, ...] = Field(max_length=MAX_SENSORS_PER_GATEWAY)

    @field_validator("org")
    @classmethod
    def _not_reserved(cls, org: str) -> str:
        if org in RESERVED_ORGS:
            raise ValueError(f"{org!r} is reserved for the cloud's topics")
        return org

    @model_validator(mode="after")
    def _ids_are_unique(self) -> Self:
        seen: dict[str, str] = {}
        for i, s in enumerate(self.sensors):
            for where, sensor in [(f"sensors[{i}].id", s.id)] + [
                (f"sensors[{i}].devices[{j}]", d) for j, d in enumerate(s.devices)
            ]:
                if sensor in seen:
                    raise SchemaError(f"already declared at {seen[sensor]}", field=where, value=sensor)
                seen[sensor] = where
        return self


def encode_meta(meta: GatewayMeta) -> bytes:
    """The wire form; defaults left out, so one configuration always gives the same bytes."""
    return orjson.dumps(meta.model_dump(mode="json", exclude_defaults=True))


def decode_meta(payload: bytes, *, max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> GatewayMeta:
    """Decode a meta message; raises ContractError naming the field and the value."""
    if len(payload) > max_bytes:
        raise PayloadTooLargeError(
            f"{len(payload)} bytes exceeds the limit of {max_bytes}", field="payload", value=len(payload)
        )
    raw = loads(payload)
    if not isinstance(raw, dict):
        raise SchemaError("expected a JSON object", field="payload", value=raw)
    try:
        return GatewayMeta.model_validate(raw)
    except ValidationError as exc:
        raise schema_error(exc) from None
