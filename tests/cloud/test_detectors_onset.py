"""The onset detector (cloud/rules/detectors/onset) and its calibrator (cloud/rules/detectors/tail.py)."""

from __future__ import annotations

import ast
import inspect
import math
import random
import textwrap

import pytest

from cloud.rules.detectors import score_from_p, tail
from cloud.rules.detectors.onset import OnsetDetector
from cloud.rules.detectors.onset import detector as onset
from cloud.rules.detectors.tail import QuantileTail

T0 = 1_700_006_400.0  # 2023-11-15 00:00 UTC, a Wednesday
STEP_S = 300.0
PER_DAY = 288


def daily(days: int, seed: int = 1, noise: float = 2.0) -> list[float]:
    """A traffic-like day: quiet nights, a morning and an evening peak."""
    rnd = random.Random(seed)
    out = []
    for i in range(days * PER_DAY):
        hour = (i % PER_DAY) * 24 / PER_DAY
        peaks = 60 * math.exp(-(((hour - 8) / 1.5) ** 2)) + 45 * math.exp(-(((hour - 18) / 2) ** 2))
        out.append(round(20 + peaks + rnd.gauss(0, noise), 1))
    return out


def run(values: list[float]) -> tuple[list[float], list[float]]:
    """Scores and unfiltered rarities of every reading."""
    d = OnsetDetector()
    scores, rarities = [], []
    for i, v in enumerate(values):
        scores.append(score_from_p(d.pvalue(T0 + i * STEP_S, v)))
        rarities.append(d.rarity)
    return scores, rarities


def test_a_sustained_drop_is_reported_at_its_onset_and_not_again_while_it_lasts() -> None:
    values = daily(12)
    start = 11 * PER_DAY + 120  # 10:00 on the twelfth day
    for i in range(start, start + 36):  # three hours at a fifth of the usual
        values[i] = round(values[i] / 5, 1)
    scores, rarities = run(values)
    reports = [i for i in range(start, start + 36) if scores[i] >= 0.5]
    assert reports[0] <= start + 1
    assert len(reports) <= 3  # the onset, and at most two escalations
    assert all(r < 0.05 for r in rarities[start : start + 36])  # still unusual, only not reported again


def test_a_rush_hour_peak_is_ordinary_and_the_same_value_at_night_is_not() -> None:
    values = daily(10)
    night = 9 * PER_DAY + 36  # 03:00 on the last day
    values[night] = values[9 * PER_DAY + 96]  # the 08:00 peak's value
    scores, _ = run(values)
    assert scores[night] >= 0.5
    assert max(scores[9 * PER_DAY + 80 : 9 * PER_DAY + 112]) < 0.5  # the real peak, 06:40-09:20


def test_a_car_park_stuck_by_day_is_reported_and_its_empty_nights_are_not() -> None:
    rnd = random.Random(4)
    values = []
    for i in range(14 * PER_DAY):
        hour = (i % PER_DAY) * 24 / PER_DAY
        values.append(
            0.0
            if hour < 6
            else float(round(200 + 150 * math.sin(math.pi * (hour - 6) / 18) + rnd.gauss(0, 8)))
        )
    start = 13 * PER_DAY + 132  # 11:00 on the last day
    for i in range(start, start + 36):
        values[i] = values[start - 1]
    scores, _ = run(values)
    assert max(scores[start : start + 36]) >= 0.5
    nights = [s for day in range(7, 14) for s in scores[day * PER_DAY : day * PER_DAY + 72]]
    assert max(nights) < 0.5


def test_a_value_beyond_every_value_of_weeks_is_rare() -> None:
    rnd = random.Random(2)
    values = [rnd.uniform(10, 20) for _ in range(3000)]
    values.append(20.5)  # just above the range: ordinary as a residual, new as a value
    _, rarities = run(values)
    assert rarities[-1] <= 4 * 2 / 3000  # four tests, Bonferroni
    assert rarities[-1] < 0.01


def test_ordinary_data_is_seldom_rare_and_more_seldom_reported() -> None:
    scores, rarities = run(daily(28, seed=9))
    judged = rarities[7 * PER_DAY :]
    assert sum(r < 1e-3 for r in judged) / len(judged) < 3e-3
    assert sum(s >= 0.8 for s in scores[7 * PER_DAY :]) <= 2  # the rules' threshold


def test_the_baseline_is_the_profile_once_it_is_learnt() -> None:
    values = daily(10, noise=0.5)
    d = OnsetDetector()
    for i, v in enumerate(values):
        d.pvalue(T0 + i * STEP_S, v)
    # The last reading is 23:55; the profile there is the quiet night plus the evening tail.
    assert d.baseline == pytest.approx(values[-1], abs=3.0)


def test_the_sampling_interval_is_learnt_and_sets_the_slots() -> None:
    d = OnsetDetector()
    for i in range(30):
        d.pvalue(T0 + i * 60.0, 1.0)
    assert d.step_s == 60.0
    assert len(d.d_mean) == 288  # slots of 5 minutes at least
    assert len(d.w_mean) == 336  # slots of 30 minutes at least


def test_a_reading_reads_and_writes_back_every_packed_number_in_its_layout() -> None:
    # pvalues unpacks a series' numbers into locals and packs them back: both follow the layout.
    source = textwrap.dedent(inspect.getsource(OnsetDetector.pvalues))
    unpacked: list[str] = []
    packed: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assign) and "unpack_from" in ast.unparse(node.value):
            (target,) = node.targets
            assert isinstance(target, ast.Tuple)
            unpacked = [ast.unparse(e) for e in target.elts]
        if isinstance(node, ast.Call) and ast.unparse(node.func).endswith("pack_into"):
            packed = [ast.unparse(e) for e in node.args[2:]]
    assert unpacked == packed == list(onset.NAMES)
    assert len(onset.NAMES) == onset.NUMBERS
    named = {name: index for name, index in vars(onset).items() if name.isupper() and isinstance(index, int)}
    for name in (
        "STEP_S",
        "SLOTS_D",
        "UNIT",
        "N",
        "EXPECTED",
        "RUN_VALUE",
        "RARITY",
        "EPISODE_P",
        "RECENT_N",
    ):
        assert unpacked[named[name]] == name.lower()
    assert unpacked[onset.RECENT_0 : onset.RECENT_0 + onset.RECENT] == ["r0", "r1", "r2", "r3", "r4"]
    for prefix, at in (("lt", onset.LEVEL_TAIL), ("dt", onset.DAILY_TAIL), ("wt", onset.WEEKLY_TAIL)):
        assert unpacked[at : at + tail.SIZE] == [
            f"{prefix}_{n}" for n in ("n", "mean", "q90", "q99", "excess")
        ]
    layout = [name for name, index in sorted(named.items(), key=lambda kv: kv[1]) if index < onset.RECENT_0]
    assert [n.lower() for n in layout if n.lower() in unpacked] == unpacked[: onset.RECENT_0]


# QuantileTail


def exponential(n: int, scale: float, seed: int = 0) -> list[float]:
    rnd = random.Random(seed)
    return [rnd.expovariate(1 / scale) for _ in range(n)]


def test_the_tail_of_exponential_residuals_is_estimated_within_a_factor_of_two() -> None:
    tail = QuantileTail()
    for r in exponential(20_000, 1.0):
        tail.add(r)
    for p in (1e-2, 1e-3, 1e-4):
        assert p / 2 < tail.pvalue(-math.log(p)) < 2 * p


def test_the_same_rarity_has_the_same_tail_probability_at_any_scale() -> None:
    small, large = QuantileTail(), QuantileTail()
    for r in exponential(5000, 1.0):
        small.add(r)
        large.add(r * 1e6)
    assert small.pvalue(7.0) == pytest.approx(large.pvalue(7e6), rel=1e-6)


def test_a_burst_of_anomalies_does_not_make_the_next_one_look_ordinary() -> None:
    tail = QuantileTail()
    for r in exponential(5000, 1.0):
        tail.add(r)
    for _ in range(24):  # two hours of five-minute readings a hundred times the usual
        tail.add(100.0)
    assert tail.pvalue(100.0) < 1e-6


def test_a_new_calibrator_says_nothing_and_nan_is_neither_judged_nor_learnt() -> None:
    tail = QuantileTail()
    assert tail.pvalue(1e9) == 1.0
    for r in exponential(100, 1.0):
        tail.add(r)
    tail.add(math.nan)
    assert tail.n == 100
    assert tail.pvalue(math.nan) == 1.0
    before = tail.pvalue(2.0)
    assert tail.observe(2.0) == before  # judged, then learnt
    assert tail.n == 101
