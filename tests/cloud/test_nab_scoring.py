"""NAB scoring (cloud.rules.detectors.nab) on hand-built cases, and on the real labelled set: the null
detector scores 0 and the perfect one 100 by construction."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from cloud.rules.detectors.nab import (
    REWARD_LOW_FN,
    STANDARD,
    LabelledSeries,
    load_corpus,
    probation_rows,
    raw_score,
    row_weights,
    scaled_sigmoid,
    score_corpus,
)

REPO = Path(__file__).resolve().parents[2]


def series(n: int, windows: list[tuple[int, int]], name: str = "cat/a.csv") -> LabelledSeries:
    return LabelledSeries(name=name, ts=[float(i) for i in range(n)], values=[0.0] * n, windows=windows)


def detections(n: int, at: list[int]) -> list[float]:
    return [1.0 if i in at else 0.0 for i in range(n)]


def test_the_scaled_sigmoid_has_the_published_values() -> None:
    # NAB whitepaper and nab/sweeper.py: left edge 0.98661, middle 0.84828, right edge 0.
    assert scaled_sigmoid(-1.0) == pytest.approx(0.98661, abs=1e-5)
    assert scaled_sigmoid(-0.5) == pytest.approx(0.84828, abs=1e-5)
    assert scaled_sigmoid(0.0) == 0.0
    assert scaled_sigmoid(1.0) == pytest.approx(-0.98661, abs=1e-5)
    assert scaled_sigmoid(3.0) == -1.0


def test_probation_is_15_percent_of_the_rows_and_at_most_750() -> None:
    assert probation_rows(1000) == 150
    assert probation_rows(4000) == 600
    assert probation_rows(20_000) == 750


def test_the_null_detector_scores_0_and_the_perfect_one_100() -> None:
    corpus = [series(1000, [(400, 499), (800, 899)]), series(2000, [(1000, 1099)], name="cat/b.csv")]
    null = score_corpus(corpus, [[0.0] * 1000, [0.0] * 2000])
    assert null.score == 0.0
    assert (null.tp, null.fn, null.fp) == (0, 3, 0)
    perfect = score_corpus(corpus, [detections(1000, [400, 800]), detections(2000, [1000])])
    assert perfect.score == pytest.approx(100.0)
    assert (perfect.tp, perfect.fn, perfect.fp) == (3, 0, 0)


def test_a_detection_earns_less_the_later_it_comes_in_its_window() -> None:
    one = [series(1000, [(400, 499)])]
    early, middle, late = (score_corpus(one, [detections(1000, [i])]).raw for i in (400, 450, 499))
    assert early == pytest.approx(1.0)  # tp weight at the left edge
    assert middle == pytest.approx(scaled_sigmoid(-0.5) / scaled_sigmoid(-1.0), abs=0.01)
    # At the right edge: NAB's position -1/width, just above 0.
    assert late == pytest.approx(scaled_sigmoid(-1 / 100) / scaled_sigmoid(-1.0))
    assert early > middle > late > 0.0


def test_only_the_earliest_detection_in_a_window_counts() -> None:
    one = [series(1000, [(400, 499)])]
    assert score_corpus(one, [detections(1000, [410, 420, 480])]).raw == pytest.approx(
        score_corpus(one, [detections(1000, [410])]).raw
    )


def test_a_false_positive_costs_the_fp_weight_and_less_right_after_a_window() -> None:
    s = series(1000, [(400, 499)])
    weights = row_weights(1000, s.windows, STANDARD)
    assert weights[300] == (None, -STANDARD.fp)  # before any window: the full cost
    assert weights[500][0] is None
    assert -STANDARD.fp < weights[500][1] < 0.0  # just after the window: a little less
    assert weights[598][1] == pytest.approx(-STANDARD.fp * 0.98661, abs=1e-5)  # a window's width on
    assert weights[999][1] == -STANDARD.fp  # three widths on and further: the full cost


def test_rows_in_the_probation_period_are_not_scored() -> None:
    one = [series(1000, [(400, 499)])]
    assert score_corpus(one, [detections(1000, [10, 100, 149])]).raw == -1.0  # one missed window


def test_one_threshold_is_chosen_for_the_whole_set() -> None:
    # File a is best cut at 0.9 (its 0.5s are false positives), file b needs 0.5 to catch its
    # window: the one threshold is the one whose total is best, 0.5 here (+1 beats 2 x 0.11).
    a, b = series(1000, [(400, 499)]), series(1000, [(400, 499)], name="cat/b.csv")
    scores_a = [0.0] * 1000
    scores_a[400] = 0.9
    scores_a[200] = scores_a[300] = 0.5
    scores_b = [0.0] * 1000
    scores_b[420] = 0.5
    result = score_corpus([a, b], [scores_a, scores_b])
    assert result.threshold == 0.5
    assert result.tp == 2
    assert result.fp == 2
    assert result.raw == pytest.approx(
        raw_score(a, scores_a, 0.5, STANDARD) + raw_score(b, scores_b, 0.5, STANDARD)
    )


def test_the_profile_weights_change_the_cost_of_a_miss() -> None:
    one = [series(1000, [(400, 499)])]
    assert score_corpus(one, [[0.0] * 1000], REWARD_LOW_FN).raw == -2.0


def test_scores_are_given_per_category_with_their_own_null_and_perfect() -> None:
    corpus = [series(1000, [(400, 499)], name="x/a.csv"), series(1000, [(400, 499)], name="y/b.csv")]
    result = score_corpus(corpus, [detections(1000, [400]), [0.0] * 1000])
    assert result.per_category == {"x": pytest.approx(100.0), "y": 0.0}
    assert result.score == pytest.approx(50.0)


def labelled_set() -> Path:
    """`shared/anomaly/labelled-dev` beside the checkout (as CI has it) or beside one of its
    parents, or $SITROOM_LABELLED_DEV."""
    env = os.environ.get("SITROOM_LABELLED_DEV")
    if env:
        return Path(env)
    for parent in REPO.parents:
        candidate = parent / "shared" / "anomaly" / "labelled-dev"
        if (candidate / "windows.json").is_file():
            return candidate
    pytest.fail("no ../shared/anomaly/labelled-dev beside the checkout: set SITROOM_LABELLED_DEV")


def test_on_the_labelled_set_the_null_detector_scores_0_and_the_perfect_one_100() -> None:
    corpus = load_corpus(labelled_set())
    assert len(corpus) == 14
    assert sum(len(s.windows) for s in corpus) == 33
    assert all(s.windows[0][0] >= probation_rows(len(s.ts)) for s in corpus)  # as NAB asserts
    null = score_corpus(corpus, [[0.0] * len(s.ts) for s in corpus])
    assert null.score == 0.0
    perfect = score_corpus(corpus, [detections(len(s.ts), [w[0] for w in s.windows]) for s in corpus])
    assert perfect.score == pytest.approx(100.0)
    assert perfect.per_category == {
        "realKnownCause": pytest.approx(100.0),
        "realTraffic": pytest.approx(100.0),
    }
    assert not math.isinf(perfect.threshold)
