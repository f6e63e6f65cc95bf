"""Turning a detector's residual into a calibrated, probability-like anomaly score.

A residual means nothing across sensors (2 km/h on a motorway, 2 cars in a car park, 2 % CPU),
so no residual is scored by its size: it is scored by its *rarity among the same series' own
past residuals*. The tail probability `p` is the fraction of earlier residuals at least as large
(an empirical CDF over a sliding window); past the top `k` of the window the tail is extrapolated
with an exponential fitted by mean excess (peaks over threshold, Pickands-Balkema-de Haan), so
rarities beyond what the window has seen are still told apart.

The score is `-log10(p) / DECADES`, clipped to [0, 1] (as NAB's "log likelihood" does): 0.5
means "as rare as 1 reading in 1,000 of this series", 1.0 "1 in 10^6 or rarer". The same score
means the same rarity on every sensor, so one alert threshold serves them all. Early on, with
few residuals seen, `p` cannot fall below `1/(n+1)`: a new series starts conservative.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections import deque

DECADES = 6.0
MIN_SEEN = 20  # residuals needed before anything scores above 0
MIN_TAIL = 100  # residuals needed before the tail is extrapolated past the window


def score_from_p(p: float) -> float:
    """The anomaly score of a tail probability: 0 for p = 1, 1 for p <= 10^-DECADES."""
    if p >= 1.0:
        return 0.0
    return min(1.0, max(0.0, -math.log10(max(p, 1e-300)) / DECADES))


def p_from_score(score: float) -> float:
    return float(10.0 ** (-score * DECADES))


class TailCalibrator:
    """Tail probability of a residual among the last `window` residuals of one series."""

    __slots__ = ("_order", "_sorted", "min_scale", "window")
    _transient = ("_sorted",)  # kept out of state(): the same residuals, sorted

    def __init__(self, window: int = 2000, *, min_scale: float = 0.0) -> None:
        self.window = window
        # The smallest tail scale: a discrete residual (a run length, a count) has a resolution.
        self.min_scale = min_scale
        self._order: deque[float] = deque()
        self._sorted: list[float] = []

    def __len__(self) -> int:
        return len(self._sorted)

    def pvalue(self, r: float) -> float:
        """P(residual >= r) as estimated from the residuals added so far (not including r)."""
        s = self._sorted
        n = len(s)
        if n < MIN_SEEN or math.isnan(r):
            return 1.0
        at_least = n - bisect_left(s, r)
        k = max(10, n // 20)
        if n >= MIN_TAIL and at_least < k:
            u = s[n - k]
            beta = sum(s[n - k :]) / k - u
            # A tail of identical residuals (a discrete quantity) has no spread of its own: a
            # floor relative to the threshold keeps one step beyond it from looking impossible.
            beta = max(beta, 0.2 * abs(u), self.min_scale, 1e-9)
            return (k / n) * math.exp(-(r - u) / beta)
        return (at_least + 1) / (n + 1)

    def _restored(self) -> None:
        self._sorted = sorted(self._order)

    def discard(self, r: float) -> None:
        """Forget one earlier residual equal to `r` (when it turned out to belong elsewhere)."""
        i = bisect_left(self._sorted, r)
        if i < len(self._sorted) and self._sorted[i] == r:
            del self._sorted[i]
            self._order.remove(r)

    def add(self, r: float) -> None:
        if math.isnan(r):
            return
        self._order.append(r)
        insort(self._sorted, r)
        if len(self._order) > self.window:
            old = self._order.popleft()
            del self._sorted[bisect_left(self._sorted, old)]
