"""The built-in detectors: level, robust z-score, seasonal, flatline and their ensemble.

Every detector is streaming: `step(ts, value)` returns the score of `value` judged only on the
rows before it, then learns it. Every score is a calibrated tail probability turned into [0, 1]
by `calibration.score_from_p`, so one threshold means one rarity on every series.
"""

from __future__ import annotations

import math
from collections import deque
from datetime import UTC, datetime

import numpy as np

from cloud.rules.detectors.calibration import TailCalibrator, score_from_p
from cloud.rules.detectors.registry import Detector, register

LEVEL_WINDOW = 5  # readings in the short-term level (a median: one spike does not move it)
SLOT_HISTORY = 5  # past values kept per seasonal slot (the same time on the last 5 days/weeks)
ERROR_ALPHA = 0.02  # smoothing of each model's absolute error when choosing the best model
MIN_ERRORS = 50  # a seasonal model competes once it has predicted this many readings
RARE_P = 1e-3  # readings this rare do not count in choosing the best model...
MAX_RARE_RUN = 288  # ...unless they go on this long (a day of 5-minute readings): a new normal


def _median(values: deque[float] | list[float]) -> float:
    s = sorted(values)
    n = len(s)
    mid = n // 2
    return s[mid] if n % 2 else (s[mid - 1] + s[mid]) / 2.0


@register("level")
class LevelDetector(Detector):
    """Distance from the median of the last few readings: spikes, drops and level shifts."""

    def __init__(self) -> None:
        self.recent: deque[float] = deque(maxlen=LEVEL_WINDOW)
        self.calibrator = TailCalibrator()

    def pvalue(self, ts: float, value: float) -> float:
        residual = math.nan if len(self.recent) < 2 else abs(value - _median(self.recent))
        p = self.calibrator.pvalue(residual)
        self.calibrator.add(residual)
        self.recent.append(value)
        return p


@register("robust-zscore")
class RobustZScoreDetector(Detector):
    """|value - median| / MAD over the last 30 readings: adapts to each stretch's own spread."""

    WINDOW = 30

    def __init__(self) -> None:
        self.recent: deque[float] = deque(maxlen=self.WINDOW)
        self.calibrator = TailCalibrator()
        self.long_scale = 0.0

    def pvalue(self, ts: float, value: float) -> float:
        z = math.nan
        if len(self.recent) >= 5:
            med = _median(self.recent)
            mad = 1.4826 * _median([abs(v - med) for v in self.recent])
            self.long_scale += 0.01 * (mad - self.long_scale)
            # A MAD of 0 (a stuck or constant stretch) would make the first change after it
            # infinitely surprising: floor it by the series' long-run spread (or its level).
            scale = max(mad, 0.25 * self.long_scale, 1e-6 * (abs(med) + 1.0))
            z = abs(value - med) / scale
        p = self.calibrator.pvalue(z)
        self.calibrator.add(z)
        self.recent.append(value)
        return p


class _SlotModel:
    """The median, over the last few days (or weeks), of the mean at the same phase of the cycle.

    A slot is at least `min_bucket_s` wide; the readings of one slot in one cycle are averaged
    first, so memory stays bounded (at most period / min_bucket slots) however fast the series
    is sampled, and a slot's history is one value per cycle.
    """

    def __init__(self, period_s: float, min_bucket_s: float) -> None:
        self.period_s = period_s
        self.min_bucket_s = min_bucket_s
        self.bucket_s = 0.0
        self.current: dict[int, tuple[int, float, int]] = {}  # slot -> cycle, sum, count
        self.history: dict[int, deque[float]] = {}  # slot -> means of earlier cycles

    def set_sampling(self, step_s: float) -> None:
        self.bucket_s = min(max(step_s, self.min_bucket_s), 3600.0)

    def predict(self, ts: float) -> float | None:
        if self.bucket_s <= 0:
            return None
        slot = int((ts % self.period_s) // self.bucket_s)
        values = list(self.history.get(slot, ()))
        cur = self.current.get(slot)
        if cur is not None and cur[0] < int(ts // self.period_s):
            values.append(cur[1] / cur[2])  # the last cycle, complete now
        if len(values) < 3:
            return None
        return _median(values[-SLOT_HISTORY:])

    def learn(self, ts: float, value: float) -> None:
        if self.bucket_s <= 0:
            return
        slot = int((ts % self.period_s) // self.bucket_s)
        cycle = int(ts // self.period_s)
        cur = self.current.get(slot)
        if cur is not None and cur[0] == cycle:
            self.current[slot] = (cycle, cur[1] + value, cur[2] + 1)
            return
        if cur is not None:
            self.history.setdefault(slot, deque(maxlen=SLOT_HISTORY)).append(cur[1] / cur[2])
        self.current[slot] = (cycle, value, 1)


class _LagModel:
    """Seasonality in readings rather than clock time: a period found by autocorrelation."""

    CHECK_EVERY = 250
    HISTORY = 4096

    def __init__(self) -> None:
        self.values: deque[float] = deque(maxlen=self.HISTORY)
        self.period = 0
        self.seen = 0

    def predict(self) -> float | None:
        p = self.period
        if p == 0 or len(self.values) < 3 * p:
            return None
        return _median([self.values[-j * p] for j in (1, 2, 3)])

    def learn(self, value: float) -> None:
        self.values.append(value)
        self.seen += 1
        if self.seen % self.CHECK_EVERY == 0 and len(self.values) >= 200:
            self.period = detect_period(np.fromiter(self.values, dtype=float))


def detect_period(x: np.ndarray) -> int:
    """The strongest autocorrelation peak between 4 and n/3 readings, or 0 when none is clear."""
    n = len(x)
    x = x - x.mean()
    var = float(x @ x)
    if var <= 0:
        return 0
    spectrum = np.fft.rfft(x, 2 * n)
    acf = np.fft.irfft(spectrum * np.conj(spectrum))[: n // 3] / var
    best, best_lag = 0.3, 0  # weaker correlation than this is not worth a seasonal model
    for lag in range(4, len(acf) - 1):
        if acf[lag] > best and acf[lag] >= acf[lag - 1] and acf[lag] >= acf[lag + 1]:
            best, best_lag = float(acf[lag]), lag
    return best_lag


@register("seasonal")
class SeasonalDetector(Detector):
    """Residuals against the short-term level and against the best seasonal profile (time of day,
    time of week, or a period found by autocorrelation).

    Each model predicts every reading before seeing it; among the seasonal ones, the one with the
    smallest recent error is trusted, so a daily series is judged against its usual profile (a
    rush-hour peak is not an anomaly, a night-time one is) and a series without seasonality
    against its level alone.
    """

    def __init__(self) -> None:
        self.recent: deque[float] = deque(maxlen=LEVEL_WINDOW)
        self.daily = _SlotModel(86_400.0, min_bucket_s=300.0)  # at most 288 slots
        self.weekly = _SlotModel(7 * 86_400.0, min_bucket_s=1800.0)  # at most 336 slots
        self.lag = _LagModel()
        self.names = ("level", "daily", "weekly", "lag")
        self.errors = dict.fromkeys(self.names, 0.0)
        self.counts = dict.fromkeys(self.names, 0)
        self.calibrators = {name: TailCalibrator() for name in self.names}
        self.last_ts: float | None = None
        self.gaps: deque[float] = deque(maxlen=101)
        self.rare_run = 0
        self.expected: float | None = None  # the baseline the last reading was judged against

    @property
    def baseline(self) -> float | None:
        return self.expected

    def _learn_sampling(self, ts: float) -> None:
        if self.last_ts is not None and ts > self.last_ts:
            self.gaps.append(ts - self.last_ts)
        self.last_ts = ts
        if self.daily.bucket_s == 0 and len(self.gaps) >= 20:
            # Slots as wide as the usual sampling interval, within each model's bounds.
            step = _median(list(self.gaps))
            self.daily.set_sampling(step)
            self.weekly.set_sampling(step)

    def pvalue(self, ts: float, value: float) -> float:
        predictions = {
            "level": _median(self.recent) if len(self.recent) >= 2 else None,
            "daily": self.daily.predict(ts),
            "weekly": self.weekly.predict(ts),
            "lag": self.lag.predict(),
        }
        best: str | None = None
        for name in ("daily", "weekly", "lag"):
            if predictions[name] is None or self.counts[name] < MIN_ERRORS:
                continue
            if best is None or self.errors[name] < self.errors[best]:
                best = name
        candidates = []
        if predictions["level"] is not None:
            candidates.append(self.calibrators["level"].pvalue(abs(value - predictions["level"])))
        if best is not None:
            candidates.append(self.calibrators[best].pvalue(abs(value - predictions[best])))  # type: ignore[operator]
        # What an operator compares the value with: the profile when there is one, else the level.
        self.expected = predictions[best] if best is not None else predictions["level"]
        # Both views are kept, each calibrated on its own residuals: the level sees spikes and
        # sudden shifts, the profile sees slow drifts and departures the level has absorbed.
        # Bonferroni (times the number of views) keeps the combined p-value a valid p-value.
        p = min(1.0, min(candidates) * len(candidates)) if candidates else 1.0
        # A reading the trusted model finds rare does not vote in the choice of model: otherwise
        # a sustained departure (a road closed for a day) makes the short-term level look best
        # after a few readings, and the departure would be explained away as the new normal.
        is_rare = p < RARE_P
        for name, predicted in predictions.items():
            if predicted is None:
                continue
            err = abs(value - predicted)
            n = self.counts[name]
            if not is_rare or self.rare_run >= MAX_RARE_RUN:
                was = self.errors[name]
                self.errors[name] = err if n == 0 else was + ERROR_ALPHA * (err - was)
                self.counts[name] = n + 1
            self.calibrators[name].add(err)
        self.rare_run = self.rare_run + 1 if is_rare else 0
        self.recent.append(value)
        self.daily.learn(ts, value)
        self.weekly.learn(ts, value)
        self.lag.learn(value)
        self._learn_sampling(ts)
        return p


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


@register("ensemble")
class EnsembleDetector(Detector):
    """Seasonal and flatline together; the rarer wins, Bonferroni-corrected (p times the number
    of detectors) so that combining them does not inflate false alarms.

    The robust z-score is left out: after a stuck stretch its spread is ~0 and the recovery looks
    like an anomaly of its own, and the seasonal detector's level model already covers spikes."""

    def __init__(self) -> None:
        self.members: list[Detector] = [SeasonalDetector(), FlatlineDetector()]

    @property
    def baseline(self) -> float | None:
        return self.members[0].baseline

    def pvalue(self, ts: float, value: float) -> float:
        smallest = min(m.pvalue(ts, value) for m in self.members)
        return min(1.0, smallest * len(self.members))


def epoch_s(ts: datetime) -> float:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.timestamp()


def score(detector: Detector, ts: float, value: float) -> float:
    return score_from_p(detector.pvalue(ts, value))
