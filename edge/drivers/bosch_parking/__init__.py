"""The `bosch_parking` driver: Bosch parking lot sensors' uplinks from a ChirpStack v4 broker."""

from __future__ import annotations

from typing import ClassVar, Literal

from edge.contract import SensorKind
from edge.drivers.bosch_parking.config import BoschDevice, BoschParkingConfig
from edge.drivers.bosch_parking.decoder import BoschParkingDecoder, Device
from edge.drivers.registry import DriverConfig, Source, SourceContext, register
from edge.drivers.simulated.source import expect_config
from edge.transports.chirpstack import ChirpStackSource


@register("bosch_parking")
class BoschParking:
    name: ClassVar[str]
    Config: ClassVar[type[DriverConfig]] = BoschParkingConfig
    kind: ClassVar[SensorKind] = SensorKind.PARKING_SPOT
    framing: ClassVar[Literal["stream", "message"]] = "message"

    @classmethod
    def decoder(cls, config: DriverConfig, ctx: SourceContext) -> BoschParkingDecoder:
        cfg = expect_config(config, BoschParkingConfig)
        devices = {
            eui: Device(d.sensor, {k: v for k, v in (("street", d.street), ("zone", d.zone)) if v})
            for eui, d in cfg.devices.items()
        }
        return BoschParkingDecoder(
            org=ctx.org,
            gateway=ctx.gateway,
            devices=devices,
            default_tags=cfg.default_tags(),
            accept_unknown=cfg.accept_unknown,
        )

    @classmethod
    def open(cls, config: DriverConfig, ctx: SourceContext) -> Source:
        cfg = expect_config(config, BoschParkingConfig)
        return ChirpStackSource(
            broker=cfg.broker,
            topic=cfg.topic,
            qos=cfg.qos,
            decoder=cls.decoder(config, ctx),
            client_id=f"sitroom-{ctx.gateway}-{cfg.id}",
        )


__all__ = ["BoschDevice", "BoschParking", "BoschParkingConfig", "BoschParkingDecoder"]
