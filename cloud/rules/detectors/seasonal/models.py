"""The seasonal detector's models: the profile by slot of a day or week, and the period by autocorrelation."""

from __future__ import annotations

from collections import deque

import numpy as np

from cloud.rules.detectors.robust import median

SLOT_HISTORY = 5  # past values kept per seasonal slot (the same time on the last 5 days/weeks)


class SlotModel:
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
        return median(values[-SLOT_HISTORY:])

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


class LagModel:
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
        return median([self.values[-j * p] for j in (1, 2, 3)])

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
