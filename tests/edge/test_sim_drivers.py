"""The simulated drivers: configs, cadence-independent readings, the contract, and anomalies."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import median
from typing import Annotated, Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import Field, TypeAdapter, ValidationError

from edge.contract import Batch, Reading, decode_strict, encode
from edge.drivers import DriverConfig, Source, SourceContext, all_drivers, get
from edge.drivers.simulated import (
    SimFleetConfig,
    SimParkingConfig,
    SimParkingSpotConfig,
    SimTrafficConfig,
)
from edge.drivers.simulated.source import MAX_INSTANTS_PER_POLL
from edge.simulators.clock import ManualClock
from edge.simulators.fleet import Itinerary
from edge.simulators.places import ROUTES, bearing_deg, distance_m

# Tuesday 24 November 2026, 00:00:07 in Prato: deliberately off the grid.
START = datetime(2026, 11, 23, 23, 0, 7, tzinfo=UTC)
CTX = SourceContext(org="comune-prato", gateway="gw-centro", seed=42, start=START)

CONFIGS: dict[str, dict[str, Any]] = {
    "sim_parking": {"driver": "sim_parking", "id": "p-mercatale", "place": "mercatale"},
    "sim_parking_spot": {
        "driver": "sim_parking_spot",
        "id": "bay-12",
        "street": "via-roma",
        "zone": "centro",
    },
    "sim_traffic": {
        "driver": "sim_traffic",
        "id": "t-declassata-1",
        "site": "declassata",
        "direction": "inbound",
    },
    "sim_fleet": {"driver": "sim_fleet", "id": "bus-7", "route": "lam-blu"},
}

SensorConfig = Annotated[
    SimParkingConfig | SimParkingSpotConfig | SimTrafficConfig | SimFleetConfig, Field(discriminator="driver")
]


def config(driver: str, **overrides: Any) -> DriverConfig:
    return get(driver).Config.model_validate({**CONFIGS[driver], **overrides})


def open_source(driver: str, ctx: SourceContext = CTX, **overrides: Any) -> Source:
    return get(driver).open(config(driver, **overrides), ctx)


def run(driver: str, hours: float, **overrides: Any) -> list[Reading]:
    """Every reading of a sensor over `hours` after START, polled once."""
    return open_source(driver, **overrides).poll(START + timedelta(hours=hours))


def minutes_after_start(reading: Reading) -> float:
    return (reading.ts - START).total_seconds() / 60


def test_all_simulated_drivers_are_registered_under_their_config_name() -> None:
    drivers = all_drivers()
    for name in CONFIGS:
        assert name in drivers
        assert drivers[name].name == name
        assert issubclass(drivers[name].Config, DriverConfig)
        assert drivers[name].Config.model_fields["driver"].default == name


def test_the_sample_configs_validate_through_a_union_discriminated_on_driver() -> None:
    sample = Path(__file__).parents[2] / "edge/drivers/simulated/sample.yaml"
    sensors = yaml.safe_load(sample.read_text())["sensors"]
    parsed = TypeAdapter(list[SensorConfig]).validate_python(sensors)
    assert {c.driver for c in parsed} == set(CONFIGS)
    for cfg in parsed:
        assert get(cfg.driver).open(cfg, CTX).poll(START + timedelta(minutes=10))


# Time: grid, cadence, determinism


@pytest.mark.parametrize("driver", sorted(CONFIGS))
def test_readings_sit_on_the_epoch_grid_from_the_first_instant_after_start(driver: str) -> None:
    readings = run(driver, 3)
    interval_s = config(driver).model_dump()["interval_s"]
    first = readings[0].ts
    assert first >= START
    assert first - timedelta(seconds=interval_s) < START
    assert all(r.ts.timestamp() % interval_s == 0 for r in readings)
    steps = {(b.ts - a.ts).total_seconds() for a, b in itertools.pairwise(readings)}
    assert steps == {interval_s}
    assert readings[-1].ts <= START + timedelta(hours=3)


@settings(max_examples=25, deadline=None)
@given(
    driver=st.sampled_from(sorted(CONFIGS)),
    steps_s=st.lists(st.floats(0, 1800, allow_nan=False), min_size=1, max_size=20),
)
def test_readings_do_not_depend_on_poll_cadence(driver: str, steps_s: list[float]) -> None:
    clock = ManualClock(START)
    source = open_source(driver)
    split: list[Reading] = list(source.poll(clock.now()))
    for step in steps_s:
        split += source.poll(clock.advance(step))
    whole = open_source(driver).poll(clock.now())
    assert split == whole
    assert len({r.ts for r in split}) == len(split)


def test_a_poll_with_an_earlier_now_returns_nothing_new() -> None:
    source = open_source("sim_parking")
    first = source.poll(START + timedelta(hours=1))
    assert first
    assert source.poll(START + timedelta(minutes=30)) == []
    assert source.poll(START + timedelta(hours=1)) == []


def test_same_seed_gives_the_same_readings_and_another_seed_other_readings() -> None:
    other = SourceContext(org=CTX.org, gateway=CTX.gateway, seed=43, start=START)
    end = START + timedelta(hours=6)
    for driver in CONFIGS:
        assert open_source(driver).poll(end) == open_source(driver).poll(end)
        assert [r.fields for r in open_source(driver).poll(end)] != [
            r.fields for r in open_source(driver, other).poll(end)
        ]


def test_a_later_start_reports_the_same_values_at_the_same_instants() -> None:
    later = SourceContext(org=CTX.org, gateway=CTX.gateway, seed=CTX.seed, start=START + timedelta(hours=2))
    end = START + timedelta(hours=4)
    early = {r.ts: r for r in open_source("sim_traffic").poll(end)}
    for reading in open_source("sim_traffic", later).poll(end):
        assert reading == early[reading.ts]


def test_a_long_pause_is_caught_up_in_capped_polls_without_losing_a_reading() -> None:
    source = open_source("sim_fleet", interval_s=1)
    now = START + timedelta(hours=6)
    polls = [source.poll(now) for _ in range(4)]
    assert [len(p) for p in polls] == [MAX_INSTANTS_PER_POLL, MAX_INSTANTS_PER_POLL, 1601, 0]
    caught_up = [r.ts for p in polls for r in p]
    assert len(set(caught_up)) == 6 * 3600 + 1
    assert caught_up == sorted(caught_up)
    assert caught_up[-1] == now


def test_a_closed_source_reports_nothing() -> None:
    source = open_source("sim_parking")
    source.close()
    assert source.poll(START + timedelta(hours=1)) == []


def test_a_naive_now_is_refused() -> None:
    source = open_source("sim_parking")
    with pytest.raises(ValueError, match="timezone-aware"):
        source.poll(datetime(2026, 11, 24, 12, 0))  # noqa: DTZ001 (the point of the test)


# The contract


@pytest.mark.parametrize("driver", sorted(CONFIGS))
def test_every_reading_survives_a_round_trip_through_the_wire_contract(driver: str) -> None:
    readings = run(driver, 24)
    assert readings
    for reading in readings:
        assert reading.org == CTX.org
        assert reading.gateway == CTX.gateway
        assert reading.sensor == CONFIGS[driver]["id"]
    for i in range(0, len(readings), 1000):
        batch = Batch.of(readings[i : i + 1000], seq=i, sent_at=START)
        assert decode_strict(encode(batch)) == batch


def test_field_types_and_rounding_follow_the_contract() -> None:
    for reading in run("sim_parking", 24):
        fields = reading.fields
        assert type(fields["occupied"]) is int
        assert type(fields["capacity"]) is int
        assert fields["occupancy_pct"] == round(fields["occupancy_pct"], 1)
        assert reading.tags == {"zone": "centro"}
    for reading in run("sim_traffic", 24):
        assert type(reading.fields["vehicles"]) is int
        assert type(reading.fields["heavy"]) is int
        assert reading.fields["interval_s"] == 300
        assert reading.tags == {"site": "declassata", "lane": "1", "direction": "inbound"}
    for reading in run("sim_fleet", 3):
        assert reading.fields["lat"] == round(reading.fields["lat"], 6)
        assert reading.fields["lon"] == round(reading.fields["lon"], 6)
        assert 0 <= reading.fields["heading_deg"] < 360
        assert reading.tags == {"vehicle_type": "bus", "route": "lam-blu"}
    for reading in run("sim_parking_spot", 3):
        assert type(reading.fields["occupied"]) is bool
        assert reading.tags == {"zone": "centro", "street": "via-roma"}


def test_parking_capacity_can_be_overridden() -> None:
    readings = run("sim_parking", 24, capacity=40)
    assert {r.fields["capacity"] for r in readings} == {40}
    assert all(4 <= r.fields["occupied"] <= 38 for r in readings)


def test_parking_occupancy_is_realistic_and_differs_on_saturday() -> None:
    tuesday = run("sim_parking", 24, place="stazione-centrale")
    saturday_ctx = SourceContext(
        org=CTX.org, gateway=CTX.gateway, seed=CTX.seed, start=START + timedelta(days=4)
    )
    saturday = open_source("sim_parking", saturday_ctx, place="stazione-centrale").poll(
        saturday_ctx.start + timedelta(hours=24)
    )
    assert all(10 <= r.fields["occupancy_pct"] <= 95 for r in tuesday + saturday)
    # The station fills with commuters on a weekday morning, not on a Saturday.
    at_11 = 11 * 60
    assert tuesday[at_11].fields["occupancy_pct"] > 80
    assert saturday[at_11].fields["occupancy_pct"] < 60


def test_traffic_morning_peak_exceeds_the_flow_at_3am() -> None:
    readings = run("sim_traffic", 24, peak_vph=1200)

    def flow(hour_from: float, hour_to: float) -> int:
        return sum(
            r.fields["vehicles"] for r in readings if hour_from * 60 < minutes_after_start(r) <= hour_to * 60
        )

    assert flow(7.5, 9) > 8 * flow(2.5, 4)


# Fleet motion


def test_fleet_speed_implied_by_successive_positions_matches_the_reported_speed() -> None:
    readings = run("sim_fleet", 2, interval_s=5)
    ratios = []
    for a, b in itertools.pairwise(readings):
        fa, fb = a.fields, b.fields
        if fa["speed_kmh"] > 0 and fb["speed_kmh"] > 0 and fa["heading_deg"] == fb["heading_deg"]:
            implied_kmh = distance_m((fa["lat"], fa["lon"]), (fb["lat"], fb["lon"])) / 5 * 3.6
            ratios.append(implied_kmh / ((fa["speed_kmh"] + fb["speed_kmh"]) / 2))
    assert len(ratios) > 500
    assert median(ratios) == pytest.approx(1.0, abs=0.02)
    assert sum(abs(r - 1) < 0.15 for r in ratios) / len(ratios) > 0.95


def test_fleet_heading_is_the_bearing_between_successive_positions() -> None:
    readings = run("sim_fleet", 2, interval_s=5)
    checked = 0
    for a, b in itertools.pairwise(readings):
        fa, fb = a.fields, b.fields
        if fa["speed_kmh"] > 0 and fb["speed_kmh"] > 0 and fa["heading_deg"] == fb["heading_deg"]:
            bearing = bearing_deg((fa["lat"], fa["lon"]), (fb["lat"], fb["lon"]))
            assert abs((bearing - fa["heading_deg"] + 180) % 360 - 180) < 3
            checked += 1
    assert checked > 500


def test_a_bus_goes_back_and_forth_between_its_termini() -> None:
    readings = run("sim_fleet", 3)
    points = ROUTES["lam-blu"].points
    visits = [
        end
        for r in readings
        for end in (0, -1)
        if distance_m((r.fields["lat"], r.fields["lon"]), points[end]) < 1
    ]
    assert 0 in visits
    assert -1 in visits
    moving = [r for r in readings if r.fields["speed_kmh"] > 0]
    stopped = [r for r in readings if r.fields["speed_kmh"] == 0]
    assert moving
    assert stopped


# Anomalies


def window_of(reading: Reading, after_min: float, for_min: float) -> bool:
    return after_min <= minutes_after_start(reading) < after_min + for_min


def anomalous_run(
    driver: str, kind: str, hours: float = 6, **overrides: Any
) -> tuple[list[Reading], list[Reading]]:
    clean = run(driver, hours, **overrides)
    faulty = run(driver, hours, anomalies=[{"kind": kind, "after_min": 120, "for_min": 90}], **overrides)
    return clean, faulty


def split_by_window(
    clean: list[Reading], faulty: list[Reading]
) -> tuple[list[Reading], list[Reading], list[Reading]]:
    """(clean readings outside the window, faulty outside, faulty inside)."""
    return (
        [r for r in clean if not window_of(r, 120, 90)],
        [r for r in faulty if not window_of(r, 120, 90)],
        [r for r in faulty if window_of(r, 120, 90)],
    )


@pytest.mark.parametrize(
    ("driver", "kind"),
    [
        ("sim_parking", "stuck"),
        ("sim_parking", "silent"),
        ("sim_parking", "zero"),
        ("sim_parking", "saturate"),
        ("sim_parking_spot", "stuck"),
        ("sim_parking_spot", "silent"),
        ("sim_parking_spot", "zero"),
        ("sim_parking_spot", "saturate"),
        ("sim_traffic", "stuck"),
        ("sim_traffic", "silent"),
        ("sim_traffic", "zero"),
        ("sim_fleet", "stuck"),
        ("sim_fleet", "silent"),
        ("sim_fleet", "halted"),
    ],
)
def test_each_anomaly_has_its_effect_in_its_window_and_none_outside(driver: str, kind: str) -> None:
    overrides = {"interval_s": 60} if driver == "sim_traffic" else {}
    clean, faulty = anomalous_run(driver, kind, **overrides)
    clean_outside, faulty_outside, inside = split_by_window(clean, faulty)
    assert faulty_outside == clean_outside
    assert faulty_outside
    if kind == "silent":
        assert inside == []
        return
    assert len(inside) == len(clean) - len(clean_outside)
    clean_inside = [r for r in clean if window_of(r, 120, 90)]
    assert [r.fields for r in inside] != [r.fields for r in clean_inside]
    fields = [r.fields for r in inside]
    if kind == "stuck":
        before = max((r for r in clean if minutes_after_start(r) < 120), key=lambda r: r.ts)
        assert all(f == before.fields for f in fields)
    elif kind == "zero" and driver == "sim_traffic":
        assert all(f["vehicles"] == f["heavy"] == 0 and f["occupancy_pct"] == 0 for f in fields)
    elif kind == "zero" and driver == "sim_parking":
        assert all(f["occupied"] == 0 and f["occupancy_pct"] == 0 for f in fields)
    elif kind == "saturate" and driver == "sim_parking":
        assert all(f["occupied"] == f["capacity"] and f["occupancy_pct"] == 100 for f in fields)
    elif driver == "sim_parking_spot":
        assert all(f["occupied"] is (kind == "saturate") for f in fields)
    elif kind == "halted":
        itinerary = Itinerary(ROUTES["lam-blu"], 25.0, seed=CTX.seed, sensor=CONFIGS[driver]["id"])
        where = itinerary.fix_at(START + timedelta(minutes=120)).fields()
        assert all(f["speed_kmh"] == 0 for f in fields)
        assert all((f["lat"], f["lon"]) == (where["lat"], where["lon"]) for f in fields)
    else:
        pytest.fail(f"no check for {kind} on {driver}")


def test_an_anomaly_without_an_end_lasts_until_the_run_ends() -> None:
    readings = run("sim_parking", 6, anomalies=[{"kind": "saturate", "after_min": 60}])
    late = [r for r in readings if minutes_after_start(r) >= 60]
    assert late
    assert all(r.fields["occupancy_pct"] == 100 for r in late)


def test_stuck_from_the_start_freezes_on_the_first_value() -> None:
    readings = run("sim_traffic", 3, anomalies=[{"kind": "stuck", "after_min": 0}])
    assert len({tuple(r.fields.items()) for r in readings}) == 1


def test_stuck_after_a_silence_repeats_the_last_value_before_the_silence() -> None:
    anomalies = [
        {"kind": "silent", "after_min": 60, "for_min": 30},
        {"kind": "stuck", "after_min": 90, "for_min": 30},
    ]
    clean = run("sim_parking", 3)
    faulty = run("sim_parking", 3, anomalies=anomalies)
    last_before = max((r for r in clean if minutes_after_start(r) < 60), key=lambda r: r.ts)
    stuck = [r for r in faulty if 90 <= minutes_after_start(r) < 120]
    assert stuck
    assert all(r.fields == last_before.fields for r in stuck)


# Config errors name the field and the value


@pytest.mark.parametrize(
    ("driver", "field", "value"),
    [
        ("sim_parking", "place", "piazza-san-marco"),
        ("sim_parking_spot", "zone", "firenze"),
        ("sim_traffic", "site", "via-nowhere"),
        ("sim_fleet", "route", "lam-viola"),
    ],
)
def test_an_unknown_place_is_refused_naming_the_field_and_the_value(
    driver: str, field: str, value: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        config(driver, **{field: value})
    error = caught.value.errors()[0]
    assert error["loc"] == (field,)
    assert error["input"] == value
    assert field in str(caught.value)
    assert repr(value) in str(caught.value)
    assert "known:" in str(caught.value)


@pytest.mark.parametrize(
    ("driver", "kind"),
    [
        ("sim_parking", "halted"),
        ("sim_parking_spot", "halted"),
        ("sim_traffic", "saturate"),
        ("sim_traffic", "halted"),
        ("sim_fleet", "zero"),
        ("sim_fleet", "saturate"),
    ],
)
def test_an_anomaly_that_makes_no_sense_for_the_driver_is_refused(driver: str, kind: str) -> None:
    with pytest.raises(ValidationError) as caught:
        config(driver, anomalies=[{"kind": "stuck", "after_min": 1}, {"kind": kind, "after_min": 5}])
    error = caught.value.errors()[0]
    assert error["loc"] == ("anomalies", 1, "kind")
    assert error["input"] == kind
    assert "does not apply" in str(caught.value)
    assert driver in str(caught.value)


@pytest.mark.parametrize(
    ("anomaly", "loc"),
    [
        ({"kind": "flicker", "after_min": 1}, ("anomalies", 0, "kind")),
        ({"kind": "stuck", "after_min": -1}, ("anomalies", 0, "after_min")),
        ({"kind": "stuck", "after_min": 1, "for_min": 0}, ("anomalies", 0, "for_min")),
        ({"kind": "stuck", "after_min": 1, "until": 5}, ("anomalies", 0, "until")),
    ],
)
def test_a_malformed_anomaly_is_refused_at_its_path(anomaly: dict[str, Any], loc: tuple[Any, ...]) -> None:
    with pytest.raises(ValidationError) as caught:
        config("sim_parking", anomalies=[anomaly])
    assert caught.value.errors()[0]["loc"] == loc


@pytest.mark.parametrize(
    ("driver", "overrides", "loc"),
    [
        ("sim_parking", {"colour": "red"}, ("colour",)),
        ("sim_parking", {"capacity": 0}, ("capacity",)),
        ("sim_parking", {"interval_s": 0}, ("interval_s",)),
        ("sim_parking_spot", {"lat": 43.88}, ()),
        ("sim_parking_spot", {"lat": 45.0, "lon": 11.1}, ()),
        ("sim_parking_spot", {"street": "Via Roma"}, ("street",)),
        ("sim_traffic", {"direction": None}, ("direction",)),
        ("sim_traffic", {"interval_s": 7200}, ("interval_s",)),
        ("sim_fleet", {"speed_kmh": 0}, ("speed_kmh",)),
        ("sim_fleet", {"id": "Bus 7"}, ("id",)),
    ],
)
def test_bad_options_are_refused_at_their_path(
    driver: str, overrides: dict[str, Any], loc: tuple[str, ...]
) -> None:
    with pytest.raises(ValidationError) as caught:
        config(driver, **overrides)
    assert caught.value.errors()[0]["loc"] == loc


def test_a_fleet_vehicle_type_defaults_to_its_route_and_can_be_overridden() -> None:
    assert run("sim_fleet", 0.1)[0].tags["vehicle_type"] == "bus"
    assert run("sim_fleet", 0.1, route="gas-squadra-1")[0].tags["vehicle_type"] == "gas"
    assert run("sim_fleet", 0.1, vehicle_type="minibus")[0].tags["vehicle_type"] == "minibus"


def test_a_driver_refuses_another_drivers_config() -> None:
    with pytest.raises(TypeError, match="SimFleetConfig expected, got SimParkingConfig"):
        get("sim_fleet").open(config("sim_parking"), CTX)
