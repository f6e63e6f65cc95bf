"""The source behind every simulated driver: readings on an epoch-aligned grid, pure in time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from edge.contract import Reading, SensorKind
from edge.drivers.registry import DriverConfig, SourceContext
from edge.simulators.anomalies import FieldValues

# A poll after a long pause (a laptop waking up, a replay from last week) returns at most this
# many instants; the rest follow on the next polls, so nothing is dropped and no batch explodes.
MAX_INSTANTS_PER_POLL = 10_000

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)

C = TypeVar("C", bound=DriverConfig)


def expect_config(config: DriverConfig, cls: type[C]) -> C:
    """The registry hands drivers the base type; anything else is a wiring bug, said loudly."""
    if not isinstance(config, cls):
        raise TypeError(f"{cls.__name__} expected, got {type(config).__name__}")
    return config


def _epoch_us(ts: datetime, name: str) -> int:
    if ts.tzinfo is None:
        raise ValueError(f"{name}: {ts.isoformat()} must be timezone-aware")
    return (ts - _EPOCH) // _US


class GridSource:
    """Reports at every multiple of `interval_s` since the Unix epoch, from the first at or
    after `ctx.start`; `poll(now)` returns each instant up to `now` exactly once, in order."""

    def __init__(
        self,
        *,
        kind: SensorKind,
        ctx: SourceContext,
        sensor: str,
        interval_s: int,
        tags: dict[str, str],
        fields_at: Callable[[datetime], FieldValues | None],
    ) -> None:
        self.kind = kind
        self.ctx = ctx
        self.sensor = sensor
        self.interval_s = interval_s
        self.tags = tags
        self._fields_at = fields_at
        self._step_us = interval_s * 1_000_000
        self._next = -(-_epoch_us(ctx.start, "start") // self._step_us)  # ceiling division
        self.is_closed = False

    def poll(self, now: datetime) -> list[Reading]:
        if self.is_closed:
            return []
        last = _epoch_us(now, "now") // self._step_us
        stop = min(last + 1, self._next + MAX_INSTANTS_PER_POLL)
        out: list[Reading] = []
        for k in range(self._next, stop):
            ts = _EPOCH + timedelta(seconds=k * self.interval_s)
            fields = self._fields_at(ts)
            if fields is None:
                continue
            out.append(
                Reading(
                    kind=self.kind,
                    org=self.ctx.org,
                    gateway=self.ctx.gateway,
                    sensor=self.sensor,
                    ts=ts,
                    fields=fields,
                    tags=self.tags,
                )
            )
        self._next = max(self._next, stop)
        return out

    def close(self) -> None:
        self.is_closed = True
