"""Fleet vehicles driving Prato's routes: a position fix as a pure function of time."""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import datetime

from edge.simulators.anomalies import FieldValues
from edge.simulators.places import LatLon, Route, bearing_deg, distance_m, in_centro_storico
from edge.simulators.profiles import normal, unit

# Inside the walls vehicles crawl: ZTL gates, one-lane streets, pedestrians.
CENTRE_SPEED_FACTOR = 0.5
# Each leg's speed varies by up to this fraction per vehicle (driver, traffic on that road).
LEG_SPEED_SPREAD = 0.1
# GNSS speed over ground is Doppler-derived and noisy by a few percent at city speeds.
GNSS_SPEED_NOISE = 0.02


@dataclass(frozen=True, slots=True)
class Fix:
    lat: float
    lon: float
    speed_kmh: float
    heading_deg: float

    def fields(self) -> FieldValues:
        # 6 decimals of a degree are ~0.1 m, finer than any GNSS fix.
        return {
            "lat": round(self.lat, 6),
            "lon": round(self.lon, 6),
            "speed_kmh": round(self.speed_kmh, 1),
            "heading_deg": round(self.heading_deg, 1) % 360.0,
        }

    def halted(self) -> Fix:
        return Fix(self.lat, self.lon, 0.0, self.heading_deg)


@dataclass(frozen=True, slots=True)
class Leg:
    """A stretch of the cycle: a drive from `a` to `b`, or a stop (a == b, speed 0)."""

    t0_s: float  # seconds into the cycle
    duration_s: float
    a: LatLon
    b: LatLon
    speed_kmh: float
    heading_deg: float


class Itinerary:
    """One vehicle's endless cycle along its route: drive, stop, drive, ..."""

    def __init__(self, route: Route, speed_kmh: float, *, seed: int, sensor: str) -> None:
        self.route = route
        self._seed = seed
        self._sensor = sensor
        n = len(route.points)
        # A loop visits 0..n-1 and closes to 0; a shuttle goes 0..n-1 and back down to 1.
        visits = list(range(n)) if route.is_loop else [*range(n), *range(n - 2, 0, -1)]
        moves = [(visits[k], visits[(k + 1) % len(visits)]) for k in range(len(visits))]
        headings = [bearing_deg(route.points[i], route.points[j]) for i, j in moves]
        legs: list[Leg] = []
        t = 0.0
        for k, (i, j) in enumerate(moves):
            here, there = route.points[i], route.points[j]
            if route.dwell_s[i] > 0:
                # Stopped, the vehicle still faces the way it arrived.
                legs.append(Leg(t, route.dwell_s[i], here, here, 0.0, headings[k - 1]))
                t += route.dwell_s[i]
            middle = ((here[0] + there[0]) / 2, (here[1] + there[1]) / 2)
            factor = CENTRE_SPEED_FACTOR if in_centro_storico(middle) else 1.0
            spread = 1.0 + LEG_SPEED_SPREAD * (2.0 * unit(seed, sensor, k, "leg") - 1.0)
            leg_kmh = speed_kmh * factor * spread
            duration_s = distance_m(here, there) / (leg_kmh / 3.6)
            legs.append(Leg(t, duration_s, here, there, leg_kmh, headings[k]))
            t += duration_s
        self.legs = tuple(legs)
        self.cycle_s = t
        self._starts = [leg.t0_s for leg in legs]
        # Vehicles on the same route are spread along it rather than driving in convoy.
        self._offset_s = unit(seed, sensor, 0, "phase") * self.cycle_s

    def fix_at(self, ts: datetime) -> Fix:
        """Where the vehicle is at `ts`, the speed it reports and the way it faces."""
        t_s = ts.timestamp()
        phase = (t_s + self._offset_s) % self.cycle_s
        leg = self.legs[bisect.bisect_right(self._starts, phase) - 1]
        if leg.speed_kmh == 0.0:
            return Fix(leg.a[0], leg.a[1], 0.0, leg.heading_deg)
        f = min((phase - leg.t0_s) / leg.duration_s, 1.0)
        # Linear in lat/lon: over a leg of a few hundred metres the error is millimetres.
        lat = leg.a[0] + f * (leg.b[0] - leg.a[0])
        lon = leg.a[1] + f * (leg.b[1] - leg.a[1])
        noise = 1.0 + GNSS_SPEED_NOISE * normal(self._seed, self._sensor, round(t_s * 1000), "gnss")
        return Fix(lat, lon, max(leg.speed_kmh * noise, 0.0), leg.heading_deg)
