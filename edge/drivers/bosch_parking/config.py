"""Config of the `bosch_parking` driver: Bosch parking lot sensors behind a ChirpStack v4 server."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from edge.contract import BrokerAddress, Id
from edge.drivers.registry import DriverConfig

_EUI = re.compile(r"[0-9a-f]{16}")


def _eui(value: str) -> str:
    value = value.lower()
    if not _EUI.fullmatch(value):
        raise ValueError(f"{value!r} is not a DevEUI (16 hex digits)")
    return value


DevEui = Annotated[str, AfterValidator(_eui)]


class BoschDevice(BaseModel):
    """One bay: the sensor id its readings carry, and where it is."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sensor: Id
    street: Id | None = None
    zone: Id | None = None


class BoschParkingConfig(DriverConfig):
    """The uplinks of one ChirpStack application, read from the network server's MQTT broker."""

    driver: Literal["bosch_parking"] = "bosch_parking"
    broker: str = "mqtt://127.0.0.1:1883"  # ChirpStack's MQTT integration broker
    application_id: str = Field(min_length=1)  # the ChirpStack application UUID
    topic_prefix: str = "application"  # ChirpStack's default event_topic starts so
    qos: Literal[0, 1] = 1
    devices: dict[DevEui, BoschDevice] = {}
    accept_unknown: bool = True  # readings of unlisted devices get sensor id `eui-<deveui>`
    street: Id | None = None  # default tags of every bay
    zone: Id | None = None

    @field_validator("broker")
    @classmethod
    def _broker(cls, url: str) -> str:
        BrokerAddress.parse(url, field="broker")
        return url

    @field_validator("application_id", "topic_prefix")
    @classmethod
    def _topic_level(cls, value: str) -> str:
        if any(c in value for c in "#+\x00") or ("/" in value and value != value.strip("/")):
            raise ValueError(f"{value!r} may not hold MQTT wildcards or a leading/trailing /")
        return value

    @property
    def topic(self) -> str:
        return f"{self.topic_prefix}/{self.application_id}/device/+/event/up"

    def device_sensors(self) -> tuple[str, ...]:
        return tuple(d.sensor for d in self.devices.values())

    def reports_unlisted_devices(self) -> bool:
        return self.accept_unknown

    def default_tags(self) -> dict[str, str]:
        return {k: v for k, v in (("street", self.street), ("zone", self.zone)) if v}
