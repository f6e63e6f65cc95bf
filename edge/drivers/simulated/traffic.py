"""The `sim_traffic` driver: one lane and direction of a counter on a Prato road."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from edge.contract import SensorKind
from edge.drivers.registry import DriverConfig, Source, SourceContext, register
from edge.drivers.simulated.config import SimTrafficConfig
from edge.drivers.simulated.source import GridSource, expect_config
from edge.drivers.simulated.wire import traffic_wire
from edge.simulators.anomalies import AnomalyKind, FieldValues, Schedule
from edge.simulators.places import SITES
from edge.simulators.traffic import counter_fields, zero_fields


@register("sim_traffic")
class SimTraffic:
    """A loop counter's interval record: vehicles, heavy, mean speed and loop occupancy."""

    name: ClassVar[str]
    Config: ClassVar[type[DriverConfig]] = SimTrafficConfig
    kind: ClassVar[SensorKind] = SensorKind.TRAFFIC

    @classmethod
    def open(cls, config: DriverConfig, ctx: SourceContext) -> Source:
        cfg = expect_config(config, SimTrafficConfig)
        site = SITES[cfg.site]

        def normal(ts: datetime) -> FieldValues:
            return counter_fields(
                ctx.seed,
                cfg.id,
                ts,
                site=site,
                direction=cfg.direction,
                peak_vph=cfg.peak_vph,
                interval_s=cfg.interval_s,
            )

        def effect(kind: AnomalyKind, ts: datetime, begin: datetime) -> FieldValues:
            # Only zero reaches here: TrafficAnomaly refuses saturate and halted.
            return zero_fields(cfg.interval_s)

        schedule = Schedule(
            cfg.anomalies, start=ctx.start, interval_s=cfg.interval_s, normal=normal, effect=effect
        )
        grid = GridSource(
            kind=SensorKind.TRAFFIC,
            ctx=ctx,
            sensor=cfg.id,
            interval_s=cfg.interval_s,
            tags={"site": cfg.site, "lane": str(cfg.lane), "direction": cfg.direction},
            fields_at=schedule.fields_at,
        )
        # Through the `$TCR` records a counter cabinet sends, and the real traffic_counter decoder.
        return traffic_wire(grid, ctx, cfg.id)
