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

# ruff: noqa: PLR1730  (comparisons instead of min() and max() calls: the hot path is ~4 µs)

from __future__ import annotations

import math
import struct
from array import array
from collections.abc import Sequence
from typing import ClassVar, Self

from cloud.rules.detectors import tail
from cloud.rules.detectors.registry import Detector, Expectation, register
from cloud.rules.detectors.tail import add as tail_add
from cloud.rules.detectors.tail import observe as tail_observe

DAY_S = 86_400.0
WEEK_S = 7 * DAY_S
INF = math.inf

# A series' numbers, packed in one array of doubles (`OnsetDetector.s`), the profiles' slot means
# after them. With thousands of series taking turns, a float per Python object is a cache miss
# each time a reading is judged: a reading cost 7.5 µs so, 4.4 µs when one series is judged in
# a loop. Packed, they are a few contiguous cache lines; `pvalue` reads them into locals at once
# and writes them back at once (`_NUMBERS`), in the order listed here (a test checks). Counts are
# exact as doubles.
(
    STEP_S,  # the sampling interval (0 until it is learnt)
    LAST_TS,  # while it is learnt: the previous reading's time (NaN: none)
    D_SLOT_S,  # the width of a time-of-day slot
    W_SLOT_S,  # the width of a time-of-week slot
    D_SHARE,  # the share of a time-of-day slot one reading is
    W_SHARE,
    SLOTS_D,  # time-of-day slots: the time-of-week ones follow them (`s` and `counts`)
    UNIT,  # the series' resolution: the smallest change seen between consecutive readings
    N,  # readings judged
    ERR_D,  # each profile's smoothed absolute error, and the readings it predicted
    ERR_W,
    N_D,
    N_W,
    RARE_RUN,  # rare readings in a row
    EXPECTED,  # what the last reading was judged against (expectation())...
    BASIS,  # ...0 nothing, 1 the level, 2 the time-of-day profile, 3 the time-of-week profile
    SLOT,  # ...and the profile's slot
    CAUSE,  # 3 when the extremes gave the smallest p, 4 when the runs did
    HI,  # extremes: of the current block...
    LO,
    IN_BLOCK,
    WIN_HI,  # ...and of the blocks and the current block
    WIN_LO,
    RUN_VALUE,  # runs: the value of the current run (meaningless before the first reading)
    RUN,  # its length
    RUN_IS_RARE,
    RUN_MAX,  # the longest ordinary run: of the short ones and the long ones
    SHORT_MAX,
    RUN_MEAN,
    RUN_PRED,  # the time-of-day profile's value where the run began
    RUNS_SEEN,
    RARITY,  # episodes: the unfiltered p of the last reading
    ARMED,
    CALM,
    EPISODE_P,
    RECENT_N,  # level: how many of the last readings are kept (at most RECENT)...
    RECENT_0,  # ...and the RECENT slots, the oldest first
) = range(37)
RECENT = 5  # slots for the last readings: LEVEL_READINGS at most
LEVEL_TAIL = RECENT_0 + RECENT  # three tails (tail.py), tail.SIZE numbers each
DAILY_TAIL = LEVEL_TAIL + tail.SIZE
WEEKLY_TAIL = DAILY_TAIL + tail.SIZE
NUMBERS = WEEKLY_TAIL + tail.SIZE  # then the time-of-day slot means, then the time-of-week ones
_NUMBERS = struct.Struct(f"@{NUMBERS}d")  # native doubles, as `array("d")` holds them
# Their names, as `pvalue` calls them and `state()` stores them (a test checks both orders).
NAMES = (
    "step_s", "last_ts", "d_slot_s", "w_slot_s", "d_share", "w_share", "slots_d", "unit", "n",
    "err_d", "err_w", "n_d", "n_w", "rare_run", "expected", "basis", "slot", "cause", "hi", "lo",
    "in_block", "win_hi", "win_lo", "run_value", "run", "run_is_rare", "run_max", "short_max",
    "run_mean", "run_pred", "runs_seen", "rarity", "armed", "calm", "episode_p", "recent_n",
    "r0", "r1", "r2", "r3", "r4",
    "lt_n", "lt_mean", "lt_q90", "lt_q99", "lt_excess", "dt_n", "dt_mean", "dt_q90", "dt_q99", "dt_excess",
    "wt_n", "wt_mean", "wt_q90", "wt_q99", "wt_excess",
)  # fmt: skip


def _fresh_numbers() -> array[float]:
    s = array("d", bytes(8 * NUMBERS))
    s[LAST_TS] = math.nan
    s[D_SHARE] = s[W_SHARE] = 1.0
    s[UNIT] = INF
    s[HI] = s[WIN_HI] = -INF
    s[LO] = s[WIN_LO] = INF
    s[RUN_MAX] = s[SHORT_MAX] = s[RUN_MEAN] = 1.0
    s[RARITY] = s[ARMED] = s[EPISODE_P] = 1.0
    return s


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
    _packed: ClassVar[dict[str, tuple[str, ...]]] = {"s": NAMES}  # state(): each number by its name

    __slots__ = ("block_hi", "block_lo", "counts", "gaps", "habitual", "long_runs", "pending", "s")

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if cls.LEVEL_READINGS > RECENT:
            raise ValueError(f"LEVEL_READINGS: {cls.LEVEL_READINGS} readings do not fit in {RECENT} slots")

    def __init__(self) -> None:
        self.s = _fresh_numbers()
        # Per profile slot, the cycles it has seen and the last one (modulo 256), side by side;
        # laid out with the slot means once the sampling interval is known.
        self.counts = array("B")
        self.gaps: list[float] = []  # sampling intervals, until it is learnt
        # Extremes: the highest and lowest of each past block.
        self.block_hi: list[float] = []
        self.block_lo: list[float] = []
        # Runs.
        self.long_runs: list[tuple[float, float]] = []  # value, length of the long ordinary runs
        self.habitual: list[float] = []
        self.pending: list[float] = []  # values where one long run ended

    @property
    def baseline(self) -> float | None:
        return self.s[EXPECTED] if self.s[BASIS] else None

    @property
    def rarity(self) -> float:
        return self.s[RARITY]

    @property
    def step_s(self) -> float:
        """The series' sampling interval (0 until it is learnt)."""
        return self.s[STEP_S]

    @property
    def d_mean(self) -> list[float]:
        """The time-of-day profile: each slot's mean."""
        slots = int(self.s[SLOTS_D])
        return self.s[NUMBERS : NUMBERS + slots].tolist()

    @property
    def w_mean(self) -> list[float]:
        """The time-of-week profile: each slot's mean."""
        return self.s[NUMBERS + int(self.s[SLOTS_D]) :].tolist()

    def pvalue(self, ts: float, value: float) -> float:
        return self.pvalues((self,), (ts,), (value,))[0]

    @classmethod
    def pvalues(  # noqa: PLR0912, PLR0915  (one hot path, flat for speed)
        cls, detectors: Sequence[Self], ts: Sequence[float], values: Sequence[float]
    ) -> list[float]:
        """Each detector's reading judged in turn, `pvalue` being the one-reading case: the
        parameters are read once per call, and the profile's slots once per timestamp."""
        alarm_p, block, calm_p, calm_readings = cls.ALARM_P, cls.BLOCK, cls.CALM_P, cls.CALM_READINGS
        error_alpha, escalation, extremes_after, go_on_min = (
            cls.ERROR_ALPHA,
            cls.ESCALATION,
            cls.EXTREMES_AFTER,
            cls.GO_ON_MIN,
        )
        habit, level_readings, max_rare_run, min_cycles = (
            cls.HABIT,
            cls.LEVEL_READINGS,
            cls.MAX_RARE_RUN,
            cls.MIN_CYCLES,
        )
        min_predictions, rare_p, runs_after, slot_alpha = (
            cls.MIN_PREDICTIONS,
            cls.RARE_P,
            cls.RUNS_AFTER,
            cls.SLOT_ALPHA,
        )
        at_t = at_d_slot_s = at_w_slot_s = math.nan
        at_k_d = at_k_w = at_c_d = at_c_w = 0
        out: list[float] = []
        for detector, t, v in zip(detectors, ts, values, strict=True):
            s = detector.s
            if s[STEP_S] == 0.0:
                detector._learn_sampling(t)
            (
                step_s, last_ts, d_slot_s, w_slot_s, d_share, w_share, slots_d, unit, n, err_d, err_w,
                n_d, n_w, rare_run, expected, basis, slot, cause, hi, lo, in_block, win_hi, win_lo,
                run_value, run, run_is_rare, run_max, short_max, run_mean, run_pred, runs_seen, rarity,
                armed, calm, episode_p, recent_n, r0, r1, r2, r3, r4,
                lt_n, lt_mean, lt_q90, lt_q99, lt_excess, dt_n, dt_mean, dt_q90, dt_q99, dt_excess,
                wt_n, wt_mean, wt_q90, wt_q99, wt_excess,
            ) = _NUMBERS.unpack_from(s)  # fmt: skip
            ps = 1.0  # the smallest p-value of the tests...
            cause = 0.0  # ...when it is the extremes' (3) or the runs' (4), for expectation()
            tests = 1  # ...and how many took part (Bonferroni); runs always do
            if n and v != run_value:
                # The resolution includes this reading's step: a series' first move after sitting
                # still sets its scale, it is not judged against a tail of zeros.
                step = v - run_value if v > run_value else run_value - v
                if step < unit:
                    unit = step
            floor = unit if unit < INF else 0.0

            # Level: the median of the last readings.
            if recent_n >= 2.0:
                if recent_n == 5.0:
                    ordered = sorted((r0, r1, r2, r3, r4))
                else:
                    ordered = sorted((r0, r1, r2, r3, r4)[: int(recent_n)])
                m = len(ordered) // 2
                level = ordered[m] if len(ordered) % 2 else 0.5 * (ordered[m - 1] + ordered[m])
                ps, lt_n, lt_mean, lt_q90, lt_q99, lt_excess = tail_observe(
                    lt_n, lt_mean, lt_q90, lt_q99, lt_excess, v - level if v >= level else level - v, floor
                )
                tests = 2
                expected = level
                basis = 1.0

            # Profile: time of day or time of week, whichever has predicted better lately.
            k_d = -1
            if step_s > 0.0:
                counts = detector.counts
                if t != at_t or d_slot_s != at_d_slot_s or w_slot_s != at_w_slot_s:
                    # A message's readings share their time and mostly their slot widths: the slots
                    # and cycles are worked out once for them.
                    at_t, at_d_slot_s, at_w_slot_s = t, d_slot_s, w_slot_s
                    at_k_d = int((t % DAY_S) // d_slot_s)
                    at_k_w = int((t % WEEK_S) // w_slot_s)
                    at_c_d = int(t // DAY_S) & 0xFF
                    at_c_w = int(t // WEEK_S) & 0xFF
                k_d = at_k_d
                k_w = at_k_w
                at_w = int(slots_d) + k_w
                has_d = counts[2 * k_d] >= min_cycles
                has_w = counts[2 * at_w] >= min_cycles
                pred_d = s[NUMBERS + k_d]
                pred_w = s[NUMBERS + at_w]
                e_d = v - pred_d if v >= pred_d else pred_d - v
                e_w = v - pred_w if v >= pred_w else pred_w - v
                use_d = has_d and n_d >= min_predictions
                use_w = has_w and n_w >= min_predictions
                # Each profile's residuals are calibrated on their own; the better one is judged.
                if use_w and (not use_d or err_w < err_d):
                    p, wt_n, wt_mean, wt_q90, wt_q99, wt_excess = tail_observe(
                        wt_n, wt_mean, wt_q90, wt_q99, wt_excess, e_w, floor
                    )
                    if has_d:
                        dt_n, dt_mean, dt_q90, dt_q99, dt_excess = tail_add(
                            dt_n, dt_mean, dt_q90, dt_q99, dt_excess, e_d
                        )
                    expected = pred_w
                    basis = 3.0
                    slot = k_w
                    tests += 1
                    if p < ps:
                        ps = p
                else:
                    if has_w:
                        wt_n, wt_mean, wt_q90, wt_q99, wt_excess = tail_add(
                            wt_n, wt_mean, wt_q90, wt_q99, wt_excess, e_w
                        )
                    if use_d:
                        p, dt_n, dt_mean, dt_q90, dt_q99, dt_excess = tail_observe(
                            dt_n, dt_mean, dt_q90, dt_q99, dt_excess, e_d, floor
                        )
                        expected = pred_d
                        basis = 2.0
                        slot = k_d
                        tests += 1
                        if p < ps:
                            ps = p
                    elif has_d:
                        dt_n, dt_mean, dt_q90, dt_q99, dt_excess = tail_add(
                            dt_n, dt_mean, dt_q90, dt_q99, dt_excess, e_d
                        )

            # Extremes: beyond everything of the last blocks.
            if n >= extremes_after:
                tests += 1
                if v > win_hi or v < win_lo:
                    p = 2.0 / (block * len(detector.block_hi) + in_block)
                    if p < ps:
                        ps = p
                        cause = 3.0

            # Runs: the same value again.
            if v == run_value and n:
                run += 1.0
                if (
                    run >= habit
                    and run > run_max
                    and runs_seen >= runs_after
                    and v not in detector.habitual
                    # At the highest or the lowest value of the last blocks the series is at a bound
                    # (a car park full or empty: its count pinned), not stuck.
                    and win_lo < v < win_hi
                    # Where the time-of-day profile knows this stretch of the day and stays flat
                    # over the run (night, a plateau), a count that does not move is ordinary.
                    and not (k_d >= 0 and has_d and abs(pred_d - run_pred) < unit)
                ):
                    # Beyond the longest ordinary run, each reading more is as likely as the series'
                    # own chance of repeating itself (at least GO_ON_MIN).
                    go_on = max(1.0 - 1.0 / run_mean, go_on_min)
                    p = math.exp(math.log(go_on) * (run - run_max)) / runs_seen
                    if p < rare_p:
                        run_is_rare = 1.0
                    if p < ps:
                        ps = p
                        cause = 4.0
            else:
                if n:
                    if run >= habit or run_is_rare or run_value in detector.habitual:
                        runs_seen, short_max, run_max, run_mean = detector._run_ended(
                            run_value, run, run_is_rare, runs_seen, short_max, run_max, run_mean
                        )
                    else:  # the common case, inline: an ordinary short run
                        if runs_seen < 10_000:
                            runs_seen += 1.0
                        if run > short_max:
                            short_max = run
                            if run > run_max:
                                run_max = run
                        run_mean += 0.01 * (run - run_mean)
                run_value = v
                run = 1.0
                run_is_rare = 0.0
                run_pred = pred_d if k_d >= 0 else 0.0

            p = ps * tests
            if p > 1.0:
                p = 1.0
            rarity = p

            # Learning.
            is_rare = p < rare_p
            learns = not is_rare or rare_run >= max_rare_run
            rare_run = rare_run + 1.0 if is_rare else 0.0
            if recent_n == RECENT and level_readings == RECENT:  # the oldest goes
                r0, r1, r2, r3, r4 = r1, r2, r3, r4, v
            else:
                kept = int(recent_n)
                window = [r0, r1, r2, r3, r4][:kept]
                if kept >= level_readings:
                    del window[0]
                window.append(v)
                recent_n = float(len(window))
                r0, r1, r2, r3, r4 = window + [0.0] * (RECENT - len(window))
            if k_d >= 0 and learns:
                if has_d:
                    err_d = e_d if n_d == 0 else err_d + error_alpha * (e_d - err_d)
                    n_d += 1.0
                if has_w:
                    err_w = e_w if n_w == 0 else err_w + error_alpha * (e_w - err_w)
                    n_w += 1.0
                # Each slot: the mean of its readings over its cycles so far, the last ~10 once it
                # has more; a slot holds several readings per cycle when the series is sampled
                # faster than the slot is wide. The cycle of a slot's last reading is kept modulo
                # 256 (a byte): a new cycle is one that differs (a slot silent for exactly 256
                # cycles is missed).
                c = at_c_d
                at = 2 * k_d
                cycles = counts[at]
                if cycles == 0 or counts[at + 1] != c:
                    counts[at + 1] = c
                    if cycles < 255:
                        cycles += 1
                        counts[at] = cycles
                alpha = (1.0 / cycles if cycles * slot_alpha < 1.0 else slot_alpha) * d_share
                s[NUMBERS + k_d] = pred_d + (alpha if alpha < 1.0 else 1.0) * (v - pred_d)
                c = at_c_w
                at = 2 * at_w
                cycles = counts[at]
                if cycles == 0 or counts[at + 1] != c:
                    counts[at + 1] = c
                    if cycles < 255:
                        cycles += 1
                        counts[at] = cycles
                alpha = (1.0 / cycles if cycles * slot_alpha < 1.0 else slot_alpha) * w_share
                s[NUMBERS + at_w] = pred_w + (alpha if alpha < 1.0 else 1.0) * (v - pred_w)
            if v > hi:
                hi = v
                if v > win_hi:
                    win_hi = v
            if v < lo:
                lo = v
                if v < win_lo:
                    win_lo = v
            in_block += 1.0
            if in_block >= block:
                hi, lo, in_block, win_hi, win_lo = detector._next_block(hi, lo, win_hi, win_lo)
            n += 1.0

            # Episodes.
            if armed:
                if p < alarm_p:
                    armed = 0.0
                    calm = 0.0
                    episode_p = p
                reported = p
            elif episode_p > 1e-6 and p < episode_p * escalation:
                episode_p = p
                calm = 0.0
                reported = p
            else:
                calm = calm + 1.0 if p > calm_p else 0.0
                if calm >= calm_readings:
                    armed = 1.0
                reported = 1.0
            _NUMBERS.pack_into(
                s, 0,
                step_s, last_ts, d_slot_s, w_slot_s, d_share, w_share, slots_d, unit, n, err_d, err_w,
                n_d, n_w, rare_run, expected, basis, slot, cause, hi, lo, in_block, win_hi, win_lo,
                run_value, run, run_is_rare, run_max, short_max, run_mean, run_pred, runs_seen, rarity,
                armed, calm, episode_p, recent_n, r0, r1, r2, r3, r4,
                lt_n, lt_mean, lt_q90, lt_q99, lt_excess, dt_n, dt_mean, dt_q90, dt_q99, dt_excess,
                wt_n, wt_mean, wt_q90, wt_q99, wt_excess,
            )  # fmt: skip
            out.append(reported)

        return out

    def expectation(self) -> Expectation | None:
        """The band of the last reading: the baseline it was judged against, plus or minus the
        residual that 90 % of this series' residuals against that baseline stay under."""
        s = self.s
        if s[CAUSE] == 4:
            value = s[RUN_VALUE] or 0.0
            run, longest = int(s[RUN]), int(s[RUN_MAX])
            history = f"the same value {run} readings in a row; the longest ordinary run: {longest}"
            return Expectation(value, value, "stuck", history)
        if s[CAUSE] == 3:
            seen = self.BLOCK * len(self.block_hi) + int(s[IN_BLOCK])
            return Expectation(s[WIN_LO], s[WIN_HI], "range", f"every value of the last {seen:,} readings")
        basis = s[BASIS]
        if not basis:
            return None
        center = s[EXPECTED]
        if basis == 1:
            q90 = s[LEVEL_TAIL + tail.Q90]
            history = f"median of the last {int(s[RECENT_N])} readings"
            return Expectation(center - q90, center + q90, "recent level", history)
        slot = int(s[SLOT])
        if basis == 2:
            q90, cycles, unit, width = s[DAILY_TAIL + tail.Q90], self.counts[2 * slot], "day", s[D_SLOT_S]
            name = "hour-of-day" if width == 3600.0 else "time-of-day"
        else:
            at = int(s[SLOTS_D]) + slot
            q90, cycles, unit, width = s[WEEKLY_TAIL + tail.Q90], self.counts[2 * at], "week", s[W_SLOT_S]
            name = "hour-of-week" if width == 3600.0 else "time-of-week"
        history = f"{cycles}{'+' if cycles == 255 else ''} {unit}{'s' if cycles != 1 else ''}"
        return Expectation(center - q90, center + q90, name, history, slot_s=width)

    def _learn_sampling(self, ts: float) -> None:
        s = self.s
        last_ts = s[LAST_TS]
        if ts > last_ts:  # never while it is NaN
            self.gaps.append(ts - last_ts)
        s[LAST_TS] = ts
        if len(self.gaps) < self.SAMPLING_GAPS:
            return
        gaps = sorted(self.gaps)
        step_s = gaps[len(gaps) // 2]
        self.gaps = []
        s[LAST_TS] = math.nan
        # Slots as wide as the sampling interval, within each profile's bounds.
        d_slot_s = min(max(step_s, self.DAILY_MIN_SLOT_S), self.MAX_SLOT_S)
        w_slot_s = min(max(step_s, self.WEEKLY_MIN_SLOT_S), self.MAX_SLOT_S)
        slots_d = math.ceil(DAY_S / d_slot_s)
        slots_w = math.ceil(WEEK_S / w_slot_s)
        del s[NUMBERS:]
        s.frombytes(bytes(8 * (slots_d + slots_w)))
        self.counts = array("B", bytes(2 * (slots_d + slots_w)))
        s[STEP_S] = step_s
        s[D_SLOT_S] = d_slot_s
        s[W_SLOT_S] = w_slot_s
        s[SLOTS_D] = slots_d
        s[D_SHARE] = step_s / d_slot_s  # the share of a slot one reading is
        s[W_SHARE] = step_s / w_slot_s

    def _next_block(self, hi: float, lo: float, win_hi: float, win_lo: float) -> tuple[float, ...]:
        """A block of readings ends: its extremes join the window's (hi, lo, in_block, win_hi,
        win_lo after)."""
        self.block_hi.append(hi)
        self.block_lo.append(lo)
        if len(self.block_hi) > self.BLOCKS:
            del self.block_hi[0]
            del self.block_lo[0]
            win_hi = max(self.block_hi)
            win_lo = min(self.block_lo)
        return -INF, INF, 0.0, win_hi, win_lo

    def _run_ended(
        self,
        value: float,
        length: float,
        run_is_rare: float,
        runs_seen: float,
        short_max: float,
        run_max: float,
        run_mean: float,
    ) -> tuple[float, float, float, float]:
        """A run that was long, rare or at a habitual value ended: runs_seen, short_max,
        run_max and run_mean after it."""
        if value in self.habitual:
            return runs_seen, short_max, run_max, run_mean
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
                run_max = max([short_max] + [n for _v, n in self.long_runs])
                return runs_seen, short_max, run_max, run_mean
            self.pending.append(value)
            if len(self.pending) > 2 * self.HABITS:
                del self.pending[0]
        if run_is_rare:  # a stuck stretch must not make the next one look ordinary
            return runs_seen, short_max, run_max, run_mean
        runs_seen = min(runs_seen + 1.0, 10_000.0)
        if length >= self.HABIT:
            self.long_runs.append((value, length))
            if len(self.long_runs) > 2 * self.HABITS:
                del self.long_runs[0]
        elif length > short_max:
            short_max = length
        if length > run_max:
            run_max = length
        run_mean += 0.01 * (length - run_mean)
        return runs_seen, short_max, run_max, run_mean
