"""Daily curves of parking occupancy and traffic flow in Prato's local time, and the noise around them."""

from __future__ import annotations

import hashlib
import itertools
import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from statistics import NormalDist
from zoneinfo import ZoneInfo

ROME = ZoneInfo("Europe/Rome")
_STD_NORMAL = NormalDist()

# Italian national public holidays on fixed dates (L. 260/1949 and later amendments); 26 Dec,
# Santo Stefano, is also Prato's patron saint's day. Easter Monday is added by computation.
_FIXED_HOLIDAYS = frozenset(
    {(1, 1), (1, 6), (4, 25), (5, 1), (6, 2), (8, 15), (11, 1), (12, 8), (12, 25), (12, 26)}
)


class DayType(StrEnum):
    WEEKDAY = "weekday"
    SATURDAY = "saturday"
    SUNDAY = "sunday"  # also public holidays: shops, offices and schools are closed alike


def easter_sunday(year: int) -> date:
    """Gregorian Easter (the anonymous Meeus/Jones/Butcher algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    el = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * el) // 451
    month = (h + el - 7 * m + 114) // 31
    day = (h + el - 7 * m + 114) % 31 + 1
    return date(year, month, day)


def is_holiday(day: date) -> bool:
    if (day.month, day.day) in _FIXED_HOLIDAYS:
        return True
    return day == easter_sunday(day.year) + timedelta(days=1)


def day_type(day: date) -> DayType:
    if day.weekday() == 6 or is_holiday(day):
        return DayType.SUNDAY
    if day.weekday() == 5:
        return DayType.SATURDAY
    return DayType.WEEKDAY


def local_time(ts: datetime) -> tuple[DayType, float]:
    """The day type and the hour of day (fractional) of an aware instant, in Prato."""
    local = ts.astimezone(ROME)
    hour = local.hour + local.minute / 60 + (local.second + local.microsecond / 1e6) / 3600
    return day_type(local.date()), hour


@dataclass(frozen=True, slots=True)
class Curve:
    """A piecewise-linear function of the hour of day, given by (hour, value) knots from 0 to 24."""

    knots: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        hours = [h for h, _ in self.knots]
        if hours[0] != 0 or hours[-1] != 24 or hours != sorted(set(hours)):
            raise ValueError(f"knots must be strictly increasing from 0 to 24: {hours}")

    def at(self, hour: float) -> float:
        hour = min(max(hour, 0.0), 24.0)
        for (h0, v0), (h1, v1) in itertools.pairwise(self.knots):
            if hour <= h1:
                return v0 + (v1 - v0) * (hour - h0) / (h1 - h0)
        return self.knots[-1][1]

    def peak(self) -> float:
        return max(v for _, v in self.knots)


@dataclass(frozen=True, slots=True)
class DailyProfile:
    weekday: Curve
    saturday: Curve
    sunday: Curve

    def curve(self, kind: DayType) -> Curve:
        return {DayType.WEEKDAY: self.weekday, DayType.SATURDAY: self.saturday}.get(kind, self.sunday)

    def at(self, ts: datetime) -> float:
        kind, hour = local_time(ts)
        return self.curve(kind).at(hour)


def _curve(*knots: tuple[float, float]) -> Curve:
    return Curve(tuple(knots))


# Fractions of capacity occupied. Each facility follows the curve of who parks there.
PARKING_PROFILES: dict[str, DailyProfile] = {
    # Shoppers and diners: busy late morning and evening, fullest on Saturday evening.
    "centre": DailyProfile(
        weekday=_curve(
            (0, 0.18),
            (6, 0.12),
            (8, 0.25),
            (10, 0.55),
            (12, 0.65),
            (14, 0.55),
            (16, 0.6),
            (18, 0.75),
            (20, 0.8),
            (21.5, 0.7),
            (23, 0.35),
            (24, 0.18),
        ),
        saturday=_curve(
            (0, 0.3),
            (6, 0.15),
            (9, 0.35),
            (11, 0.75),
            (13, 0.8),
            (15, 0.7),
            (17, 0.88),
            (19, 0.93),
            (21, 0.9),
            (23, 0.6),
            (24, 0.3),
        ),
        sunday=_curve(
            (0, 0.3),
            (7, 0.12),
            (10, 0.3),
            (12, 0.5),
            (16, 0.55),
            (18, 0.65),
            (20, 0.6),
            (22, 0.35),
            (24, 0.18),
        ),
    ),
    # Commuters to Florence: a plateau from the 7-8 trains to the 17-18 returns.
    "station": DailyProfile(
        weekday=_curve(
            (0, 0.12),
            (5, 0.1),
            (6, 0.2),
            (7, 0.55),
            (8, 0.85),
            (9, 0.92),
            (16, 0.9),
            (17, 0.8),
            (18, 0.6),
            (19, 0.4),
            (21, 0.2),
            (24, 0.12),
        ),
        saturday=_curve(
            (0, 0.12), (7, 0.12), (9, 0.35), (12, 0.45), (16, 0.4), (19, 0.3), (22, 0.18), (24, 0.12)
        ),
        sunday=_curve((0, 0.12), (8, 0.1), (11, 0.25), (16, 0.28), (20, 0.2), (24, 0.12)),
    ),
    # Staff shifts (7-14-21) under two visiting windows, around 13:00 and 19:00, every day.
    "hospital": DailyProfile(
        weekday=_curve(
            (0, 0.25),
            (6, 0.25),
            (7, 0.5),
            (8, 0.7),
            (10, 0.75),
            (12, 0.8),
            (13, 0.9),
            (14, 0.85),
            (15, 0.7),
            (17, 0.7),
            (18, 0.85),
            (19, 0.88),
            (20, 0.6),
            (21, 0.4),
            (22, 0.3),
            (24, 0.25),
        ),
        saturday=_curve(
            (0, 0.25),
            (7, 0.4),
            (10, 0.55),
            (12, 0.65),
            (13, 0.8),
            (14, 0.7),
            (16, 0.6),
            (18, 0.8),
            (19, 0.82),
            (20, 0.55),
            (22, 0.3),
            (24, 0.25),
        ),
        sunday=_curve(
            (0, 0.25),
            (7, 0.35),
            (10, 0.5),
            (12, 0.65),
            (13, 0.85),
            (14, 0.75),
            (16, 0.6),
            (18, 0.82),
            (19, 0.85),
            (20, 0.55),
            (22, 0.3),
            (24, 0.25),
        ),
    ),
    # Logistics workers: full on weekday working hours, nearly empty on Sunday.
    "workplace": DailyProfile(
        weekday=_curve(
            (0, 0.15),
            (5, 0.15),
            (6, 0.4),
            (7, 0.75),
            (8, 0.9),
            (12, 0.92),
            (13, 0.85),
            (14, 0.9),
            (17, 0.85),
            (18, 0.55),
            (19, 0.3),
            (21, 0.18),
            (24, 0.15),
        ),
        saturday=_curve((0, 0.12), (6, 0.2), (8, 0.45), (12, 0.45), (14, 0.25), (18, 0.15), (24, 0.12)),
        sunday=_curve((0, 0.12), (12, 0.14), (24, 0.12)),
    ),
    # A museum with evening events: afternoons and weekends.
    "culture": DailyProfile(
        weekday=_curve(
            (0, 0.1), (9, 0.12), (11, 0.3), (13, 0.35), (16, 0.4), (18, 0.45), (21, 0.5), (23, 0.2), (24, 0.1)
        ),
        saturday=_curve(
            (0, 0.12), (10, 0.2), (12, 0.45), (16, 0.7), (18, 0.75), (21, 0.65), (23, 0.3), (24, 0.12)
        ),
        sunday=_curve((0, 0.12), (10, 0.2), (12, 0.5), (16, 0.75), (18, 0.65), (20, 0.35), (24, 0.12)),
    ),
}


def _weekday_traffic(morning: float, evening: float) -> Curve:
    """Weekday flow with the morning (7:30-9) and evening (17-19) peaks scaled per direction."""
    return _curve(
        (0, 0.1),
        (2, 0.04),
        (3, 0.03),
        (4, 0.04),
        (5, 0.1),
        (6, 0.3),
        (7, 0.65 * morning),
        (7.5, 0.92 * morning),
        (8.25, 1.0 * morning),
        (9, 0.85 * morning),
        (10, 0.65),
        (12, 0.68),
        (13, 0.75),
        (14, 0.65),
        (16, 0.75),
        (17, 0.92 * evening),
        (18, 1.0 * evening),
        (19, 0.9 * evening),
        (20, 0.6),
        (21, 0.4),
        (22, 0.3),
        (23, 0.18),
        (24, 0.1),
    )


_SATURDAY_TRAFFIC = _curve(
    (0, 0.15),
    (3, 0.05),
    (6, 0.12),
    (8, 0.35),
    (10, 0.65),
    (11.5, 0.78),
    (13, 0.7),
    (15, 0.6),
    (17, 0.72),
    (18.5, 0.8),
    (20, 0.6),
    (22, 0.4),
    (24, 0.2),
)
_SUNDAY_TRAFFIC = _curve(
    (0, 0.2),
    (3, 0.06),
    (7, 0.08),
    (9, 0.2),
    (11, 0.45),
    (13, 0.5),
    (15, 0.4),
    (18, 0.55),
    (20, 0.45),
    (22, 0.25),
    (24, 0.1),
)

# Fractions of a lane's peak hourly flow. Towards the centre the morning peak is the higher
# one (people arrive together, leave spread out), away from it the evening peak.
TRAFFIC_PROFILES: dict[str, DailyProfile] = {
    "both": DailyProfile(_weekday_traffic(1.0, 1.0), _SATURDAY_TRAFFIC, _SUNDAY_TRAFFIC),
    "inbound": DailyProfile(_weekday_traffic(1.0, 0.8), _SATURDAY_TRAFFIC, _SUNDAY_TRAFFIC),
    "outbound": DailyProfile(_weekday_traffic(0.78, 1.0), _SATURDAY_TRAFFIC, _SUNDAY_TRAFFIC),
}


def traffic_profile(direction: str) -> DailyProfile:
    """The curve of a lane's direction: `inbound`/`outbound` are skewed, compass points are not."""
    return TRAFFIC_PROFILES.get(direction, TRAFFIC_PROFILES["both"])


# Noise is hashed, not drawn from a stateful RNG, so a value depends only on what it is about
# (seed, sensor, instant, purpose) and never on how many values were drawn before it.
def unit(seed: int, sensor: str, key: int, salt: str = "") -> float:
    """A uniform number in [0, 1), a pure function of its arguments."""
    digest = hashlib.blake2b(f"{seed}:{sensor}:{key}:{salt}".encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") >> 11) / float(1 << 53)


def normal(seed: int, sensor: str, key: int, salt: str = "") -> float:
    """A standard normal number (Box-Muller over two hashed uniforms)."""
    u1 = 1.0 - unit(seed, sensor, key, f"{salt}:n1")  # in (0, 1], so log() is finite
    u2 = unit(seed, sensor, key, f"{salt}:n2")
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


def smooth(seed: int, sensor: str, t_s: float, period_s: float, salt: str = "") -> float:
    """Value noise in [-1, 1] that drifts over `period_s`: a slow wander, not a per-reading jitter."""
    knot = math.floor(t_s / period_s)
    frac = t_s / period_s - knot
    a = 2.0 * unit(seed, sensor, knot, f"{salt}:smooth") - 1.0
    b = 2.0 * unit(seed, sensor, knot + 1, f"{salt}:smooth") - 1.0
    weight = (1.0 - math.cos(math.pi * frac)) / 2.0
    return a + (b - a) * weight


def poisson(mean: float, u: float) -> int:
    """The Poisson quantile of `u`; for large means the normal approximation, to stay O(1)."""
    if mean <= 0:
        return 0
    if mean > 60:
        u = min(max(u, 1e-12), 1 - 1e-12)  # inv_cdf refuses exactly 0 and 1
        return max(0, round(_STD_NORMAL.inv_cdf(u) * math.sqrt(mean) + mean))
    k, p = 0, math.exp(-mean)
    cdf = p
    while cdf < u and k < 10_000:
        k += 1
        p *= mean / k
        cdf += p
    return k
