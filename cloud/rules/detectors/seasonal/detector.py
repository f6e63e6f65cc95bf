"""The `seasonal` detector: residuals against the short-term level and the best seasonal profile."""

from __future__ import annotations

from collections import deque

from cloud.rules.detectors.calibration import TailCalibrator
from cloud.rules.detectors.registry import Detector, register
from cloud.rules.detectors.robust import LEVEL_WINDOW, RARE_P, median
from cloud.rules.detectors.seasonal.models import LagModel, SlotModel

ERROR_ALPHA = 0.02  # smoothing of each model's absolute error when choosing the best model
MIN_ERRORS = 50  # a seasonal model competes once it has predicted this many readings
# Readings rarer than RARE_P do not count in choosing the best model, unless they go on this
# long (a day of 5-minute readings): a new normal.
MAX_RARE_RUN = 288


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
        self.daily = SlotModel(86_400.0, min_bucket_s=300.0)  # at most 288 slots
        self.weekly = SlotModel(7 * 86_400.0, min_bucket_s=1800.0)  # at most 336 slots
        self.lag = LagModel()
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
            step = median(list(self.gaps))
            self.daily.set_sampling(step)
            self.weekly.set_sampling(step)

    def pvalue(self, ts: float, value: float) -> float:
        predictions = {
            "level": median(self.recent) if len(self.recent) >= 2 else None,
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
