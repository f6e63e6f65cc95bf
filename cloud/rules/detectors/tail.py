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

The five floats are a `Tail` tuple, and `observe` and `add` are functions of it: a detector keeps
its tails among its own packed numbers (`onset`), so that judging a reading touches a few
contiguous cache lines rather than a Python object per float (what a reading costs when
thousands of series take turns: docs/detection.md, "Throughput and memory"). `QuantileTail` is
one tail as an object.
"""

from __future__ import annotations

import math

WARM_UP = 30  # residuals averaged before the quantiles are tracked; p = 1 until then
RATE = 0.005  # the q90 step, in units of the spread (q99 - q90)
Q99_SPEED = 10.0  # q99 moves this many times faster (it sees 10 times fewer exceedances)
EXCESS_ALPHA = 0.02  # smoothing of the mean excess over q99
WINSOR = math.log(100.0)  # an excess counts at most as much as the one of p = 1e-4
LN_10 = math.log(10.0)

# A tail's numbers: residuals added, their mean during the warm-up (afterwards the scale of last
# resort), the two quantiles and the mean excess over q99. Counts are exact as floats.
Tail = tuple[float, float, float, float, float]
N, MEAN, Q90, Q99, EXCESS = range(5)
SIZE = 5
EMPTY: Tail = (0.0, 0.0, 0.0, 0.0, 0.0)


def pvalue(t: Tail, r: float) -> float:
    """The tail probability of `r` (not yet added); 1.0 while warming up or for NaN."""
    n, _mean, q90, q99, excess = t
    if n < WARM_UP or r != r:  # noqa: PLR0124  (NaN is the one value not equal to itself)
        return 1.0
    if r <= q90:
        return math.exp(-LN_10 * r / q90) if q90 > 0.0 else 1.0
    if r <= q99:
        return 0.1 * math.exp(-LN_10 * (r - q90) / (q99 - q90))
    if excess <= 0.0:
        excess = (q99 - q90) / LN_10 + 1e-12
    return 0.01 * math.exp(-(r - q99) / excess)


def add(n: float, mean: float, q90: float, q99: float, excess: float, r: float) -> Tail:
    """The tail after learning residual `r` (NaN is ignored)."""
    if r != r:  # noqa: PLR0124
        return n, mean, q90, q99, excess
    n += 1.0
    if n <= WARM_UP:
        # Until the quantiles can be tracked: those of an exponential with the running mean.
        mean += (r - mean) / n
        q90 = LN_10 * mean
        return n, mean, q90, 2.0 * q90, mean
    spread = q99 - q90
    if spread <= 0.0:
        spread = mean if mean > 0.0 else 1e-12
    step = RATE * spread
    q90 = q90 + 0.9 * step if r > q90 else q90 - 0.1 * step
    step *= Q99_SPEED
    if r > q99:
        # Winsorised at the excess of p = 1e-4: an anomaly counts as merely rare, so that one
        # does not widen the tail until the next one looks ordinary.
        over = r - q99
        if excess > 0.0 and over > WINSOR * excess:
            over = WINSOR * excess
        excess += EXCESS_ALPHA * (over - excess)
        q99 += 0.99 * step
    else:
        q99 -= 0.01 * step
    return n, mean, q90, q99 if q99 > q90 else q90, excess


def observe(
    n: float, mean: float, q90: float, q99: float, excess: float, r: float, floor: float
) -> tuple[float, float, float, float, float, float]:
    """`pvalue(r)`, then `add(r)`, in one call (the detectors' hot path): p and the tail after.
    With `floor`, the series' resolution (a count moves by whole units), no quantile nor excess
    is taken below it when judging: a series that sat still does not make its next step of one
    unit look impossible."""
    if n < WARM_UP or r != r:  # noqa: PLR0124
        return (1.0, *add(n, mean, q90, q99, excess, r))
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
    # add(r), inline: past the warm-up, r not NaN
    if spread <= 0.0:
        spread = mean if mean > 0.0 else 1e-12
    step = RATE * spread
    q90 = q90 + 0.9 * step if r > q90 else q90 - 0.1 * step
    step *= Q99_SPEED
    if r > q99:
        over = r - q99
        if excess > 0.0 and over > WINSOR * excess:
            over = WINSOR * excess
        excess += EXCESS_ALPHA * (over - excess)
        q99 += 0.99 * step
    else:
        q99 -= 0.01 * step
    return p, n + 1.0, mean, q90, q99 if q99 > q90 else q90, excess


class QuantileTail:
    """P(residual >= r) for one series, learnt online from the residuals added so far."""

    __slots__ = ("t",)

    def __init__(self) -> None:
        self.t = EMPTY

    @property
    def n(self) -> int:
        return int(self.t[N])

    @property
    def q90(self) -> float:
        return self.t[Q90]

    def pvalue(self, r: float) -> float:
        return pvalue(self.t, r)

    def add(self, r: float) -> None:
        self.t = add(*self.t, r)

    def observe(self, r: float, floor: float = 0.0) -> float:
        p, *t = observe(*self.t, r, floor)
        self.t = (t[0], t[1], t[2], t[3], t[4])
        return p
