"""The `flatline` detector: a run of identical values longer than this series' runs usually are."""

from __future__ import annotations

from collections import deque

from cloud.rules.detectors.calibration import TailCalibrator
from cloud.rules.detectors.registry import Detector, register
from cloud.rules.detectors.robust import RARE_P


@register("flatline")
class FlatlineDetector(Detector):
    """A stuck sensor: a run of identical values longer than this series' runs usually are.

    Values at which the series habitually rests (an empty car park at night, a counter at zero,
    a reading clamped at the sensor's range) are judged apart: once two runs of `HABIT` readings
    or more have *ended* at a value, later runs there are compared with such habitual runs, and
    long nightly runs at the floor do not make a stuck daytime value look ordinary.
    """

    HABIT = 6

    def __init__(self) -> None:
        self.previous: float | None = None
        self.run = 0
        self.habitual: set[float] = set()  # values where long runs are a habit
        self.pending: dict[float, list[int]] = {}  # value -> its first long run (readings)
        self.recent_rare: deque[bool] = deque(maxlen=1000)
        self.rare_count = 0
        self.inner_in_run = 0
        # Run lengths are whole readings: each reading more divides p by e at least.
        self.calibrators = {
            "habitual": TailCalibrator(window=5000, min_scale=1.0),
            "inner": TailCalibrator(window=5000, min_scale=1.0),
        }

    def pvalue(self, ts: float, value: float) -> float:
        if value == self.previous:
            self.run += 1
        else:
            if self.previous is not None and self.run >= self.HABIT and self.previous not in self.habitual:
                self._long_run_ended(self.previous)
            self.run = 1
            self.inner_in_run = 0
        self.previous = value
        where = "habitual" if value in self.habitual else "inner"
        calibrator = self.calibrators[where]
        p = calibrator.pvalue(float(self.run)) if self.run > 1 else 1.0
        # A run already rare does not teach the calibrator: one stuck sensor must not make the
        # next one look ordinary (habits are still learnt, from completed runs). Unless rare
        # readings have become common (over 5 % of the last 1,000): then the series has changed
        # its ways, and learning them is the way out of alerting for ever.
        is_rare = p < RARE_P
        if len(self.recent_rare) == self.recent_rare.maxlen:
            self.rare_count -= self.recent_rare[0]  # about to leave the window
        self.recent_rare.append(is_rare)
        self.rare_count += is_rare
        if not is_rare or self.rare_count > 50:
            calibrator.add(float(self.run))
            if where == "inner":
                self.inner_in_run += 1
        return p

    def _long_run_ended(self, value: float) -> None:
        # One long run at a value may be a fault; the second one makes it a habit. Its runs then
        # go over to the habitual ones: left among the ordinary runs they would make every later
        # stuck value look ordinary.
        runs = self.pending.setdefault(value, [])
        runs.append(self.inner_in_run)
        if len(runs) < 2:
            return
        for count in self.pending.pop(value):
            for length in range(1, count + 1):
                self.calibrators["inner"].discard(float(length))
                self.calibrators["habitual"].add(float(length))
        self.habitual.add(value)
