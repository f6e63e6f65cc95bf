"""Faults a simulated sensor can be told to show: which kind, when it starts, how long it lasts.

Kinds (a window runs from `after_min` simulated minutes after the gateway started, for
`for_min` minutes or to the end of the run):

- ``stuck``     every reading repeats the last one before the window (a frozen sensor)
- ``silent``    no reading at all (a dead sensor or a cut link)
- ``zero``      counts read zero: traffic vehicles, heavy and loop occupancy; parking occupied
- ``saturate``  a parking facility reads full, occupied == capacity (a gate counter that
                stopped counting exits); an on-street bay reads occupied
- ``halted``    a fleet vehicle stays where it was when the window opened, at speed 0

Each driver accepts only the kinds that mean something for it, through its own subclass of
`Anomaly`, so a config error points at ``anomalies[i].kind`` and the offending value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import ClassVar, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

AnomalyKind = Literal["stuck", "silent", "zero", "saturate", "halted"]
ANOMALY_KINDS: tuple[AnomalyKind, ...] = get_args(AnomalyKind)

FieldValues = dict[str, float | int | bool]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


class Anomaly(BaseModel):
    """One fault window of one simulated sensor."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Narrowed by each driver's subclass; the base accepts every kind.
    applies_to: ClassVar[tuple[AnomalyKind, ...]] = ANOMALY_KINDS
    subject: ClassVar[str] = "a simulated sensor"

    kind: AnomalyKind
    after_min: float = Field(ge=0, allow_inf_nan=False)
    for_min: float | None = Field(default=None, gt=0, allow_inf_nan=False)

    @field_validator("kind")
    @classmethod
    def _applies(cls, kind: AnomalyKind) -> AnomalyKind:
        if kind not in cls.applies_to:
            raise ValueError(
                f"{kind!r} does not apply to {cls.subject}; use one of: {', '.join(cls.applies_to)}"
            )
        return kind

    def window(self, start: datetime) -> tuple[datetime, datetime | None]:
        """[begin, end) in simulated time; end None means until the run ends."""
        begin = start + timedelta(minutes=self.after_min)
        end = None if self.for_min is None else begin + timedelta(minutes=self.for_min)
        return begin, end


class ParkingAnomaly(Anomaly):
    applies_to = ("stuck", "silent", "zero", "saturate")
    subject = "a parking facility (sim_parking)"


class SpotAnomaly(Anomaly):
    applies_to = ("stuck", "silent", "zero", "saturate")
    subject = "a parking bay (sim_parking_spot)"


class TrafficAnomaly(Anomaly):
    applies_to = ("stuck", "silent", "zero")
    subject = "a traffic counter (sim_traffic)"


class FleetAnomaly(Anomaly):
    applies_to = ("stuck", "silent", "halted")
    subject = "a fleet vehicle (sim_fleet)"


@dataclass(frozen=True, slots=True)
class Window:
    anomaly: Anomaly
    begin: datetime
    end: datetime | None

    def contains(self, ts: datetime) -> bool:
        return self.begin <= ts and (self.end is None or ts < self.end)


# What a kind-specific anomaly (zero, saturate, halted) makes of the reading at `ts`,
# given the instant its window began.
Effect = Callable[[AnomalyKind, datetime, datetime], FieldValues]


class Schedule:
    """The fields a sensor reports at each instant of its grid, anomalies applied.

    Pure in time like the simulators below it: `fields_at(ts)` depends on nothing but `ts`
    and what the schedule was built from, so readings never depend on the polling cadence.
    When windows overlap, the first one listed wins.
    """

    def __init__(
        self,
        anomalies: Sequence[Anomaly],
        *,
        start: datetime,
        interval_s: int,
        normal: Callable[[datetime], FieldValues],
        effect: Effect,
    ) -> None:
        self.windows = tuple(Window(a, *a.window(start)) for a in anomalies)
        self._step_us = interval_s * 1_000_000
        # The first instant of the grid that the sensor reports at.
        self._first_us = -(-((start - _EPOCH) // _US) // self._step_us) * self._step_us
        self._normal = normal
        self._effect = effect

    def active(self, ts: datetime) -> Window | None:
        return next((w for w in self.windows if w.contains(ts)), None)

    def fields_at(self, ts: datetime) -> FieldValues | None:
        """None when the sensor says nothing at `ts`."""
        window = self.active(ts)
        if window is None:
            return self._normal(ts)
        kind = window.anomaly.kind
        if kind == "silent":
            return None
        if kind == "stuck":
            return self._before(window)
        return self._effect(kind, ts, window.begin)

    def _before(self, window: Window) -> FieldValues:
        """The last reading sent before `window` began, which a stuck sensor keeps repeating."""
        begin = window.begin
        while True:
            begin_us = (begin - _EPOCH) // _US
            prev_us = (begin_us - 1) // self._step_us * self._step_us
            if prev_us < self._first_us:
                # Nothing was sent before: the sensor freezes on its first value in the window.
                first_us = -(-((window.begin - _EPOCH) // _US) // self._step_us) * self._step_us
                return self._normal(_EPOCH + timedelta(microseconds=first_us))
            prev = _EPOCH + timedelta(microseconds=prev_us)
            earlier = self.active(prev)
            if earlier is not None and earlier.anomaly.kind == "silent":
                begin = earlier.begin  # nothing was sent then: look before the silence
                continue
            # Ends: every step moves to an instant before an earlier window's begin.
            fields = self.fields_at(prev)
            # Never None here (only silence gives None, and silence was skipped above).
            return self._normal(prev) if fields is None else fields
