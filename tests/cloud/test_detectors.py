"""Streaming detectors: calibrated scores in [0, 1], one per parsable row, never using the future."""

from __future__ import annotations

import io
import math
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.rules.detectors import DEFAULT, TailCalibrator, get, names, p_from_score, score_from_p
from cloud.rules.detectors.replay import BadRow, parse_ts, replay_csv, score_rows
from cloud.rules.detectors.seasonal import detect_period
from cloud.rules.engine import load_rules
from cloud.rules.field import ScoredFieldRule
from edge.contract import Reading, SensorKind

T0 = 1_700_000_000.0
values = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
series = st.lists(st.tuples(st.floats(min_value=1, max_value=7200), values), min_size=1, max_size=300)


def scores(name: str, rows: list[tuple[float, float]]) -> list[float]:
    detector = get(name)()
    return [score_from_p(detector.pvalue(ts, v)) for ts, v in rows]


def timed(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out, ts = [], T0
    for gap, v in points:
        ts += gap
        out.append((ts, v))
    return out


@settings(max_examples=40, deadline=None)
@given(series, st.sampled_from(names()))
def test_every_detector_scores_every_row_within_zero_and_one(
    points: list[tuple[float, float]], name: str
) -> None:
    got = scores(name, timed(points))
    assert len(got) == len(points)
    assert all(0.0 <= s <= 1.0 for s in got)


@settings(max_examples=30, deadline=None)
@given(series, st.integers(min_value=0, max_value=300), st.sampled_from(names()))
def test_a_score_never_depends_on_later_rows(points: list[tuple[float, float]], cut: int, name: str) -> None:
    rows = timed(points)
    prefix = rows[: min(cut, len(rows))]
    assert scores(name, prefix) == scores(name, rows)[: len(prefix)]


def daily_series(
    days: int, step_s: float, noise: float, level: float, amplitude: float, seed: int
) -> list[float]:
    rnd = random.Random(seed)
    n = int(days * 86_400 / step_s)
    return [
        level + amplitude * math.sin(2 * math.pi * (i * step_s % 86_400) / 86_400) + rnd.gauss(0, noise)
        for i in range(n)
    ]


def test_the_same_rarity_scores_the_same_on_sensors_of_any_scale() -> None:
    # The same shape at two scales (occupancy in %, a network counter in bytes): same scores.
    small = daily_series(10, 600, 2.0, 50.0, 20.0, seed=3)
    big = [v * 1e6 + 7e9 for v in small]
    rows_small = [(T0 + i * 600, v) for i, v in enumerate(small)]
    rows_big = [(T0 + i * 600, v) for i, v in enumerate(big)]
    a, b = scores("ensemble", rows_small), scores("ensemble", rows_big)
    assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < 0.02


def test_false_alarm_rate_on_ordinary_data_matches_the_score_it_claims() -> None:
    # On anomaly-free data, a score of 0.5 (p = 1e-3) is exceeded about once per thousand readings.
    rows = [(T0 + i * 300, v) for i, v in enumerate(daily_series(30, 300, 3.0, 40.0, 25.0, seed=7))]
    got = scores("seasonal", rows)[2000:]
    rate = sum(s >= 0.5 for s in got) / len(got)
    assert rate < 5e-3
    assert p_from_score(0.5) == 1e-3


def test_spike_level_shift_and_stuck_sensor_score_high_after_warm_up() -> None:
    vals = daily_series(20, 600, 2.0, 60.0, 20.0, seed=11)
    vals[2000] += 30  # spike
    for i in range(2500, 2520):  # stuck
        vals[i] = vals[2499]
    rows = [(T0 + i * 600, v) for i, v in enumerate(vals)]
    got = scores("ensemble", rows)
    assert got[2000] > 0.8
    assert max(got[2505:2520]) > 0.8
    assert max(got[1000:1990]) < 0.8


def test_a_new_series_starts_conservative() -> None:
    got = scores("ensemble", [(T0 + i * 60, float(v)) for i, v in enumerate([1, 1, 2, 1, 1, 50, 1])])
    assert all(s == 0.0 for s in got)


def test_calibrator_extrapolates_past_the_largest_residual_seen() -> None:
    cal = TailCalibrator()
    rnd = random.Random(0)
    for _ in range(1000):
        cal.add(abs(rnd.gauss(0, 1)))
    assert cal.pvalue(0.0) == 1.0
    assert 0.02 < cal.pvalue(2.0) < 0.1
    assert cal.pvalue(6.0) < cal.pvalue(5.0) < 1e-3


def test_period_is_found_by_autocorrelation_and_absent_in_noise() -> None:
    rnd = random.Random(1)
    periodic = [math.sin(2 * math.pi * i / 37) + rnd.gauss(0, 0.2) for i in range(1000)]
    noise = [rnd.gauss(0, 1) for _ in range(1000)]
    assert detect_period(np.array(periodic)) in (37, 74, 111)
    assert detect_period(np.array(noise)) == 0


def test_timestamps_are_iso_8601_or_space_separated_and_utc_when_naive() -> None:
    assert parse_ts("2026-11-24 08:00:00") == datetime(2026, 11, 24, 8, tzinfo=UTC)
    assert parse_ts("2026-11-24T09:00:00+01:00") == datetime(2026, 11, 24, 8, tzinfo=UTC)
    assert parse_ts("2026-11-24T08:00:00Z") == datetime(2026, 11, 24, 8, tzinfo=UTC)
    assert parse_ts("1795507200") == datetime(2026, 11, 24, 8, tzinfo=UTC)
    assert parse_ts("1795507200000") == datetime(2026, 11, 24, 8, tzinfo=UTC)


def test_bad_rows_are_reported_with_line_and_reason_and_the_run_goes_on() -> None:
    src = io.StringIO(
        "timestamp,value\n2026-11-24 08:00:00,1\nyesterday,2\n2026-11-24 08:02:00,abc\n\n"
        "2026-11-24 08:03:00,4\n"
    )
    dst = io.StringIO()
    bad: list[BadRow] = []
    assert replay_csv("ensemble", src, dst, bad.append) == 2
    assert [b.line for b in bad] == [3, 4, 5]
    assert "yesterday" in bad[0].reason
    assert "abc" in bad[1].reason
    lines = dst.getvalue().splitlines()
    assert lines[0] == "timestamp,value,anomaly_score"
    assert [ln.split(",")[:2] for ln in lines[1:]] == [
        ["2026-11-24 08:00:00", "1"],
        ["2026-11-24 08:03:00", "4"],
    ]


def test_nan_and_infinite_values_are_bad_rows() -> None:
    out = list(score_rows("level", [("2026-11-24 08:00:00", "nan"), ("2026-11-24 08:00:00", "inf")]))
    assert all(isinstance(o, BadRow) for o in out)


def test_all_built_in_detectors_are_registered() -> None:
    assert set(names()) >= {"level", "robust-zscore", "seasonal", "flatline", "ensemble"}


def test_sitroom_rules_replay_writes_one_scored_row_per_parsable_row(tmp_path: Path) -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    lines = ["timestamp,value"]
    for i, v in enumerate(daily_series(3, 600, 1.0, 30.0, 10.0, seed=5)):
        lines.append(f"{(start + timedelta(minutes=10 * i)).strftime('%Y-%m-%d %H:%M:%S')},{v:.3f}")
    lines.insert(5, "garbage,row")
    src = tmp_path / "in.csv"
    src.write_text("\n".join(lines) + "\n")
    dst = tmp_path / "out.csv"
    sitroom = Path(sys.executable).with_name("sitroom")
    done = subprocess.run(
        [
            str(sitroom),
            "rules",
            "replay",
            "--detector",
            "seasonal",
            "--input",
            str(src),
            "--output",
            str(dst),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert f"{src}:6: skipped" in done.stderr
    out = dst.read_text().splitlines()
    assert out[0] == "timestamp,value,anomaly_score"
    assert len(out) == len(lines) - 1
    assert all(0.0 <= float(row.split(",")[2]) <= 1.0 for row in out[1:])


def test_an_unknown_detector_is_refused_with_the_known_names(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text("timestamp,value\n")
    sitroom = Path(sys.executable).with_name("sitroom")
    done = subprocess.run(
        [str(sitroom), "rules", "replay", "--detector", "magic", "--input", str(src), "--output", "-"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "ensemble" in done.stderr


def test_a_fast_series_keeps_a_bounded_profile_and_still_learns_its_day() -> None:
    detector = get("seasonal")()
    rows = [(T0 + 60 * i, v) for i, v in enumerate(daily_series(6, 60, 1.0, 50.0, 20.0, seed=9))]
    got = [score_from_p(detector.pvalue(ts, v)) for ts, v in rows]
    assert len(detector.daily.history) <= 288  # type: ignore[attr-defined]
    assert len(detector.weekly.history) <= 336  # type: ignore[attr-defined]
    assert max(got[4 * 1440 :]) < 0.8
    ts, v = rows[-1]
    assert score_from_p(detector.pvalue(ts + 60, v + 15)) > 0.8


def test_a_series_that_changes_its_ways_stops_alerting_once_learnt() -> None:
    # Continuous values, then values held for 10 readings each (a sensor reconfigured to report
    # less precisely): alarming at first, ordinary after a while, not alerting for ever.
    rnd = random.Random(0)
    rows = [(T0 + 60 * i, rnd.gauss(0, 1)) for i in range(3000)]
    held = 0.0
    for i in range(3000, 9000):
        if i % 10 == 0:
            held = rnd.gauss(0, 1)
        rows.append((T0 + 60 * i, held))
    got = scores("ensemble", rows)
    assert sum(s >= 0.8 for s in got[3000:4000]) > 0
    assert sum(s >= 0.8 for s in got[5000:]) == 0


def test_replay_with_the_default_detector_scores_as_the_default_rules_detector_does(tmp_path: Path) -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    values = [round(v) for v in daily_series(4, 288, 1.0, 200.0, 80.0, seed=11)]
    values[900] = 5  # a drop the default detector reports
    rows = [(start + timedelta(minutes=5 * i), v) for i, v in enumerate(values)]
    src = tmp_path / "in.csv"
    src.write_text("timestamp,value\n" + "".join(f"{ts.isoformat()},{v}\n" for ts, v in rows))
    dst = tmp_path / "out.csv"
    sitroom = Path(sys.executable).with_name("sitroom")
    done = subprocess.run(
        [str(sitroom), "rules", "replay", "--detector", "default", "--input", str(src), "--output", str(dst)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert f"scored with default ({DEFAULT})" in done.stderr
    replayed = [float(row.split(",")[2]) for row in dst.read_text().splitlines()[1:]]
    assert max(replayed) >= 0.8
    # The default rule on traffic flow, fed the same readings, runs the same detector code:
    # its detector gives the same scores and ends in the same state.
    rule = next(r for r in load_rules() if isinstance(r, ScoredFieldRule) and r.config.field == "vehicles")
    fields = {"heavy": 0, "interval_s": 300, "speed_kmh": 40.0, "occupancy_pct": 5.0}
    twin = get(DEFAULT)()
    for (ts, v), score in zip(rows, replayed, strict=True):
        reading = Reading(kind=SensorKind.TRAFFIC, org="o", gateway="g", sensor="t-roma-in", ts=ts,
                          fields={"vehicles": v, **fields})  # fmt: skip
        rule.observe(reading)
        assert score == round(score_from_p(twin.pvalue(ts.timestamp(), float(v))), 6)
    served = rule.detectors[("o", "g", "t-roma-in")]
    assert type(served) is get(DEFAULT)
    assert served.state() == twin.state()
