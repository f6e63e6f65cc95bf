"""`QuantileTail`: the tail probability of a residual from five floats of state.

`calibration.TailCalibrator` keeps the last 2,000 residuals of a series (tens of kB); this keeps
two upper quantiles tracked by stochastic approximation (Robbins-Monro: each residual nudges an
estimate up by `1 - tau` or down by `tau` steps, so it settles where a fraction `tau` lies above)
and the mean excess over the higher one (peaks over threshold, as `TailCalibrator` extrapolates):

    p(r) = 0.1 ** (r / q90)                          below the 90th percentile
         = 0.1 * 0.1 ** ((r - q90) / (q99 - q90))    between the 90th and the 99th
         = 0.01 * exp(-(r - q99) / mean_excess)      beyond the 99th (exponential tail)

Only the tail is meant to be accurate: below the 90th percentile p only has to stay large. Steps
are proportional to the spread (q99 - q90), so the estimate adapts at the same pace at every
scale; their size sets the memory (about 1 / RATE residuals for q90, ten times shorter for q99).
"""

from __future__ import annotations

import math

WARM_UP = 30  # residuals averaged before the quantiles are tracked; p = 1 until then
RATE = 0.005  # the q90 step, in units of the spread (q99 - q90)
Q99_SPEED = 10.0  # q99 moves this many times faster (it sees 10 times fewer exceedances)
EXCESS_ALPHA = 0.02  # smoothing of the mean excess over q99
WINSOR = math.log(100.0)  # an excess counts at most as much as the one of p = 1e-4
LN_10 = math.log(10.0)


class QuantileTail:
    """P(residual >= r) for one series, learnt online from the residuals added so far."""

    __slots__ = ("excess", "mean", "n", "q90", "q99")

    def __init__(self) -> None:
        self.n = 0
        self.mean = 0.0  # of the warm-up residuals; afterwards the scale of last resort
        self.q90 = 0.0
        self.q99 = 0.0
        self.excess = 0.0

    def pvalue(self, r: float) -> float:
        """The tail probability of `r` (not yet added); 1.0 while warming up or for NaN."""
        if self.n < WARM_UP or r != r:  # noqa: PLR0124  (NaN is the one value not equal to itself)
            return 1.0
        q90 = self.q90
        if r <= q90:
            return math.exp(-LN_10 * r / q90) if q90 > 0.0 else 1.0
        q99 = self.q99
        if r <= q99:
            return 0.1 * math.exp(-LN_10 * (r - q90) / (q99 - q90))
        excess = self.excess
        if excess <= 0.0:
            excess = (q99 - q90) / LN_10 + 1e-12
        return 0.01 * math.exp(-(r - q99) / excess)

    def add(self, r: float) -> None:
        if r != r:  # noqa: PLR0124
            return
        n = self.n = self.n + 1
        if n <= WARM_UP:
            # Until the quantiles can be tracked: those of an exponential with the running mean.
            self.mean += (r - self.mean) / n
            self.q90 = LN_10 * self.mean
            self.q99 = 2.0 * self.q90
            self.excess = self.mean
            return
        q90 = self.q90
        q99 = self.q99
        spread = q99 - q90
        if spread <= 0.0:
            spread = self.mean if self.mean > 0.0 else 1e-12
        step = RATE * spread
        q90 = q90 + 0.9 * step if r > q90 else q90 - 0.1 * step
        step *= Q99_SPEED
        if r > q99:
            # Winsorised at the excess of p = 1e-4: an anomaly counts as merely rare, so that
            # one does not widen the tail until the next one looks ordinary.
            excess = self.excess
            over = r - q99
            if excess > 0.0 and over > WINSOR * excess:
                over = WINSOR * excess
            self.excess = excess + EXCESS_ALPHA * (over - excess)
            q99 += 0.99 * step
        else:
            q99 -= 0.01 * step
        self.q90 = q90
        self.q99 = q99 if q99 > q90 else q90

    def observe(self, r: float, floor: float = 0.0) -> float:
        """`pvalue(r)`, then `add(r)`, in one call (the detectors' hot path). With `floor`, the
        series' resolution (a count moves by whole units), no quantile nor excess is taken
        below it when judging: a series that sat still does not make its next step of one unit
        look impossible."""
        n = self.n
        if n < WARM_UP or r != r:  # noqa: PLR0124
            self.add(r)
            return 1.0
        q90 = self.q90
        q99 = self.q99
        excess = self.excess
        spread = q99 - q90
        if q90 >= floor and spread >= floor and excess >= floor:
            j90, j99, jex = q90, q99, excess  # the common case: the tail is wider than a unit
        else:
            j90 = q90 if q90 > floor else floor
            j99 = q99 if q99 > j90 + floor else j90 + floor
            jex = excess if excess > floor else floor
        if r <= j90:
            p = math.exp(-LN_10 * r / j90) if j90 > 0.0 else 1.0
        elif r <= j99:
            p = 0.1 * math.exp(-LN_10 * (r - j90) / (j99 - j90))
        else:
            p = 0.01 * math.exp(-(r - j99) / (jex if jex > 0.0 else (j99 - j90) / LN_10 + 1e-12))
        # add(r), as above
        self.n = n + 1
        if spread <= 0.0:
            spread = self.mean if self.mean > 0.0 else 1e-12
        step = RATE * spread
        q90 = q90 + 0.9 * step if r > q90 else q90 - 0.1 * step
        step *= Q99_SPEED
        if r > q99:
            over = r - q99
            if excess > 0.0 and over > WINSOR * excess:
                over = WINSOR * excess
            self.excess = excess + EXCESS_ALPHA * (over - excess)
            q99 += 0.99 * step
        else:
            q99 -= 0.01 * step
        self.q90 = q90
        self.q99 = q99 if q99 > q90 else q90
        return p
