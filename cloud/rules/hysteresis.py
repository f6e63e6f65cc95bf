"""Per-series hold time and hysteresis: the bookkeeping every rule kind that fires and resolves shares.

A series' condition starts at a reading *beyond* the rule's limit and lasts until the series is
*cleared*: a reading past a separate clear limit (hysteresis), or `clear_readings` of them since
the last reading beyond. The alert fires once the condition has lasted `hold` of event time and
resolves when it ends, so a value hovering at the limit neither flaps nor restarts the hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from edge.contract import Reading

SeriesId = tuple[str, str, str]  # (org, gateway, sensor)
NO_HOLD = timedelta(0)


def series_of(r: Reading) -> SeriesId:
    return (r.org, r.gateway, r.sensor)


@dataclass(frozen=True, slots=True)
class Transition:
    """What a reading changed: the alert fires (since the condition began) or resolves."""

    state: Literal["firing", "resolved"]
    since: datetime


class Hysteresis:
    """Per series: when the condition began, since when its alert fires, the calm readings since."""

    __slots__ = ("beyond_since", "calm", "clear_readings", "firing", "hold")

    def __init__(self, hold: timedelta = NO_HOLD, clear_readings: int = 1) -> None:
        self.hold = hold
        self.clear_readings = clear_readings
        self.beyond_since: dict[SeriesId, datetime] = {}
        self.firing: dict[SeriesId, datetime] = {}  # series -> since
        self.calm: dict[SeriesId, int] = {}  # cleared readings since the last one beyond

    def is_engaged(self, key: SeriesId) -> bool:
        """The series is holding or firing: an ordinary reading may still change it."""
        return key in self.beyond_since or key in self.firing

    def step(
        self,
        key: SeriesId,
        ts: datetime,
        *,
        is_beyond: bool,
        is_cleared: bool,
        since: datetime | None = None,
    ) -> Transition | None:
        """One reading of the series at `ts`. `since` is when the condition began when the rule
        knows it better (a run's first reading, the previous reading of a jump); by default, the
        first reading beyond of this condition."""
        if is_beyond:
            if since is None:
                since = self.beyond_since.setdefault(key, ts)
            if self.clear_readings > 1:
                self.calm.pop(key, None)
            if key not in self.firing and ts - since >= self.hold:
                self.firing[key] = since
                return Transition("firing", since)
            return None
        if is_cleared and (key in self.firing or key in self.beyond_since):
            if self.clear_readings > 1:
                calm = self.calm.get(key, 0) + 1
                if calm < self.clear_readings:
                    self.calm[key] = calm
                    return None
                self.calm.pop(key, None)
            self.beyond_since.pop(key, None)
            if self.firing.pop(key, None) is not None:
                return Transition("resolved", ts)
        return None
