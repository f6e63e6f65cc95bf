"""Synthetic series for the plug-ins' cases files: a level, a daily and a weekly rhythm, seeded noise.

Cases must be short to read yet long enough for a learning detector to warm up (a day or two of
5-minute readings): a `Wave` writes hundreds of readings in one line, the same on every run.
"""

from __future__ import annotations

import math
import random

from pydantic import BaseModel, ConfigDict, Field

DAY_MIN = 1440.0
WEEK_MIN = 7 * DAY_MIN


class Wave(BaseModel):
    """`mean + daily·sin(2π·time of day) + weekly·sin(2π·time of week)`, plus noise uniform in
    ±`noise` (seeded by the case), to 2 decimals; time in minutes, from midnight UTC of a Monday."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mean: float
    daily: float = 0.0
    weekly: float = 0.0
    noise: float = Field(default=0.0, ge=0)

    def at(self, minutes: float, rnd: random.Random) -> float:
        value = self.mean
        if self.daily:
            value += self.daily * math.sin(2 * math.pi * (minutes % DAY_MIN) / DAY_MIN)
        if self.weekly:
            value += self.weekly * math.sin(2 * math.pi * (minutes % WEEK_MIN) / WEEK_MIN)
        if self.noise:
            value += rnd.uniform(-self.noise, self.noise)
        return round(value, 2)


def value_at(spec: float | Wave, minutes: float, rnd: random.Random) -> float:
    """A constant, or the wave's value at `minutes`."""
    return spec.at(minutes, rnd) if isinstance(spec, Wave) else float(spec)
