"""Simulation clocks. An accelerated clock replays the recent past and never runs ahead of now.

`--speed 60` plays an hour a minute. Timestamps in the future would be rejected by ingest (and
would lie on a dashboard), so the accelerated clock starts far enough in the past to end a run
of `horizon_s` real seconds at the present; once it catches up it follows the wall clock.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class WallClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class SimClock:
    def __init__(self, speed: float, start: datetime) -> None:
        if speed < 1:
            raise ValueError(f"speed: {speed} must be >= 1")
        if start.tzinfo is None:
            raise ValueError(f"start: {start} must be timezone-aware")
        self.speed = speed
        self.start = start.astimezone(UTC)
        self._t0 = time.monotonic()

    @classmethod
    def replaying(cls, speed: float, horizon_s: float, *, now: datetime | None = None) -> SimClock:
        """A clock that reaches the present after `horizon_s` real seconds."""
        now = now or datetime.now(UTC)
        return cls(speed, now - timedelta(seconds=horizon_s * (speed - 1)))

    def now(self) -> datetime:
        sim = self.start + timedelta(seconds=(time.monotonic() - self._t0) * self.speed)
        return min(sim, datetime.now(UTC))


class ManualClock:
    """A clock tests move by hand."""

    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> datetime:
        self._now += timedelta(seconds=seconds)
        return self._now
