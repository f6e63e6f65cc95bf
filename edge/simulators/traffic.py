"""Traffic counters on Prato's roads: per-lane interval records as pure functions of time."""

from __future__ import annotations

from datetime import datetime, timedelta

from edge.simulators.anomalies import FieldValues
from edge.simulators.places import TrafficSite
from edge.simulators.profiles import DayType, local_time, normal, poisson, smooth, traffic_profile, unit

# Effective length seen by an inductive loop: a mean vehicle (~4.5 m) plus the loop (~2 m).
# Occupancy = flow x effective length / speed, the textbook loop-detector identity.
EFFECTIVE_LENGTH_M = 6.5

# Heavy goods vehicles over 7.5 t may not circulate outside towns on Sundays and holidays
# (Codice della Strada art. 6 and the yearly ministerial calendar), and fewer run on Saturday.
HEAVY_FACTOR = {DayType.WEEKDAY: 1.0, DayType.SATURDAY: 0.6, DayType.SUNDAY: 0.25}
NIGHT_HEAVY_FACTOR = 1.6  # before 6:00 lorries are a larger share of the few vehicles
MIN_SPEED_KMH = 5.0


def zero_fields(interval_s: int) -> FieldValues:
    """A counter that sees nothing: no vehicle, no occupancy and no mean speed to report."""
    return {"vehicles": 0, "heavy": 0, "interval_s": interval_s, "speed_kmh": 0.0, "occupancy_pct": 0.0}


def counter_fields(
    seed: int,
    sensor: str,
    ts: datetime,
    *,
    site: TrafficSite,
    direction: str,
    peak_vph: int,
    interval_s: int,
) -> FieldValues:
    """The record a counter closes at `ts`, covering the `interval_s` before it."""
    t_s = ts.timestamp()
    ts_ms = round(t_s * 1000)
    middle = ts - timedelta(seconds=interval_s / 2)
    day_kind, hour = local_time(middle)
    # Demand drifts slowly around the curve (an accident elsewhere, rain, a school trip).
    load = traffic_profile(direction).at(middle) * (1.0 + 0.08 * smooth(seed, sensor, t_s, 10_800, "load"))
    vehicles = poisson(peak_vph * load * interval_s / 3600, unit(seed, sensor, ts_ms, "vehicles"))
    share = site.heavy_share * HEAVY_FACTOR[day_kind] * (NIGHT_HEAVY_FACTOR if hour < 6 else 1.0)
    heavy = min(vehicles, poisson(vehicles * share, unit(seed, sensor, ts_ms, "heavy")))
    if vehicles == 0:
        return zero_fields(interval_s)
    # Free-flow speed a little under the limit, falling steeply as the lane nears its peak
    # load (a BPR-like volume-delay curve).
    free_kmh = site.speed_limit_kmh * (0.95 + 0.05 * smooth(seed, sensor, t_s, 86_400, "free"))
    speed_kmh = free_kmh * (1.0 - 0.45 * min(load, 1.2) ** 3) + 1.5 * normal(seed, sensor, ts_ms, "speed")
    speed_kmh = max(speed_kmh, MIN_SPEED_KMH)
    occupied_s = vehicles * EFFECTIVE_LENGTH_M / (speed_kmh / 3.6)
    return {
        "vehicles": vehicles,
        "heavy": heavy,
        "interval_s": interval_s,
        "speed_kmh": round(speed_kmh, 1),
        "occupancy_pct": round(min(100.0, 100.0 * occupied_s / interval_s), 1),
    }
