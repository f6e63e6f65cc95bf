"""The engine given a message's readings at once (`Engine.observe_many`, as the rules service
calls it) lets out exactly what it lets out given them one by one (`Engine.observe`)."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cloud.core.alerts import Alert
from cloud.rules.base import Rule
from cloud.rules.engine import Engine, load_rules
from cloud.rules.field import ScoredFieldRule
from cloud.rules.kinds.flatline import Flatline, FlatlineConfig
from cloud.rules.kinds.geofence import Geofence, GeofenceConfig
from cloud.rules.kinds.parking_saturation import ParkingSaturation, ParkingSaturationConfig
from cloud.rules.kinds.rate_of_change import RateOfChange, RateOfChangeConfig
from cloud.rules.kinds.threshold import Threshold, ThresholdConfig
from edge.contract import Reading, SensorKind

T0 = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday
STEP = timedelta(minutes=5)
DAYS = 5
ORG = "comune-prato"


def rules() -> list[Rule[Any]]:
    """The default rules, and rules of the other kinds a message of each sensor kind meets."""
    return [
        *load_rules(),
        Threshold(
            ThresholdConfig(name="nearly-full", kind=SensorKind.PARKING, field="occupancy_pct", above=85)
        ),
        RateOfChange(
            RateOfChangeConfig(name="park-jump", kind=SensorKind.PARKING, field="occupied", max_per_min=8)
        ),
        Flatline(
            FlatlineConfig(name="counter-stuck", kind=SensorKind.TRAFFIC, field="vehicles", min_readings=6)
        ),
        ParkingSaturation(ParkingSaturationConfig(name="saturation")),
        Geofence(GeofenceConfig(name="halted", check="halted", halted_min=20)),
    ]


def stream(seed: int = 3) -> list[Reading]:
    """Five days of three gateways (car parks, counters, vehicles), with departures in the last
    day: a car park emptied, a counter stuck, a road slowed, a vehicle halted."""
    rnd = random.Random(seed)
    out: list[Reading] = []
    for k in range(DAYS * 288):
        ts = T0 + k * STEP
        hour = (k % 288) / 12
        rush = math.exp(-(((hour - 8) / 2) ** 2)) + math.exp(-(((hour - 18) / 2) ** 2))
        is_last_day = k >= (DAYS - 1) * 288
        for s in range(4):
            occupied = round(150 + 250 * rush + rnd.gauss(0, 6))
            if s == 0 and is_last_day and 100 <= k % 288 < 130:
                occupied = 3
            occupied = min(max(occupied, 0), 500)
            fields: dict[str, Any] = {"occupied": occupied, "capacity": 500, "occupancy_pct": occupied / 5}
            out.append(reading(SensorKind.PARKING, "gw-park", f"p-{s}", ts, fields))
        for s in range(4):
            vehicles = max(round(20 + 200 * rush + rnd.gauss(0, 8)), 0)
            if s == 1 and is_last_day and 150 <= k % 288 < 180:
                vehicles = 57
            speed = round(50 - 20 * rush + rnd.gauss(0, 2), 1)
            if s == 2 and is_last_day and 200 <= k % 288 < 230:
                speed = 9.5
            fields = {"vehicles": vehicles, "heavy": min(vehicles, 1), "interval_s": 300, "speed_kmh": speed,
                      "occupancy_pct": min(vehicles / 4, 100.0)}  # fmt: skip
            out.append(reading(SensorKind.TRAFFIC, "gw-road", f"t-{s}", ts, fields))
        for s in range(2):
            is_halted = s == 0 and is_last_day and 60 <= k % 288 < 70
            fields = {"lat": 43.88, "lon": 11.09 + (0.0 if is_halted else 0.0001 * (k % 50)),
                      "speed_kmh": 0.0 if is_halted else 30.0, "heading_deg": 90.0}  # fmt: skip
            out.append(reading(SensorKind.FLEET, "gw-bus", f"v-{s}", ts, fields))
    return out


def reading(kind: SensorKind, gateway: str, sensor: str, ts: datetime, fields: dict[str, Any]) -> Reading:
    return Reading(kind=kind, org=ORG, gateway=gateway, sensor=sensor, ts=ts, fields=fields)


def one_by_one(readings: list[Reading]) -> tuple[list[Alert], Engine]:
    engine = Engine(rules())
    out: list[Alert] = []
    for r in readings:
        out.extend(engine.observe(r, T0))
    return out, engine


def by_message(messages: list[list[Reading]]) -> tuple[list[Alert], Engine]:
    engine = Engine(rules())
    out: list[Alert] = []
    for m in messages:
        out.extend(engine.observe_many(m, T0))
    return out, engine


def learnt(engine: Engine) -> dict[tuple[str, tuple[str, str, str]], Any]:
    return {
        (rule.name, key): rule.series_state(key)
        for rule in engine.rules
        if isinstance(rule, ScoredFieldRule)
        for key in rule.detectors
    }


STREAM = stream()
EXPECTED, EXPECTED_ENGINE = one_by_one(STREAM)


def test_the_stream_raises_alerts_of_every_kind_of_rule_it_has() -> None:
    fired = {a.rule for a in EXPECTED if a.state == "firing"}
    assert {"parking-unusual", "traffic-flow-unusual", "traffic-speed-impact", "halted"} <= fired
    assert any(a.state == "resolved" for a in EXPECTED)


def test_messages_of_one_gateway_kind_and_time_raise_the_alerts_of_their_readings_one_by_one() -> None:
    messages: dict[tuple[datetime, str, SensorKind], list[Reading]] = {}
    for r in STREAM:
        messages.setdefault((r.ts, r.gateway, r.kind), []).append(r)
    got, engine = by_message(list(messages.values()))
    assert got == EXPECTED
    assert learnt(engine) == learnt(EXPECTED_ENGINE)


@pytest.mark.parametrize("seed", [1, 2])
def test_messages_of_any_size_and_kinds_even_holding_a_series_twice_raise_the_same_alerts(seed: int) -> None:
    rnd = random.Random(seed)
    messages: list[list[Reading]] = []
    at = 0
    while at < len(STREAM):
        size = rnd.choice([1, 2, 7, 10, 31, 64])  # 10 readings per time step: 31 spans four of them
        messages.append(STREAM[at : at + size])
        at += size
    got, engine = by_message(messages)
    assert got == EXPECTED
    assert learnt(engine) == learnt(EXPECTED_ENGINE)


def test_a_gateway_sending_an_hour_at_once_raises_what_its_readings_raise_one_by_one() -> None:
    # A spool flushed after an outage: each message holds a series twice or more, judged in order.
    messages: dict[tuple[int, str, SensorKind], list[Reading]] = {}
    for r in STREAM:
        hour = int((r.ts - T0) / timedelta(hours=1))
        messages.setdefault((hour, r.gateway, r.kind), []).append(r)
    sent = list(messages.values())
    got, engine = by_message(sent)
    expected, expected_engine = one_by_one([r for m in sent for r in m])
    assert got == expected
    assert learnt(engine) == learnt(expected_engine)
    assert {a.rule for a in got if a.state == "firing"} == {a.rule for a in EXPECTED if a.state == "firing"}
