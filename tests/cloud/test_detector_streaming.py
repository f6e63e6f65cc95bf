"""Every registered detector, by the registry: streaming (a prefix scores as in the whole run),
restartable (its state round-trips through JSON), calibrated scores, its figures in its README.
(tests/cloud/test_detector_registry.py checks each folder's README, sample and cases.)

A detector added to the registry is covered here without a line of test of its own.
"""

from __future__ import annotations

import json
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.rules.detectors import DEFAULT, StateError, folder, get, names, score_from_p

T0 = 1_700_000_000.0  # a Tuesday, 22:13 UTC
STEP_S = 600.0


def city_series(days: int = 14, seed: int = 5) -> list[tuple[float, float]]:
    """Ten-minute readings with a daily profile and noise, and the anomalies the detectors
    look for: a spike, a stuck stretch, a sustained drop."""
    rnd = random.Random(seed)
    rows = []
    n = int(days * 86_400 / STEP_S)
    for i in range(n):
        ts = T0 + i * STEP_S
        hour = (ts % 86_400) / 3600
        value = 40.0 + 25.0 * math.sin(math.pi * (hour - 6) / 12) + rnd.gauss(0, 3.0)
        rows.append((ts, round(value, 1)))
    rows[n - 600] = (rows[n - 600][0], rows[n - 600][1] + 60.0)  # spike
    stuck = rows[n - 400][1]
    for i in range(n - 400, n - 370):  # stuck for five hours
        rows[i] = (rows[i][0], stuck)
    for i in range(n - 200, n - 180):  # a drop to a fifth
        rows[i] = (rows[i][0], round(rows[i][1] / 5, 1))
    return rows


ROWS = city_series()


def scores(name: str, rows: list[tuple[float, float]]) -> list[float]:
    detector = get(name)()
    return [score_from_p(detector.pvalue(ts, v)) for ts, v in rows]


@pytest.mark.parametrize("name", names())
def test_every_detector_scores_the_first_60_percent_of_a_series_as_it_does_in_the_whole_run(
    name: str,
) -> None:
    cut = int(0.6 * len(ROWS))
    assert scores(name, ROWS[:cut]) == scores(name, ROWS)[:cut]


@pytest.mark.parametrize("name", names())
@pytest.mark.parametrize("cut", [0, 15, 700, 1700])
def test_a_detector_restored_from_its_state_goes_on_exactly_as_an_uninterrupted_one(
    name: str, cut: int
) -> None:
    cls = get(name)
    whole = scores(name, ROWS)
    first = cls()
    before = [score_from_p(first.pvalue(ts, v)) for ts, v in ROWS[:cut]]
    restored = cls.from_state(json.loads(json.dumps(first.state(), allow_nan=False)))
    after = [score_from_p(restored.pvalue(ts, v)) for ts, v in ROWS[cut:]]
    assert before + after == whole


@pytest.mark.parametrize("name", names())
def test_every_detector_scores_every_reading_between_zero_and_one_and_flags_the_anomalies(
    name: str,
) -> None:
    got = scores(name, ROWS)
    assert all(0.0 <= s <= 1.0 for s in got)
    if name in {"flatline", "robust-zscore"}:
        return  # each watches one kind of anomaly only
    n = len(ROWS)
    assert max(got[n - 600 : n - 595]) >= 0.5  # the spike: rarer than 1 reading in 1,000


@settings(max_examples=25, deadline=None)
@given(
    st.sampled_from(names()),
    st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=7200),
            st.one_of(st.floats(min_value=-1e6, max_value=1e6), st.sampled_from([0.0, 1.0, 5.0])),
        ),
        min_size=1,
        max_size=400,
    ),
    st.integers(min_value=0, max_value=400),
)
def test_any_series_scores_between_zero_and_one_and_a_prefix_as_in_the_whole_run(
    name: str, points: list[tuple[float, float]], cut: int
) -> None:
    rows, ts = [], T0
    for gap, v in points:  # gaps of 0 (equal timestamps) included
        ts += gap
        rows.append((ts, v))
    got = scores(name, rows)
    assert all(0.0 <= s <= 1.0 for s in got)
    assert scores(name, rows[:cut]) == got[:cut]


def test_state_of_one_detector_is_refused_by_another() -> None:
    state = get("level")().state()
    with pytest.raises(ValueError, match="detector: state of 'level', not of 'flatline'"):
        get("flatline").from_state(state)


def test_state_from_another_version_of_the_code_is_refused_naming_the_fields() -> None:
    detector = get(DEFAULT)()
    state = detector.state()
    state["fields"]["renamed"] = state["fields"].pop("n")
    with pytest.raises(StateError, match="missing n, unknown renamed"):
        get(DEFAULT).from_state(state)


def test_the_default_detector_is_registered() -> None:
    assert DEFAULT in names()


@pytest.mark.parametrize("name", names())
def test_every_detector_readme_states_its_measured_figures_and_the_command(name: str) -> None:
    readme = (folder(get(name)) / "README.md").read_text()
    assert f"`{name}`" in readme
    assert "bench/detection.py" in readme  # the figures, with the command that measures them
