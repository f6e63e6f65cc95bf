"""Event time that no one source can drag forward: the watermark of a group of sources.

The engine keeps one per gateway (over its sensors) and one over the gateways. Each source's
clock is its newest event time, carried forward by the wall time since that reading arrived
(event time goes on while a source is quiet); the group's time is the `quorum`-th highest of
those clocks — the time at least two sources (and a quarter of a large group) have reached. A
source stamped ahead (a wrong clock, up to the admission's `max_future_s`; a forged reading)
then moves its own clock only, while the group still notices a silent member, because the
quiet one's clock stops where its last reading left it plus wall time, and the others' go on.
Decision 0016 says why a quorum and not the maximum (one bad clock silences everyone), the
median (a silent half would hide itself) or the minimum (one backlog holds everyone back).
"""

from __future__ import annotations

import heapq
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, TypeVar

K = TypeVar("K")
_ZERO = timedelta(0)


def quorum(n: int) -> int:
    """How many sources must have reached a time for it to be the group's: one alone is trusted
    only when it is alone; otherwise two, and a quarter of the group when it is large."""
    return 1 if n <= 1 else max(2, 1 + n // 4)


@dataclass(slots=True)
class SourceTime:
    ts: datetime  # the newest event time the source sent
    arrived: datetime  # wall time when that reading arrived


def group_time(sources: Collection[SourceTime], wall: datetime) -> datetime | None:
    """The `quorum`-th highest of the sources' clocks at wall time `wall` (None: no source)."""
    if not sources:
        return None
    clocks = (s.ts + max(wall - s.arrived, _ZERO) for s in sources)
    return heapq.nlargest(quorum(len(sources)), clocks)[-1]


class Watermark(Generic[K]):
    """The event time of a group of sources that no single source can drag forward."""

    __slots__ = ("sources",)

    def __init__(self) -> None:
        self.sources: dict[K, SourceTime] = {}

    def see(self, source: K, ts: datetime, arrived: datetime) -> None:
        """A reading of `source` at event time `ts` arrived at wall time `arrived`; a late one
        (older than the source's newest) leaves its clock alone."""
        seen = self.sources.get(source)
        if seen is None:
            self.sources[source] = SourceTime(ts, arrived)
        elif ts > seen.ts:
            seen.ts, seen.arrived = ts, arrived

    def newest(self, source: K) -> datetime | None:
        seen = self.sources.get(source)
        return None if seen is None else seen.ts

    def at(self, wall: datetime) -> datetime | None:
        """The group's event time at wall time `wall`; None before any source was seen."""
        return group_time(self.sources.values(), wall)

    def __len__(self) -> int:
        return len(self.sources)
