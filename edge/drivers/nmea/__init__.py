"""The `nmea` driver: fleet GNSS fixes from an NMEA 0183 receiver on a serial line."""

from __future__ import annotations

from typing import ClassVar, Literal

from edge.contract import SensorKind
from edge.drivers.nmea.config import NmeaConfig
from edge.drivers.nmea.decoder import NmeaDecoder
from edge.drivers.registry import DriverConfig, Source, SourceContext, register
from edge.drivers.simulated.source import expect_config
from edge.transports.serial import SerialLine, SerialSource


@register("nmea")
class Nmea:
    name: ClassVar[str]
    Config: ClassVar[type[DriverConfig]] = NmeaConfig
    kind: ClassVar[SensorKind] = SensorKind.FLEET
    framing: ClassVar[Literal["stream", "message"]] = "stream"

    @classmethod
    def decoder(cls, config: DriverConfig, ctx: SourceContext) -> NmeaDecoder:
        cfg = expect_config(config, NmeaConfig)
        return NmeaDecoder(
            org=ctx.org, gateway=ctx.gateway, sensor=cfg.id, tags=cfg.tags, talkers=frozenset(cfg.talkers)
        )

    @classmethod
    def open(cls, config: DriverConfig, ctx: SourceContext) -> Source:
        return SerialSource(SerialLine(expect_config(config, NmeaConfig)), cls.decoder(config, ctx))


__all__ = ["Nmea", "NmeaConfig", "NmeaDecoder"]
