"""The `sim_parking` and `sim_parking_spot` drivers: Prato's car parks and on-street bays."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from edge.contract import SensorKind
from edge.drivers.registry import DriverConfig, Source, SourceContext, register
from edge.drivers.simulated.config import SimParkingConfig, SimParkingSpotConfig
from edge.drivers.simulated.source import GridSource, expect_config
from edge.drivers.simulated.wire import spot_wire
from edge.simulators.anomalies import AnomalyKind, FieldValues, Schedule
from edge.simulators.parking import bay_is_occupied, facility_fields, occupancy_fields
from edge.simulators.places import FACILITIES, ZONES


@register("sim_parking")
class SimParking:
    """A facility's gate counter: occupied spaces out of its capacity."""

    name: ClassVar[str]
    Config: ClassVar[type[DriverConfig]] = SimParkingConfig
    kind: ClassVar[SensorKind] = SensorKind.PARKING

    @classmethod
    def open(cls, config: DriverConfig, ctx: SourceContext) -> Source:
        cfg = expect_config(config, SimParkingConfig)
        facility = FACILITIES[cfg.place]
        capacity = cfg.spaces

        def normal(ts: datetime) -> FieldValues:
            return facility_fields(ctx.seed, cfg.id, facility, capacity, ts)

        def effect(kind: AnomalyKind, ts: datetime, begin: datetime) -> FieldValues:
            # Only zero and saturate reach here: ParkingAnomaly refuses halted.
            return occupancy_fields(capacity if kind == "saturate" else 0, capacity)

        schedule = Schedule(
            cfg.anomalies, start=ctx.start, interval_s=cfg.interval_s, normal=normal, effect=effect
        )
        return GridSource(
            kind=SensorKind.PARKING,
            ctx=ctx,
            sensor=cfg.id,
            interval_s=cfg.interval_s,
            tags={"zone": facility.zone},
            fields_at=schedule.fields_at,
        )


@register("sim_parking_spot")
class SimParkingSpot:
    """An in-ground bay sensor: whether a car is on the bay."""

    name: ClassVar[str]
    Config: ClassVar[type[DriverConfig]] = SimParkingSpotConfig
    kind: ClassVar[SensorKind] = SensorKind.PARKING_SPOT

    @classmethod
    def open(cls, config: DriverConfig, ctx: SourceContext) -> Source:
        cfg = expect_config(config, SimParkingSpotConfig)
        zone = ZONES[cfg.zone]

        def normal(ts: datetime) -> FieldValues:
            return {"occupied": bay_is_occupied(ctx.seed, cfg.id, zone, ts)}

        def effect(kind: AnomalyKind, ts: datetime, begin: datetime) -> FieldValues:
            return {"occupied": kind == "saturate"}

        schedule = Schedule(
            cfg.anomalies, start=ctx.start, interval_s=cfg.interval_s, normal=normal, effect=effect
        )
        tags = {"zone": cfg.zone, "street": cfg.street}
        grid = GridSource(
            kind=SensorKind.PARKING_SPOT,
            ctx=ctx,
            sensor=cfg.id,
            interval_s=cfg.interval_s,
            tags=tags,
            fields_at=schedule.fields_at,
        )
        # Through Bosch parking lot sensor uplinks (ChirpStack v4 events) and the real decoder.
        return spot_wire(grid, ctx, cfg.id, tags)
