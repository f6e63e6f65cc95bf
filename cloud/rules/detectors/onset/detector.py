"""`onset`: the first reading of each departure from a series' ordinary operations.

Four tests judge each reading on the rows before it (README.md has the sources and figures):
- level: distance from the median of the last 5 readings (spikes, drops, level shifts);
- profile: distance from the series' own time-of-day or time-of-week profile, whichever has
  predicted it better lately (a rush-hour peak is ordinary, a night-time one is not);
- extremes: a value beyond every value of the last ~4,000 readings (p = 2/n: under an
  exchangeable series, the chance that the newest of n values is the highest or the lowest);
- runs: a value repeated longer than any ordinary run of this series (a stuck sensor), values
  where the series habitually rests (an empty car park at night) apart.
The residuals are calibrated per series (`tail.QuantileTail`) and the rarest test wins,
Bonferroni-corrected, so the p-value keeps its meaning: 0.5 = as rare as 1 reading in 1,000.

Then episodes: once a reading is rarer than ALARM_P the departure is under way, and the next
readings of it report p = 1 until the series has been calm for CALM_READINGS readings, unless
one is 100 times rarer than the episode so far (an escalation). An anomaly is reported at its
onset instead of as a burst of alarms (the rest period of CAD OSE, the filter of numenta's
anomaly likelihood); `rarity` keeps the unfiltered p-value of the last reading.
"""

# ruff: noqa: PLR1730  (comparisons instead of min() and max() calls: the hot path is ~3 µs)

from __future__ import annotations

import math
from array import array
from typing import ClassVar

from cloud.rules.detectors.registry import Detector, Expectation, register
from cloud.rules.detectors.tail import QuantileTail

DAY_S = 86_400.0
WEEK_S = 7 * DAY_S


@register("onset")
class OnsetDetector(Detector):
    """Level, profile, extremes and runs, calibrated per series; one report per episode."""

    LEVEL_READINGS: ClassVar[int] = 5  # the median of the last 5 readings: one spike does not move it
    SAMPLING_GAPS: ClassVar[int] = 20  # gaps whose median is the series' sampling interval
    DAILY_MIN_SLOT_S: ClassVar[float] = 300.0  # at most 288 time-of-day slots
    WEEKLY_MIN_SLOT_S: ClassVar[float] = 1800.0  # at most 336 time-of-week slots
    MAX_SLOT_S: ClassVar[float] = 3600.0
    SLOT_ALPHA: ClassVar[float] = 0.1  # a slot's mean forgets over ~10 cycles (10 days, 10 weeks)
    MIN_CYCLES: ClassVar[int] = 3  # a slot predicts once it has seen 3 cycles
    MIN_PREDICTIONS: ClassVar[int] = 50  # a profile competes once it has predicted 50 readings
    ERROR_ALPHA: ClassVar[float] = 0.02  # smoothing of each profile's absolute error
    RARE_P: ClassVar[float] = 1e-3  # a reading this rare neither shapes the profile nor votes...
    MAX_RARE_RUN: ClassVar[int] = 288  # ...unless rare readings go on this long: a new normal
    BLOCK: ClassVar[int] = 500  # extremes: the highest and lowest of each block of 500 readings...
    BLOCKS: ClassVar[int] = 8  # ...over the last 8 blocks, plus the current one
    EXTREMES_AFTER: ClassVar[int] = 100  # readings before a new extreme means anything
    HABIT: ClassVar[int] = 6  # runs: shorter runs are never stuck; two runs this long make a habit
    HABITS: ClassVar[int] = 8  # habitual values kept (and twice as many candidates)
    RUNS_AFTER: ClassVar[int] = 50  # completed ordinary runs before a long run means anything
    # Beyond the longest ordinary run, each reading more divides p by at most 2: runs of a
    # slowly varying count (plateaus) are longer-tailed than the geometric law of its mean run.
    GO_ON_MIN: ClassVar[float] = 0.5
    ALARM_P: ClassVar[float] = 3e-3  # an episode starts at a reading this rare
    CALM_P: ClassVar[float] = 0.05  # ...and ends after CALM_READINGS readings above this p
    CALM_READINGS: ClassVar[int] = 20
    ESCALATION: ClassVar[float] = 0.01  # within an episode, a reading 100x rarer is reported
    reports_onsets = True

    __slots__ = (
        "armed",
        "basis",
        "block_hi",
        "block_lo",
        "calm",
        "cause",
        "d_cycle",
        "d_mean",
        "d_seen",
        "d_share",
        "d_slot_s",
        "daily_tail",
        "episode_p",
        "err_d",
        "err_w",
        "expected",
        "gaps",
        "habitual",
        "hi",
        "in_block",
        "last_ts",
        "level_tail",
        "lo",
        "long_runs",
        "n",
        "n_d",
        "n_w",
        "pending",
        "rare_run",
        "rarity",
        "recent",
        "run",
        "run_is_rare",
        "run_max",
        "run_mean",
        "run_pred",
        "run_value",
        "runs_seen",
        "short_max",
        "slot",
        "step_s",
        "unit",
        "w_cycle",
        "w_mean",
        "w_seen",
        "w_share",
        "w_slot_s",
        "weekly_tail",
        "win_hi",
        "win_lo",
    )

    def __init__(self) -> None:
        self.n = 0
        # Sampling: the slots are laid out once the usual interval is known.
        self.last_ts: float | None = None
        self.gaps: list[float] = []
        self.step_s = 0.0
        self.d_slot_s = 0.0
        self.w_slot_s = 0.0
        self.d_share = 1.0
        self.w_share = 1.0
        self.d_mean = array("d")
        self.d_seen = array("B")
        self.d_cycle = array("B")
        self.w_mean = array("d")
        self.w_seen = array("B")
        self.w_cycle = array("B")
        # Level and profile.
        self.recent: list[float] = []
        self.err_d = 0.0
        self.err_w = 0.0
        self.n_d = 0
        self.n_w = 0
        self.level_tail = QuantileTail()
        self.daily_tail = QuantileTail()
        self.weekly_tail = QuantileTail()
        self.rare_run = 0
        self.expected: float | None = None
        # What the last reading was judged against (expectation()): 0 nothing, 1 the level,
        # 2 the time-of-day profile, 3 the time-of-week profile; and the profile's slot.
        self.basis = 0
        self.slot = 0
        self.cause = 0
        # Extremes.
        self.hi = -math.inf  # of the current block
        self.lo = math.inf
        self.in_block = 0
        self.block_hi: list[float] = []
        self.block_lo: list[float] = []
        self.win_hi = -math.inf  # of the blocks and the current block
        self.win_lo = math.inf
        # Runs.
        self.run_value: float | None = None
        self.run = 0
        self.run_is_rare = False
        self.run_max = 1  # the longest ordinary run: of the short ones and the long ones
        self.short_max = 1
        self.long_runs: list[tuple[float, int]] = []  # value, length of the long ordinary runs
        self.run_mean = 1.0
        self.run_pred = 0.0  # the time-of-day profile's value where the run began
        self.runs_seen = 0
        self.habitual: list[float] = []
        self.pending: list[float] = []  # values where one long run ended
        # Episodes.
        self.rarity = 1.0
        self.armed = True
        # The series' resolution: the smallest change seen between consecutive readings (1 for
        # a count); no tail is judged narrower than it.
        self.unit = math.inf
        self.calm = 0
        self.episode_p = 1.0

    @property
    def baseline(self) -> float | None:
        return self.expected

    def pvalue(self, ts: float, value: float) -> float:  # noqa: PLR0912, PLR0915  (one hot path, flat for speed)
        v = value
        if self.step_s == 0.0:
            self._learn_sampling(ts)
        ps = 1.0  # the smallest p-value of the tests...
        cause = 0  # ...when it is the extremes' (3) or the runs' (4), for expectation()
        tests = 1  # ...and how many took part (Bonferroni); runs always do
        run_value = self.run_value
        if run_value is not None and v != run_value:
            # The resolution includes this reading's step: a series' first move after sitting
            # still sets its scale, it is not judged against a tail of zeros.
            step = v - run_value if v > run_value else run_value - v
            if step < self.unit:
                self.unit = step
        floor = self.unit if self.unit < math.inf else 0.0

        # Level: the median of the last readings.
        recent = self.recent
        if len(recent) >= 2:
            s = sorted(recent)
            m = len(s) // 2
            level = s[m] if len(s) % 2 else 0.5 * (s[m - 1] + s[m])
            ps = self.level_tail.observe(v - level if v >= level else level - v, floor)
            tests = 2
            self.expected = level
            self.basis = 1

        # Profile: time of day or time of week, whichever has predicted better lately.
        k_d = -1
        if self.step_s > 0.0:
            k_d = int((ts % DAY_S) // self.d_slot_s)
            k_w = int((ts % WEEK_S) // self.w_slot_s)
            has_d = self.d_seen[k_d] >= self.MIN_CYCLES
            has_w = self.w_seen[k_w] >= self.MIN_CYCLES
            pred_d = self.d_mean[k_d]
            pred_w = self.w_mean[k_w]
            e_d = v - pred_d if v >= pred_d else pred_d - v
            e_w = v - pred_w if v >= pred_w else pred_w - v
            use_d = has_d and self.n_d >= self.MIN_PREDICTIONS
            use_w = has_w and self.n_w >= self.MIN_PREDICTIONS
            # Each profile's residuals are calibrated on their own; the better one is judged.
            if use_w and (not use_d or self.err_w < self.err_d):
                p = self.weekly_tail.observe(e_w, floor)
                if has_d:
                    self.daily_tail.add(e_d)
                self.expected = pred_w
                self.basis = 3
                self.slot = k_w
                tests += 1
                if p < ps:
                    ps = p
            else:
                if has_w:
                    self.weekly_tail.add(e_w)
                if use_d:
                    p = self.daily_tail.observe(e_d, floor)
                    self.expected = pred_d
                    self.basis = 2
                    self.slot = k_d
                    tests += 1
                    if p < ps:
                        ps = p
                elif has_d:
                    self.daily_tail.add(e_d)

        # Extremes: beyond everything of the last blocks.
        n = self.n
        if n >= self.EXTREMES_AFTER:
            tests += 1
            if v > self.win_hi or v < self.win_lo:
                p = 2.0 / (self.BLOCK * len(self.block_hi) + self.in_block)
                if p < ps:
                    ps = p
                    cause = 3

        # Runs: the same value again.
        if v == self.run_value:
            self.run += 1
            k = self.run
            if (
                k >= self.HABIT
                and k > self.run_max
                and self.runs_seen >= self.RUNS_AFTER
                and v not in self.habitual
                # At the highest or the lowest value of the last blocks the series is at a bound
                # (a car park full or empty: its count pinned), not stuck.
                and self.win_lo < v < self.win_hi
                # Where the time-of-day profile knows this stretch of the day and stays flat
                # over the run (night, a plateau), a count that does not move is ordinary.
                and not (k_d >= 0 and has_d and abs(pred_d - self.run_pred) < self.unit)
            ):
                # Beyond the longest ordinary run, each reading more is as likely as the series'
                # own chance of repeating itself (at least GO_ON_MIN).
                go_on = max(1.0 - 1.0 / self.run_mean, self.GO_ON_MIN)
                p = math.exp(math.log(go_on) * (k - self.run_max)) / self.runs_seen
                if p < self.RARE_P:
                    self.run_is_rare = True
                if p < ps:
                    ps = p
                    cause = 4
        else:
            if self.run_value is not None:
                length = self.run
                if length >= self.HABIT or self.run_is_rare or self.run_value in self.habitual:
                    self._run_ended(self.run_value, length)
                else:  # the common case, inline: an ordinary short run
                    if self.runs_seen < 10_000:
                        self.runs_seen += 1
                    if length > self.short_max:
                        self.short_max = length
                        if length > self.run_max:
                            self.run_max = length
                    self.run_mean += 0.01 * (length - self.run_mean)
            self.run_value = v
            self.run = 1
            self.run_is_rare = False
            self.run_pred = pred_d if k_d >= 0 else 0.0

        p = ps * tests
        if p > 1.0:
            p = 1.0
        self.rarity = p
        self.cause = cause

        # Learning.
        is_rare = p < self.RARE_P
        learns = not is_rare or self.rare_run >= self.MAX_RARE_RUN
        self.rare_run = self.rare_run + 1 if is_rare else 0
        if len(recent) >= self.LEVEL_READINGS:
            del recent[0]
        recent.append(v)
        if k_d >= 0 and learns:
            if has_d:
                self.err_d = e_d if self.n_d == 0 else self.err_d + self.ERROR_ALPHA * (e_d - self.err_d)
                self.n_d += 1
            if has_w:
                self.err_w = e_w if self.n_w == 0 else self.err_w + self.ERROR_ALPHA * (e_w - self.err_w)
                self.n_w += 1
            # Each slot: the mean of its readings over its cycles so far, the last ~10 once it
            # has more; a slot holds several readings per cycle when the series is sampled
            # faster than the slot is wide. The cycle of a slot's last reading is kept modulo
            # 256 (a byte): a new cycle is one that differs (a slot silent for exactly 256
            # cycles is missed).
            c = int(ts // DAY_S) & 0xFF
            seen = self.d_seen
            cycles = seen[k_d]
            if cycles == 0 or self.d_cycle[k_d] != c:
                self.d_cycle[k_d] = c
                if cycles < 255:
                    cycles += 1
                    seen[k_d] = cycles
            alpha = (1.0 / cycles if cycles * self.SLOT_ALPHA < 1.0 else self.SLOT_ALPHA) * self.d_share
            self.d_mean[k_d] = pred_d + (alpha if alpha < 1.0 else 1.0) * (v - pred_d)
            c = int(ts // WEEK_S) & 0xFF
            seen = self.w_seen
            cycles = seen[k_w]
            if cycles == 0 or self.w_cycle[k_w] != c:
                self.w_cycle[k_w] = c
                if cycles < 255:
                    cycles += 1
                    seen[k_w] = cycles
            alpha = (1.0 / cycles if cycles * self.SLOT_ALPHA < 1.0 else self.SLOT_ALPHA) * self.w_share
            self.w_mean[k_w] = pred_w + (alpha if alpha < 1.0 else 1.0) * (v - pred_w)
        if v > self.hi:
            self.hi = v
            if v > self.win_hi:
                self.win_hi = v
        if v < self.lo:
            self.lo = v
            if v < self.win_lo:
                self.win_lo = v
        self.in_block += 1
        if self.in_block >= self.BLOCK:
            self._next_block()
        self.n = n + 1

        # Episodes.
        if self.armed:
            if p < self.ALARM_P:
                self.armed = False
                self.calm = 0
                self.episode_p = p
            return p
        if self.episode_p > 1e-6 and p < self.episode_p * self.ESCALATION:
            self.episode_p = p
            self.calm = 0
            return p
        self.calm = self.calm + 1 if p > self.CALM_P else 0
        if self.calm >= self.CALM_READINGS:
            self.armed = True
        return 1.0

    def expectation(self) -> Expectation | None:
        """The band of the last reading: the baseline it was judged against, plus or minus the
        residual that 90 % of this series' residuals against that baseline stay under."""
        if self.cause == 4:
            return Expectation(
                self.run_value or 0.0,
                self.run_value or 0.0,
                "stuck",
                f"the same value {self.run} readings in a row; the longest ordinary run: {self.run_max}",
            )
        if self.cause == 3:
            seen = self.BLOCK * len(self.block_hi) + self.in_block
            return Expectation(
                self.win_lo, self.win_hi, "range", f"every value of the last {seen:,} readings"
            )
        center = self.expected
        if center is None or self.basis == 0:
            return None
        if self.basis == 1:
            q90 = self.level_tail.q90
            history = f"median of the last {len(self.recent)} readings"
            return Expectation(center - q90, center + q90, "recent level", history)
        if self.basis == 2:
            q90, cycles, unit, width = self.daily_tail.q90, self.d_seen[self.slot], "day", self.d_slot_s
            basis = "hour-of-day" if width == 3600.0 else "time-of-day"
        else:
            q90, cycles, unit, width = self.weekly_tail.q90, self.w_seen[self.slot], "week", self.w_slot_s
            basis = "hour-of-week" if width == 3600.0 else "time-of-week"
        history = f"{cycles}{'+' if cycles == 255 else ''} {unit}{'s' if cycles != 1 else ''}"
        return Expectation(center - q90, center + q90, basis, history, slot_s=width)

    def _learn_sampling(self, ts: float) -> None:
        if self.last_ts is not None and ts > self.last_ts:
            self.gaps.append(ts - self.last_ts)
        self.last_ts = ts
        if len(self.gaps) < self.SAMPLING_GAPS:
            return
        gaps = sorted(self.gaps)
        self.step_s = gaps[len(gaps) // 2]
        self.gaps = []
        self.last_ts = None
        # Slots as wide as the sampling interval, within each profile's bounds.
        self.d_slot_s = min(max(self.step_s, self.DAILY_MIN_SLOT_S), self.MAX_SLOT_S)
        self.w_slot_s = min(max(self.step_s, self.WEEKLY_MIN_SLOT_S), self.MAX_SLOT_S)
        slots_d = math.ceil(DAY_S / self.d_slot_s)
        slots_w = math.ceil(WEEK_S / self.w_slot_s)
        self.d_mean = array("d", bytes(8 * slots_d))
        self.d_seen = array("B", bytes(slots_d))
        self.d_cycle = array("B", bytes(slots_d))
        self.w_mean = array("d", bytes(8 * slots_w))
        self.w_seen = array("B", bytes(slots_w))
        self.w_cycle = array("B", bytes(slots_w))
        self.d_share = self.step_s / self.d_slot_s  # the share of a slot one reading is
        self.w_share = self.step_s / self.w_slot_s

    def _next_block(self) -> None:
        self.block_hi.append(self.hi)
        self.block_lo.append(self.lo)
        self.hi = -math.inf
        self.lo = math.inf
        self.in_block = 0
        if len(self.block_hi) > self.BLOCKS:
            del self.block_hi[0]
            del self.block_lo[0]
            self.win_hi = max(self.block_hi)
            self.win_lo = min(self.block_lo)

    def _run_ended(self, value: float, length: int) -> None:
        if value in self.habitual:
            return
        if length >= self.HABIT:
            # One long run at a value may be a fault; the second one makes it a habit, and the
            # first one leaves the ordinary runs (a car park's first empty night must not make
            # a stuck day look ordinary).
            if value in self.pending:
                self.pending.remove(value)
                self.habitual.append(value)
                if len(self.habitual) > self.HABITS:
                    del self.habitual[0]
                self.long_runs = [(v, n) for v, n in self.long_runs if v != value]
                self.run_max = max([self.short_max] + [n for _v, n in self.long_runs])
                return
            self.pending.append(value)
            if len(self.pending) > 2 * self.HABITS:
                del self.pending[0]
        if self.run_is_rare:
            return  # a stuck stretch must not make the next one look ordinary
        self.runs_seen = min(self.runs_seen + 1, 10_000)
        if length >= self.HABIT:
            self.long_runs.append((value, length))
            if len(self.long_runs) > 2 * self.HABITS:
                del self.long_runs[0]
        elif length > self.short_max:
            self.short_max = length
        if length > self.run_max:
            self.run_max = length
        self.run_mean += 0.01 * (length - self.run_mean)
