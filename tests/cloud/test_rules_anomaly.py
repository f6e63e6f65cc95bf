"""Rate of change, flatline and seasonal-baseline rules, and the engine's index by sensor kind."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

from cloud.core.alerts import Alert
from cloud.rules.base import Rule
from cloud.rules.engine import Engine
from cloud.rules.kinds.flatline import Flatline, FlatlineConfig
from cloud.rules.kinds.rate_of_change import RateOfChange, RateOfChangeConfig
from cloud.rules.kinds.seasonal import Seasonal, SeasonalConfig
from cloud.rules.kinds.threshold import Threshold, ThresholdConfig, ThresholdGroup
from edge.contract import Reading, SensorKind

T0 = datetime(2026, 11, 2, tzinfo=UTC)


def parking(minutes: float, occupied: int, sensor: str = "p-a") -> Reading:
    return Reading(
        kind=SensorKind.PARKING,
        org="comune-prato",
        gateway="gw-x",
        sensor=sensor,
        ts=T0 + timedelta(minutes=minutes),
        fields={"occupied": occupied, "capacity": 1000, "occupancy_pct": occupied / 10},
    )


def feed(rule: object, readings: list[Reading]) -> list[Alert]:
    out: list[Alert] = []
    for r in readings:
        out.extend(rule.observe(r))  # type: ignore[attr-defined]
    return out


def test_rate_of_change_fires_on_a_counter_drop_and_resolves_when_calm() -> None:
    rule = RateOfChange(
        RateOfChangeConfig(
            name="drop", kind=SensorKind.PARKING, field="occupied", max_per_min=20, direction="down"
        )
    )
    assert feed(rule, [parking(0, 300), parking(5, 320), parking(10, 330)]) == []
    (fired,) = rule.observe(parking(15, 10))
    assert (fired.state, fired.value, fired.since) == ("firing", 10.0, T0 + timedelta(minutes=10))
    assert "changed -320" in fired.message
    (resolved,) = rule.observe(parking(16, 5))  # -5/min: within the limit again
    assert resolved.state == "resolved"


def test_flatline_needs_both_readings_and_duration_and_resolves_on_change() -> None:
    rule = Flatline(FlatlineConfig(name="stuck", kind=SensorKind.PARKING, field="occupied", min_readings=4))
    assert feed(rule, [parking(m, 42) for m in (0, 10, 20)]) == []
    (fired,) = rule.observe(parking(30, 42))
    assert fired.message == "occupied stuck at 42 for 4 readings (30 min)"
    assert feed(rule, [parking(40, 42)]) == []
    (resolved,) = rule.observe(parking(50, 43))
    assert resolved.state == "resolved"


def daily(minutes: float) -> int:
    return int(250 + 200 * math.sin(2 * math.pi * (minutes % 1440) / 1440))


def test_seasonal_rule_learns_the_daily_profile_and_fires_on_a_surge_only() -> None:
    rule = Seasonal(SeasonalConfig(name="unusual", kind=SensorKind.PARKING, field="occupied"))
    rnd = random.Random(2)
    ordinary = [parking(m, daily(m) + rnd.randint(-5, 5)) for m in range(0, 14 * 1440, 10)]
    feed(rule, ordinary)  # two weeks of ordinary days (the warm-up)
    quiet = feed(rule, [parking(14 * 1440 + m, daily(m) + rnd.randint(-5, 5)) for m in range(0, 1440, 10)])
    assert quiet == []
    m = 15 * 1440 + 600
    (fired,) = rule.observe(parking(m, daily(m) + 200))
    assert fired.state == "firing"
    assert fired.context is not None
    assert fired.context["score"] >= 0.8
    assert abs(fired.context["baseline"] - daily(m)) < 20  # what it usually reads at this hour


def test_the_engine_hands_each_reading_only_to_the_rules_of_its_kind() -> None:
    traffic_rule = Threshold(
        ThresholdConfig(name="slow", kind=SensorKind.TRAFFIC, field="speed_kmh", below=5, hold_min=0)
    )
    parking_rule = Threshold(
        ThresholdConfig(name="full", kind=SensorKind.PARKING, field="occupancy_pct", above=90, hold_min=0)
    )
    engine = Engine([traffic_rule, parking_rule])
    (alert,) = engine.observe(parking(0, 950))
    assert alert.rule == "full"
    (group,) = engine._by_kind[SensorKind.PARKING]
    assert isinstance(group, ThresholdGroup)
    assert group.rules == [parking_rule]


def test_grouped_rules_alert_exactly_as_the_same_rules_one_by_one() -> None:
    def rules() -> list[Rule]:
        return [
            *(
                Threshold(
                    ThresholdConfig(
                        name=f"full-{i}", kind=SensorKind.PARKING, field="occupancy_pct", above=80 + 5 * i,
                        clear=70 + 5 * i, hold_min=i,
                    )
                )
                for i in range(3)
            ),
            *(
                RateOfChange(
                    RateOfChangeConfig(
                        name=f"jump-{i}", kind=SensorKind.PARKING, field="occupied", max_per_min=5 + 10 * i
                    )
                )
                for i in range(3)
            ),
            *(
                Flatline(
                    FlatlineConfig(
                        name=f"stuck-{i}", kind=SensorKind.PARKING, field="occupied", min_readings=3 + i
                    )
                )
                for i in range(3)
            ),
        ]  # fmt: skip

    rnd = random.Random(5)
    readings, occupied = [], 500
    for m in range(3000):
        if rnd.random() < 0.9:
            occupied = min(max(occupied + rnd.choice([-40, -3, 0, 0, 0, 3, 40]), 0), 1000)
        readings.append(parking(m, occupied, sensor=f"p-{m % 3}"))
    grouped = Engine(rules())
    one_by_one = rules()
    expected: list[Alert] = []
    for r in readings:
        for rule in one_by_one:
            expected.extend(rule.observe(r))
    got = feed(grouped, readings)
    assert len(got) > 50
    assert sorted(got, key=repr) == sorted(expected, key=repr)
