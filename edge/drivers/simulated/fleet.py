"""The `sim_fleet` driver: a bus, waste truck or crew van reporting GNSS fixes along its route."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from edge.contract import SensorKind
from edge.drivers.registry import DriverConfig, Source, SourceContext, register
from edge.drivers.simulated.config import SimFleetConfig
from edge.drivers.simulated.source import GridSource, expect_config
from edge.drivers.simulated.wire import fleet_wire
from edge.simulators.anomalies import AnomalyKind, FieldValues, Schedule
from edge.simulators.fleet import Itinerary
from edge.simulators.places import ROUTES


@register("sim_fleet")
class SimFleet:
    """A vehicle's position, speed over ground and course, every `interval_s`."""

    name: ClassVar[str]
    Config: ClassVar[type[DriverConfig]] = SimFleetConfig
    kind: ClassVar[SensorKind] = SensorKind.FLEET

    @classmethod
    def open(cls, config: DriverConfig, ctx: SourceContext) -> Source:
        cfg = expect_config(config, SimFleetConfig)
        route = ROUTES[cfg.route]
        itinerary = Itinerary(route, cfg.speed_kmh, seed=ctx.seed, sensor=cfg.id)

        def normal(ts: datetime) -> FieldValues:
            return itinerary.fix_at(ts).fields()

        def effect(kind: AnomalyKind, ts: datetime, begin: datetime) -> FieldValues:
            # Only halted reaches here: FleetAnomaly refuses zero and saturate. The vehicle
            # stops where it was at the instant the window opened, between two fixes maybe.
            return itinerary.fix_at(begin).halted().fields()

        schedule = Schedule(
            cfg.anomalies, start=ctx.start, interval_s=cfg.interval_s, normal=normal, effect=effect
        )
        vehicle_type = route.vehicle_type if cfg.vehicle_type is None else cfg.vehicle_type
        tags = {"vehicle_type": vehicle_type, "route": cfg.route}
        grid = GridSource(
            kind=SensorKind.FLEET,
            ctx=ctx,
            sensor=cfg.id,
            interval_s=cfg.interval_s,
            tags=tags,
            fields_at=schedule.fields_at,
        )
        # Through the bytes a GNSS receiver sends, and the real nmea decoder.
        return fleet_wire(grid, ctx, cfg.id, tags)
