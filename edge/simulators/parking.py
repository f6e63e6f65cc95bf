"""Parking in Prato: facility occupancy counts and on-street bay states, as pure functions of time."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from edge.simulators.anomalies import FieldValues
from edge.simulators.places import ParkingFacility, Zone
from edge.simulators.profiles import PARKING_PROFILES, normal, smooth, unit

# A facility is never quite empty (residents, staff, long stays) nor, on its own, quite full
# (drivers give up on a car park showing 95 %): a reading at 100 % is the `saturate` fault.
MIN_OCCUPANCY = 0.10
MAX_OCCUPANCY = 0.95

# A bay keeps its state for slots of this length: a car stays for a quarter of an hour or more,
# so the sensor must not flip every minute.
BAY_SLOT_S = 900


def occupancy_fields(occupied: int, capacity: int) -> FieldValues:
    return {
        "occupied": occupied,
        "capacity": capacity,
        "occupancy_pct": round(100.0 * occupied / capacity, 1),
    }


def facility_fields(
    seed: int, sensor: str, facility: ParkingFacility, capacity: int, ts: datetime
) -> FieldValues:
    """What the facility's gate counter reads at `ts`."""
    t_s = ts.timestamp()
    ts_ms = round(t_s * 1000)
    base = PARKING_PROFILES[facility.profile].at(ts)
    # Some days are busier than others (weather, markets, events), and within a day the
    # crowd drifts around the curve over an hour or two; cars in and out between two
    # counts add a small jitter on top.
    day = 0.05 * smooth(seed, sensor, t_s, 86_400, "day")
    drift = 0.05 * smooth(seed, sensor, t_s, 5_400, "drift")
    jitter = 0.01 * normal(seed, sensor, ts_ms, "jitter")
    fraction = min(max(base + day + drift + jitter, MIN_OCCUPANCY), MAX_OCCUPANCY)
    occupied = min(capacity, round(fraction * capacity))
    return occupancy_fields(occupied, capacity)


def bay_is_occupied(seed: int, sensor: str, zone: Zone, ts: datetime) -> bool:
    """Whether an on-street bay in `zone` holds a car at `ts`."""
    # Slots are shifted per bay so that a street's bays do not all change state together.
    phase_s = unit(seed, sensor, 0, "bay-phase") * BAY_SLOT_S
    slot = math.floor((ts.timestamp() + phase_s) / BAY_SLOT_S)
    middle = datetime.fromtimestamp(slot * BAY_SLOT_S - phase_s + BAY_SLOT_S / 2, UTC)
    # On-street demand follows its district's curve: a bay is taken as often as the zone is full.
    probability = PARKING_PROFILES[zone.profile].at(middle)
    return unit(seed, sensor, slot, "bay") < probability
