"""The `traffic_counter` driver: `$TCR` interval records from a loop counter on a serial line."""

from __future__ import annotations

from typing import ClassVar, Literal

from edge.contract import SensorKind
from edge.drivers.registry import DriverConfig, Source, SourceContext, register
from edge.drivers.simulated.source import expect_config
from edge.drivers.traffic_counter.config import TrafficCounterConfig
from edge.drivers.traffic_counter.decoder import TrafficCounterDecoder
from edge.transports.serial import SerialLine, SerialSource


@register("traffic_counter")
class TrafficCounter:
    name: ClassVar[str]
    Config: ClassVar[type[DriverConfig]] = TrafficCounterConfig
    kind: ClassVar[SensorKind] = SensorKind.TRAFFIC
    framing: ClassVar[Literal["stream", "message"]] = "stream"

    @classmethod
    def decoder(cls, config: DriverConfig, ctx: SourceContext) -> TrafficCounterDecoder:
        cfg = expect_config(config, TrafficCounterConfig)
        return TrafficCounterDecoder(org=ctx.org, gateway=ctx.gateway, sensor=cfg.id, site=cfg.site)

    @classmethod
    def open(cls, config: DriverConfig, ctx: SourceContext) -> Source:
        cfg = expect_config(config, TrafficCounterConfig)
        return SerialSource(SerialLine(cfg), cls.decoder(config, ctx))


__all__ = ["TrafficCounter", "TrafficCounterConfig", "TrafficCounterDecoder"]
