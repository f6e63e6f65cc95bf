"""Rules in event time: threshold with hold and hysteresis, staleness, the engine, the rules file."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from cloud.core.alerts import Alert
from cloud.io.influx.points import alert_line
from cloud.rules.base import Clocks, Rule, RuleConfig
from cloud.rules.detectors import DEFAULT
from cloud.rules.detectors import get as get_detector
from cloud.rules.engine import Engine, RulesFileError, load_rules
from cloud.rules.field import ScoredFieldRule
from cloud.rules.kinds.staleness import Staleness, StalenessConfig
from cloud.rules.kinds.threshold import Threshold, ThresholdConfig
from cloud.rules.watermark import Watermark
from edge.contract import Reading, SensorKind

T0 = datetime(2026, 11, 24, 8, tzinfo=UTC)
ORG = "comune-prato"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def parking(
    minutes: float, pct: float, sensor: str = "p-mercatale", gateway: str = "gw-mercatale"
) -> Reading:
    return Reading(
        kind=SensorKind.PARKING,
        org=ORG,
        gateway=gateway,
        sensor=sensor,
        ts=at(minutes),
        fields={"occupied": round(pct * 10), "capacity": 1000, "occupancy_pct": pct},
    )


def traffic(minutes: float, speed_kmh: float, sensor: str = "t-repubblica-in") -> Reading:
    return Reading(
        kind=SensorKind.TRAFFIC,
        org=ORG,
        gateway="gw-traffico",
        sensor=sensor,
        ts=at(minutes),
        fields={"vehicles": 120, "heavy": 9, "interval_s": 60, "speed_kmh": speed_kmh, "occupancy_pct": 11.0},
    )


def parking_full(**overrides: Any) -> Threshold:
    values: dict[str, Any] = {
        "name": "parking-full",
        "kind": "parking",
        "field": "occupancy_pct",
        "above": 95,
        "clear": 90,
        "hold_min": 15,
    }
    values.update(overrides)
    return Threshold(ThresholdConfig.model_validate(values))


def feed(rule: Rule | Engine, readings: list[Reading]) -> list[Alert]:
    out: list[Alert] = []
    for r in readings:
        out.extend(rule.observe(r))
    return out


# --- threshold --------------------------------------------------------------------------------


def test_threshold_fires_only_after_the_hold_time() -> None:
    rule = parking_full()
    assert feed(rule, [parking(m, 96.0) for m in (0, 5, 10, 14.9)]) == []

    (alert,) = rule.observe(parking(15, 97.5))

    assert (alert.state, alert.entity, alert.gateway, alert.kind) == (
        "firing",
        "p-mercatale",
        "gw-mercatale",
        "parking",
    )
    assert (alert.since, alert.ts) == (T0, at(15))
    assert (alert.value, alert.threshold) == (97.5, 95)
    assert alert.message == "occupancy_pct 97.5 above 95 for 15 min"
    assert feed(rule, [parking(m, 98.0) for m in (16, 30, 60)]) == []  # fires once, not per reading


def test_threshold_does_not_fire_if_the_value_dips_below_clear_before_the_hold() -> None:
    rule = parking_full()
    assert feed(rule, [parking(0, 96.0), parking(10, 89.0), parking(14, 96.0), parking(28, 96.0)]) == []

    (alert,) = rule.observe(parking(29, 96.0))  # the hold counts again from minute 14
    assert alert.since == at(14)


def test_threshold_does_not_flap_between_clear_and_above() -> None:
    rule = parking_full()
    (fired,) = feed(rule, [parking(0, 96.0), parking(15, 96.0)])
    assert fired.state == "firing"

    hovering = [parking(16 + i, pct) for i, pct in enumerate([94.0, 96.0, 91.0, 99.0, 90.0, 95.0])]
    assert feed(rule, hovering) == []


def test_threshold_resolves_once_below_clear_and_then_needs_the_hold_again() -> None:
    rule = parking_full()
    feed(rule, [parking(0, 96.0), parking(15, 96.0)])

    (resolved,) = rule.observe(parking(20, 89.5))
    assert (resolved.state, resolved.ts, resolved.value) == ("resolved", at(20), 89.5)
    assert resolved.message == "occupancy_pct back to 89.5"
    assert rule.observe(parking(21, 80.0)) == []  # already resolved

    assert rule.observe(parking(22, 97.0)) == []
    (again,) = rule.observe(parking(37, 97.0))
    assert (again.state, again.since) == ("firing", at(22))


def test_threshold_without_clear_resolves_at_the_threshold_itself() -> None:
    rule = parking_full(clear=None, hold_min=0)
    (fired,) = rule.observe(parking(0, 95.5))
    assert fired.state == "firing"
    assert rule.observe(parking(1, 95.0)) == []  # not above, not yet below
    (resolved,) = rule.observe(parking(2, 94.9))
    assert resolved.state == "resolved"


def test_threshold_below_variant_fires_under_the_limit_and_resolves_above_clear() -> None:
    rule = Threshold(
        ThresholdConfig(
            name="traffic-jam", kind=SensorKind.TRAFFIC, field="speed_kmh", below=10, clear=20, hold_min=5
        )
    )
    assert feed(rule, [traffic(0, 8.0), traffic(3, 9.0), traffic(4, 15.0)]) == []

    (fired,) = rule.observe(traffic(5, 4.0))
    assert (fired.state, fired.since, fired.value, fired.threshold) == ("firing", T0, 4.0, 10)
    assert fired.message == "speed_kmh 4 below 10 for 5 min"
    assert feed(rule, [traffic(6, 12.0), traffic(7, 19.5)]) == []

    (resolved,) = rule.observe(traffic(8, 25.0))
    assert resolved.state == "resolved"


def test_threshold_keeps_each_sensor_apart_and_ignores_other_kinds() -> None:
    rule = parking_full(hold_min=0)
    (fired,) = rule.observe(parking(0, 99.0, sensor="p-castello"))
    assert fired.entity == "p-castello"
    assert rule.observe(parking(1, 50.0, sensor="p-mercatale")) == []  # no resolution for another
    assert rule.observe(traffic(1, 99.0)) == []
    (resolved,) = rule.observe(parking(2, 50.0, sensor="p-castello"))
    assert resolved.entity == "p-castello"


def threshold_error(**config: Any) -> str:
    with pytest.raises(ValidationError) as info:
        ThresholdConfig.model_validate({"name": "t", "kind": "parking", **config})
    return str(info.value)


def test_threshold_config_names_an_unknown_field_and_the_known_ones() -> None:
    message = threshold_error(field="occupancy", above=95)
    assert "field: 'occupancy' is not a field of parking" in message
    assert "known: occupied, capacity, occupancy_pct" in message


def test_threshold_config_refuses_both_above_and_below_or_neither() -> None:
    assert "exactly one of `above` and `below`" in threshold_error(field="occupancy_pct", above=95, below=5)
    assert "exactly one of `above` and `below`" in threshold_error(field="occupancy_pct")


def test_threshold_config_refuses_a_clear_beyond_the_threshold() -> None:
    assert "clear: 97.0 must not exceed above (95.0)" in threshold_error(
        field="occupancy_pct", above=95, clear=97
    )
    assert "clear: 3.0 must not be under below (5.0)" in threshold_error(
        field="occupancy_pct", below=5, clear=3
    )


def test_threshold_config_refuses_a_negative_hold() -> None:
    assert "hold_min" in threshold_error(field="occupancy_pct", above=95, hold_min=-1)


# --- staleness --------------------------------------------------------------------------------


def staleness(scope: str, name: str = "silent") -> Staleness:
    return Staleness(StalenessConfig(name=name, scope=scope, silent_min=10))  # type: ignore[arg-type]


def run(engine: Engine, readings: list[Reading], arrivals: list[datetime] | None = None) -> list[Alert]:
    """Feed readings one by one, ticking after each, as the service does; each reading arrives
    at its own time unless `arrivals` says when (the engine's wall clock never goes back)."""
    out: list[Alert] = []
    wall = T0
    engine.wall_clock = lambda: wall
    for i, r in enumerate(readings):
        wall = max(wall, arrivals[i] if arrivals else r.ts)
        out.extend(engine.observe(r))
        out.extend(engine.tick())
    return out


def test_a_silent_sensor_fires_once_after_silent_min_while_its_gateway_reports() -> None:
    engine = Engine([staleness("sensor", "sensor-silent")])
    readings = [parking(0, 50.0, sensor="p-interporto")]
    readings += [parking(m, 50.0, sensor="p-ospedale") for m in range(31)]

    alerts = run(engine, readings[:11])  # up to minute 10: silent 10 min, not more
    assert alerts == []
    (alert,) = run(engine, readings[11:])

    assert (alert.rule, alert.entity, alert.gateway, alert.kind) == (
        "sensor-silent",
        "p-interporto",
        "gw-mercatale",
        "parking",
    )
    assert (alert.state, alert.since, alert.ts, alert.value) == ("firing", T0, at(11), 11)
    assert alert.message == "sensor p-interporto on gw-mercatale silent for 11 min"


def test_a_silent_sensor_resolves_when_it_reports_again() -> None:
    engine = Engine([staleness("sensor")])
    run(engine, [parking(0, 50.0, sensor="p-interporto"), parking(12, 50.0, sensor="p-ospedale")])

    (resolved,) = run(engine, [parking(13, 50.0, sensor="p-interporto")])
    assert (resolved.state, resolved.entity, resolved.ts) == ("resolved", "p-interporto", at(13))
    assert (engine.raised, engine.resolved) == (1, 1)
    assert run(engine, [parking(14, 50.0, sensor="p-interporto")]) == []


def test_a_sensor_on_a_silent_gateway_is_not_sensor_stale() -> None:
    engine = Engine([staleness("sensor")])
    readings = [parking(0, 50.0, sensor="p-interporto", gateway="gw-stazione")]
    readings += [parking(m, 50.0, sensor="p-castello", gateway="gw-mercatale") for m in range(31)]
    assert run(engine, readings) == []


def test_a_late_reading_does_not_turn_its_gateway_clock_back() -> None:
    engine = Engine([], wall_clock=lambda: at(12))
    engine.observe(parking(12, 50.0))
    engine.observe(parking(3, 50.0))
    engine.tick()
    assert engine.clocks.gateways[(ORG, "gw-mercatale")] == at(12)


def test_a_silent_gateway_fires_while_others_report() -> None:
    engine = Engine([staleness("gateway", "gateway-silent")])
    readings = [parking(0, 50.0, gateway="gw-stazione")]
    readings += [parking(m, 50.0, gateway="gw-mercatale") for m in range(10)]
    assert run(engine, readings) == []

    (alert,) = run(engine, [parking(m, 50.0, gateway="gw-mercatale") for m in range(11, 31)])
    assert (alert.rule, alert.entity, alert.gateway, alert.kind) == (
        "gateway-silent",
        "gw-stazione",
        "gw-stazione",
        "gateway",
    )
    assert alert.state == "firing"
    assert alert.since == T0
    assert alert.message.startswith("gateway gw-stazione silent for 11 min")

    (resolved,) = run(engine, [parking(31, 50.0, gateway="gw-stazione")])
    assert (resolved.state, resolved.entity) == ("resolved", "gw-stazione")


def test_one_reading_ahead_from_one_gateway_makes_no_other_gateway_or_sensor_silent() -> None:
    # Issue 18 point 8: one reading stamped 300 s ahead (admitted up to max_future_s) dragged
    # the whole system's clock forward and every other gateway looked silent.
    engine = Engine(
        [
            Staleness(StalenessConfig(name="gateway-silent", scope="gateway", silent_min=2)),
            Staleness(StalenessConfig(name="sensor-silent", scope="sensor", silent_min=2)),
        ]
    )
    gateways = [f"gw-{i}" for i in range(7)]
    readings = [
        parking(m, 50.0, sensor=f"p-{g}-{s}", gateway=g) for m in range(10) for g in gateways for s in "abc"
    ]
    arrivals = [r.ts for r in readings]
    ahead = parking(9, 50.0, sensor="p-gw-0-a", gateway="gw-0")
    readings.append(ahead.model_copy(update={"ts": ahead.ts + timedelta(seconds=300)}))
    arrivals.append(at(9))  # stamped 5 min ahead, arriving at minute 9
    later = [
        parking(m, 50.0, sensor=f"p-{g}-{s}", gateway=g) for m in (10, 11) for g in gateways for s in "abc"
    ]
    readings += later
    arrivals += [r.ts for r in later]
    assert run(engine, readings, arrivals) == []


def test_most_gateways_going_silent_at_once_still_fire_while_a_few_report() -> None:
    engine = Engine([Staleness(StalenessConfig(name="gateway-silent", scope="gateway", silent_min=2))])
    gateways = [f"gw-{i}" for i in range(7)]
    readings = [parking(m, 50.0, sensor=f"p-{g}", gateway=g) for m in range(3) for g in gateways]
    readings += [parking(m, 50.0, sensor=f"p-{g}", gateway=g) for m in range(3, 8) for g in gateways[:2]]
    alerts = run(engine, readings)
    assert sorted(a.entity for a in alerts) == gateways[2:]
    assert {(a.state, a.since) for a in alerts} == {("firing", at(2))}


@given(
    clocks=st.lists(st.integers(min_value=0, max_value=10_000), min_size=2, max_size=30),
    ahead_s=st.integers(min_value=1, max_value=10**6),
)
def test_no_one_source_stamped_ahead_moves_a_watermark_past_the_others(
    clocks: list[int], ahead_s: int
) -> None:
    mark: Watermark[int] = Watermark()
    for i, s in enumerate(clocks):
        mark.see(i, T0 + timedelta(seconds=s), T0)
    before = mark.at(T0)
    assert before is not None
    mark.see(0, T0 + timedelta(seconds=max(clocks) + ahead_s), T0)
    after = mark.at(T0)
    assert after is not None
    assert after <= T0 + timedelta(seconds=max(clocks))
    assert before <= after


def test_a_gateway_rule_sees_total_silence_through_the_overall_clock() -> None:
    rule = staleness("gateway")
    rule.observe(parking(0, 50.0, gateway="gw-stazione"))
    assert rule.tick(Clocks(now=at(10))) == []
    (alert,) = rule.tick(Clocks(now=at(10.5)))
    assert alert.entity == "gw-stazione"
    assert rule.tick(Clocks(now=at(20))) == []


@pytest.mark.parametrize("reason", ["connection lost", "power failure"])
def test_a_last_will_offline_fires_at_once(reason: str) -> None:
    engine = Engine([staleness("gateway", "gateway-silent"), staleness("sensor", "sensor-silent")])
    run(engine, [parking(0, 50.0, gateway="gw-stazione")])

    (alert,) = engine.gateway_status(ORG, "gw-stazione", "offline", reason, at(1))
    assert (alert.rule, alert.entity, alert.kind, alert.state) == (
        "gateway-silent",
        "gw-stazione",
        "gateway",
        "firing",
    )
    assert (alert.since, alert.ts) == (at(1), at(1))
    assert reason in alert.message
    assert engine.gateway_status(ORG, "gw-stazione", "offline", reason, at(2)) == []
    assert run(engine, [parking(m, 50.0, gateway="gw-mercatale") for m in range(2, 20)]) == []

    (resolved,) = run(engine, [parking(20, 50.0, gateway="gw-stazione")])
    assert resolved.state == "resolved"


def test_a_clean_shutdown_or_an_online_status_does_not_fire() -> None:
    engine = Engine([staleness("gateway")])
    assert engine.gateway_status(ORG, "gw-stazione", "offline", "shutdown", at(1)) == []
    assert engine.gateway_status(ORG, "gw-stazione", "online", "", at(2)) == []
    assert engine.raised == 0


def test_staleness_config_refuses_a_non_positive_silence() -> None:
    with pytest.raises(ValidationError, match="silent_min"):
        StalenessConfig(name="s", silent_min=0)


# --- engine -----------------------------------------------------------------------------------


class Scripted(Rule):
    """A rule that returns prepared transitions, one list per reading."""

    kind = "scripted"
    Config = RuleConfig

    def __init__(self, script: list[list[Alert]]) -> None:
        super().__init__(RuleConfig(rule="scripted", name="scripted"))
        self.script = script

    def observe(self, reading: Reading) -> list[Alert]:
        return self.script.pop(0)


def alert(state: str, entity: str = "p-mercatale", minutes: float = 0) -> Alert:
    return Alert(
        rule="scripted",
        org=ORG,
        entity=entity,
        gateway="gw-mercatale",
        kind="parking",
        severity="warning",
        state=state,  # type: ignore[arg-type]
        since=T0,
        ts=at(minutes),
        message=f"{entity} {state}",
    )


def test_engine_drops_a_second_firing_for_an_open_alert() -> None:
    first, again = alert("firing"), alert("firing", minutes=1)
    engine = Engine(
        [Scripted([[first], [again], [alert("resolved", minutes=2)], [alert("firing", minutes=3)]])]
    )

    assert feed(engine, [parking(0, 1.0)]) == [first]
    assert feed(engine, [parking(1, 1.0)]) == []
    assert engine.open[first.key] is first
    assert [a.state for a in feed(engine, [parking(2, 1.0), parking(3, 1.0)])] == ["resolved", "firing"]
    assert (engine.raised, engine.resolved) == (2, 1)


def test_engine_drops_a_resolution_without_an_open_alert() -> None:
    engine = Engine([Scripted([[alert("resolved")], [alert("firing"), alert("resolved", "p-castello")]])])
    assert feed(engine, [parking(0, 1.0)]) == []
    assert [a.entity for a in feed(engine, [parking(1, 1.0)])] == ["p-mercatale"]
    assert (engine.raised, engine.resolved) == (1, 0)


def test_engine_keeps_entities_apart() -> None:
    a, b = alert("firing", "p-mercatale"), alert("firing", "p-castello")
    engine = Engine([Scripted([[a, b]])])
    assert feed(engine, [parking(0, 1.0)]) == [a, b]
    assert engine.raised == 2


def test_engine_tick_before_any_reading_does_nothing() -> None:
    assert Engine([staleness("gateway")]).tick() == []


# --- the rules file ---------------------------------------------------------------------------


def test_the_default_rules_file_loads() -> None:
    rules = load_rules()
    assert [(r.kind, r.name) for r in rules] == [
        ("staleness", "sensor-silent"),
        ("staleness", "gateway-silent"),
        ("threshold", "parking-full"),
        ("service_watchdog", "ingest-down"),
        ("seasonal", "parking-unusual"),
        ("seasonal", "traffic-flow-unusual"),
        ("worksite_impact", "traffic-speed-impact"),
    ]


def test_the_default_rules_run_the_default_detector_on_occupancy_flow_and_speed() -> None:
    scored = [r for r in load_rules() if isinstance(r, ScoredFieldRule)]
    assert {(r.config.kind.value, r.config.field) for r in scored} == {
        ("parking", "occupied"),
        ("traffic", "vehicles"),
        ("traffic", "speed_kmh"),
    }
    assert all(r.config.detector == "default" and r.detector_cls is get_detector(DEFAULT) for r in scored)


def rules_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(textwrap.dedent(body))
    return path


def load_error(tmp_path: Path, body: str) -> str:
    path = rules_file(tmp_path, body)
    with pytest.raises(RulesFileError) as info:
        load_rules(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    return message


def test_an_unknown_rule_kind_is_named_with_the_known_ones(tmp_path: Path) -> None:
    message = load_error(
        tmp_path,
        """
        rules:
          - {rule: staleness, name: a}
          - {rule: flood, name: b}
        """,
    )
    assert "rules[1].rule: unknown rule 'flood'; known: flatline, geofence, parking_saturation," in message


def test_a_bad_field_is_named_with_its_rule_index(tmp_path: Path) -> None:
    message = load_error(
        tmp_path,
        """
        rules:
          - {rule: staleness, name: a, silent_min: -5}
        """,
    )
    assert "rules[0].silent_min: " in message
    assert "-5" in message


def test_an_unknown_key_is_named_with_its_rule_index(tmp_path: Path) -> None:
    message = load_error(
        tmp_path,
        """
        rules:
          - {rule: staleness, name: a}
          - {rule: threshold, name: b, kind: parking, field: occupancy_pct, above: 95, hold: 15}
        """,
    )
    assert "rules[1].hold: " in message


def test_a_rule_level_error_names_the_rule_without_a_dangling_dot(tmp_path: Path) -> None:
    message = load_error(
        tmp_path,
        """
        rules:
          - {rule: threshold, name: b, kind: parking, field: occupancy, above: 95}
        """,
    )
    assert "rules[0]: " in message
    assert "field: 'occupancy' is not a field of parking" in message


def test_a_duplicate_rule_name_is_refused(tmp_path: Path) -> None:
    message = load_error(
        tmp_path,
        """
        rules:
          - {rule: staleness, name: silent}
          - {rule: staleness, name: silent, scope: gateway}
        """,
    )
    assert "rules[1].name: 'silent' is used twice" in message


def test_a_rules_file_without_a_rules_list_is_refused(tmp_path: Path) -> None:
    assert "rules" in load_error(tmp_path, "rulez: []\n")


# --- alerts -----------------------------------------------------------------------------------


def full_alert() -> Alert:
    return Alert(
        rule="parking-full",
        org=ORG,
        entity="p-mercatale",
        gateway="gw-mercatale",
        kind="parking",
        severity="warning",
        state="firing",
        since=T0,
        ts=at(15),
        message='occupancy_pct 97.5 above 95 for 15 min, "market day"',
        value=97.5,
        threshold=95,
    )


def test_alert_json_carries_rule_entity_state_value_and_threshold() -> None:
    body = orjson.loads(full_alert().to_json())
    assert body["rule"] == "parking-full"
    assert body["entity"] == "p-mercatale"
    assert body["state"] == "firing"
    assert (body["value"], body["threshold"]) == (97.5, 95)
    assert (body["since"], body["ts"]) == ("2026-11-24T08:00:00.000Z", "2026-11-24T08:15:00.000Z")
    assert full_alert().topic == "sr/v1/alerts/comune-prato/parking-full/p-mercatale"


def test_alert_line_carries_rule_entity_state_value_and_threshold() -> None:
    written = alert_line(full_alert())
    head, rest = written.split(" ", 1)  # tags hold no spaces; the message field does
    fields, ts = rest.rsplit(" ", 1)
    assert head == (
        "alerts,entity=p-mercatale,gateway=gw-mercatale,kind=parking,org=comune-prato,"
        "rule=parking-full,severity=warning,state=firing"
    )
    assert "value=97.5" in fields
    assert "threshold=95.0" in fields
    assert "active=1i" in fields
    assert r"\"market day\"" in fields
    assert int(ts) == int(at(15).timestamp()) * 10**9


def test_a_resolved_alert_line_is_inactive_and_may_lack_a_value() -> None:
    resolved = full_alert().resolved(at(30), "back to normal")
    written = alert_line(resolved)
    assert ",state=resolved " in written
    assert "active=0i" in written
    assert "value=" not in written
    assert orjson.loads(resolved.to_json())["value"] is None
