"""The simulators of Prato: places, daily curves, noise, and vehicles along their routes."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from statistics import mean

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.contract import is_id
from edge.simulators.fleet import Itinerary
from edge.simulators.parking import MAX_OCCUPANCY, MIN_OCCUPANCY, bay_is_occupied, facility_fields
from edge.simulators.places import (
    CITY_BOX,
    FACILITIES,
    ROUTES,
    SITES,
    ZONES,
    Route,
    all_points,
    bearing_deg,
    distance_m,
    in_centro_storico,
)
from edge.simulators.profiles import (
    PARKING_PROFILES,
    ROME,
    TRAFFIC_PROFILES,
    Curve,
    DayType,
    day_type,
    local_time,
    poisson,
    smooth,
    traffic_profile,
    unit,
)
from edge.simulators.traffic import counter_fields

TUESDAY = date(2026, 11, 24)
SATURDAY = date(2026, 11, 28)
SUNDAY = date(2026, 11, 29)


def at(day: date, hour: float) -> datetime:
    """An aware UTC instant at a local Prato hour of `day`."""
    local = datetime(day.year, day.month, day.day, tzinfo=ROME) + timedelta(hours=hour)
    return local.astimezone(UTC)


# Hypothesis takes naive bounds and attaches the zone from `timezones`.
instants = st.datetimes(
    min_value=datetime(2024, 1, 1),  # noqa: DTZ001
    max_value=datetime(2030, 12, 31),  # noqa: DTZ001
    timezones=st.just(UTC),
)


# Places


@pytest.mark.parametrize(("label", "point"), all_points(), ids=[label for label, _ in all_points()])
def test_every_place_lies_inside_the_city_box(label: str, point: tuple[float, float]) -> None:
    south, west, north, east = CITY_BOX
    assert south <= point[0] <= north, label
    assert west <= point[1] <= east, label
    assert (south, west, north, east) == (43.84, 11.04, 43.92, 11.16)


def test_places_refer_to_known_zones_and_profiles() -> None:
    for facility in FACILITIES.values():
        assert facility.zone in ZONES
        assert facility.profile in PARKING_PROFILES
        assert facility.capacity > 0
    for zone in ZONES.values():
        assert zone.profile in PARKING_PROFILES
    for site in SITES.values():
        assert 0 < site.heavy_share < 0.5
        assert site.speed_limit_kmh in {30, 50, 70, 90}


def test_slugs_are_ids_usable_in_topics_and_tags() -> None:
    for table in (FACILITIES, SITES, ROUTES, ZONES):
        for slug, item in table.items():
            assert is_id(slug)
            assert item.slug == slug


def test_the_well_known_places_sit_where_the_map_puts_them() -> None:
    assert FACILITIES["mercatale"].point == (43.8825, 11.1003)
    assert FACILITIES["stazione-centrale"].point == (43.8782, 11.1079)
    assert FACILITIES["serraglio"].point == (43.8868, 11.0952)
    assert FACILITIES["castello"].point == (43.8787, 11.0989)
    assert in_centro_storico(FACILITIES["castello"].point)
    assert not in_centro_storico(FACILITIES["ospedale"].point)


def test_a_route_with_a_repeated_point_is_refused() -> None:
    with pytest.raises(ValueError, match="repeated point"):
        Route("x", "x", "bus", ((43.88, 11.10), (43.88, 11.10)), (0, 0), is_loop=False)
    with pytest.raises(ValueError, match="dwell times"):
        Route("x", "x", "bus", ((43.88, 11.10), (43.87, 11.10)), (0,), is_loop=False)


def test_distance_and_bearing_agree_with_known_values() -> None:
    # One degree of latitude is ~111.2 km everywhere; due east is 90 degrees.
    assert distance_m((43.0, 11.0), (44.0, 11.0)) == pytest.approx(111_195, rel=1e-3)
    assert bearing_deg((43.88, 11.09), (43.88, 11.10)) == pytest.approx(90.0, abs=0.01)
    assert bearing_deg((43.88, 11.10), (43.87, 11.10)) == pytest.approx(180.0, abs=1e-6)
    assert bearing_deg((43.88, 11.10), (43.89, 11.0999)) > 359.0


# Profiles and local time


def test_local_time_follows_italian_daylight_saving() -> None:
    # 07:00 UTC is 08:00 in Prato in winter (CET) and 09:00 in summer (CEST).
    assert local_time(datetime(2026, 1, 13, 7, 0, tzinfo=UTC)) == (DayType.WEEKDAY, 8.0)
    assert local_time(datetime(2026, 7, 14, 7, 0, tzinfo=UTC)) == (DayType.WEEKDAY, 9.0)


def test_saturdays_sundays_and_public_holidays_have_their_own_day_type() -> None:
    assert day_type(TUESDAY) is DayType.WEEKDAY
    assert day_type(SATURDAY) is DayType.SATURDAY
    assert day_type(SUNDAY) is DayType.SUNDAY
    assert day_type(date(2026, 4, 6)) is DayType.SUNDAY  # Easter Monday
    assert day_type(date(2026, 12, 8)) is DayType.SUNDAY  # Immacolata, a Tuesday
    assert day_type(date(2026, 12, 26)) is DayType.SUNDAY  # Santo Stefano, Prato's patron


def test_a_curve_must_span_the_whole_day() -> None:
    with pytest.raises(ValueError, match="from 0 to 24"):
        Curve(((0, 0.1), (23, 0.2)))
    with pytest.raises(ValueError, match="from 0 to 24"):
        Curve(((0, 0.1), (12, 0.3), (12, 0.4), (24, 0.1)))


def test_traffic_morning_peak_is_far_above_the_flow_at_3am() -> None:
    for profile in TRAFFIC_PROFILES.values():
        curve = profile.weekday
        morning = max(curve.at(h / 4) for h in range(30, 37))  # 7:30 to 9:00
        assert morning > 10 * curve.at(3.0)


def test_traffic_has_morning_and_evening_peaks_on_weekdays() -> None:
    curve = traffic_profile("north").weekday
    assert curve.at(8.25) > curve.at(11.0) < curve.at(18.0)
    assert curve.at(8.25) == curve.peak() == curve.at(18.0)
    assert traffic_profile("inbound").weekday.at(8.25) > traffic_profile("inbound").weekday.at(18.0)
    assert traffic_profile("outbound").weekday.at(18.0) > traffic_profile("outbound").weekday.at(8.25)


def test_weekend_traffic_has_no_commuter_morning_peak() -> None:
    profile = traffic_profile("inbound")
    assert profile.at(at(SATURDAY, 8.25)) < 0.5 * profile.at(at(TUESDAY, 8.25))
    assert profile.at(at(SUNDAY, 8.25)) < profile.at(at(SATURDAY, 8.25))


def test_station_parking_is_a_commuter_plateau_on_weekdays_only() -> None:
    station = PARKING_PROFILES["station"]
    day = [station.at(at(TUESDAY, h)) for h in range(9, 17)]
    assert min(day) > 0.85
    assert station.at(at(TUESDAY, 3)) < 0.2
    assert station.at(at(SUNDAY, 11)) < 0.4


def test_centre_parking_is_fullest_on_saturday_evening() -> None:
    centre = PARKING_PROFILES["centre"]
    saturday_evening = centre.at(at(SATURDAY, 19))
    assert saturday_evening > centre.at(at(TUESDAY, 19)) > centre.at(at(TUESDAY, 9))
    assert saturday_evening == max(
        centre.at(at(d, h)) for d in (TUESDAY, SATURDAY, SUNDAY) for h in range(24)
    )


def test_hospital_parking_peaks_at_visiting_hours() -> None:
    hospital = PARKING_PROFILES["hospital"]
    for day in (TUESDAY, SUNDAY):
        assert hospital.at(at(day, 13)) > hospital.at(at(day, 16)) < hospital.at(at(day, 19))
        assert hospital.at(at(day, 13)) > hospital.at(at(day, 3)) + 0.4


@pytest.mark.parametrize("name", sorted(PARKING_PROFILES))
def test_parking_curves_stay_between_10_and_95_pct(name: str) -> None:
    profile = PARKING_PROFILES[name]
    for curve in (profile.weekday, profile.saturday, profile.sunday):
        values = [curve.at(h / 2) for h in range(49)]
        assert min(values) >= 0.10
        assert max(values) <= 0.95


# Noise


@given(seed=st.integers(0, 2**32), key=st.integers(-(2**62), 2**62), salt=st.text(max_size=8))
def test_hashed_noise_is_uniform_in_the_unit_interval_and_repeatable(seed: int, key: int, salt: str) -> None:
    u = unit(seed, "s-1", key, salt)
    assert 0.0 <= u < 1.0
    assert u == unit(seed, "s-1", key, salt)


@given(t_s=st.floats(0, 4e9), period_s=st.floats(1, 1e5))
def test_smooth_noise_stays_in_range(t_s: float, period_s: float) -> None:
    assert -1.0 <= smooth(1, "s-1", t_s, period_s) <= 1.0


def test_hashed_noise_is_not_constant() -> None:
    values = [unit(1, "s-1", k) for k in range(2000)]
    assert 0.45 < mean(values) < 0.55
    assert len(set(values)) == 2000


@pytest.mark.parametrize("mean_count", [0.5, 4.0, 30.0, 250.0])
def test_poisson_counts_have_the_requested_mean(mean_count: float) -> None:
    counts = [poisson(mean_count, unit(3, "p", k)) for k in range(4000)]
    assert mean(counts) == pytest.approx(mean_count, rel=0.06, abs=0.05)
    assert min(counts) >= 0


# Parking and traffic simulators


@settings(max_examples=200)
@given(ts=instants, seed=st.integers(0, 2**31))
def test_facility_occupancy_stays_realistic_and_within_capacity(ts: datetime, seed: int) -> None:
    for facility in FACILITIES.values():
        fields = facility_fields(seed, "p-1", facility, facility.capacity, ts)
        occupied, capacity = fields["occupied"], fields["capacity"]
        assert isinstance(occupied, int)
        assert capacity == facility.capacity
        assert round(MIN_OCCUPANCY * capacity) <= occupied <= round(MAX_OCCUPANCY * capacity)
        assert fields["occupancy_pct"] == round(100 * occupied / capacity, 1)


def test_a_bay_keeps_its_state_for_a_while_and_follows_its_zone() -> None:
    zone = ZONES["stazione"]
    day = [bay_is_occupied(5, f"bay-{n}", zone, at(TUESDAY, 11)) for n in range(400)]
    night = [bay_is_occupied(5, f"bay-{n}", zone, at(TUESDAY, 3)) for n in range(400)]
    assert sum(day) > 3 * sum(night)
    states = [bay_is_occupied(5, "bay-1", zone, at(TUESDAY, 8 + m / 60)) for m in range(600)]
    changes = sum(a != b for a, b in itertools.pairwise(states))
    assert changes <= 600 / 15


def test_simulated_flow_at_the_morning_peak_exceeds_the_flow_at_3am() -> None:
    site = SITES["declassata"]

    def vehicles(hour: float) -> float:
        return mean(
            float(
                counter_fields(
                    s, "t-1", at(TUESDAY, hour), site=site, direction="inbound", peak_vph=900, interval_s=300
                )["vehicles"]
            )
            for s in range(40)
        )

    assert vehicles(8.5) > 5 * vehicles(3.0)
    assert vehicles(8.5) == pytest.approx(900 / 12, rel=0.15)


def test_traffic_slows_down_at_the_peak_and_heavy_never_exceeds_vehicles() -> None:
    site = SITES["declassata"]
    peak = [
        counter_fields(s, "t-1", at(TUESDAY, 8.5), site=site, direction="in", peak_vph=1200, interval_s=300)
        for s in range(40)
    ]
    night = [
        counter_fields(s, "t-1", at(TUESDAY, 23), site=site, direction="in", peak_vph=1200, interval_s=300)
        for s in range(40)
    ]
    assert mean(float(f["speed_kmh"]) for f in peak) < mean(float(f["speed_kmh"]) for f in night) - 10
    assert mean(float(f["occupancy_pct"]) for f in peak) > mean(float(f["occupancy_pct"]) for f in night)
    for fields in peak + night:
        assert 0 <= int(fields["heavy"]) <= int(fields["vehicles"])


# Fleet


@pytest.mark.parametrize("slug", sorted(ROUTES))
def test_vehicles_stay_on_their_route_and_report_consistent_fixes(slug: str) -> None:
    route = ROUTES[slug]
    itinerary = Itinerary(route, 25.0, seed=1, sensor="v-1")
    south, west, north, east = CITY_BOX
    for k in range(0, round(itinerary.cycle_s), 7):
        fix = itinerary.fix_at(datetime(2026, 11, 24, tzinfo=UTC) + timedelta(seconds=k))
        assert south <= fix.lat <= north
        assert west <= fix.lon <= east
        assert 0 <= fix.heading_deg < 360
        assert 0 <= fix.speed_kmh < 40
    # The cycle repeats exactly.
    t = datetime(2026, 11, 24, 9, tzinfo=UTC)
    later = t + timedelta(seconds=itinerary.cycle_s)
    assert itinerary.fix_at(t).lat == pytest.approx(itinerary.fix_at(later).lat, abs=1e-9)


def test_a_bus_dwells_at_its_stops_and_crawls_in_the_centre() -> None:
    itinerary = Itinerary(ROUTES["lam-blu"], 25.0, seed=1, sensor="bus-1")
    stops = [leg for leg in itinerary.legs if leg.speed_kmh == 0]
    drives = [leg for leg in itinerary.legs if leg.speed_kmh > 0]
    assert len(stops) == 2 * (len(ROUTES["lam-blu"].points) - 1)
    central = [leg.speed_kmh for leg in drives if in_centro_storico(leg.a) and in_centro_storico(leg.b)]
    outer = [leg.speed_kmh for leg in drives if not in_centro_storico(leg.a) and not in_centro_storico(leg.b)]
    assert central
    assert outer
    assert max(central) < min(outer)


def test_vehicles_on_the_same_route_are_spread_along_it() -> None:
    t = datetime(2026, 11, 24, 9, tzinfo=UTC)
    fixes = {
        (round(f.lat, 4), round(f.lon, 4))
        for f in (Itinerary(ROUTES["lam-blu"], 25.0, seed=1, sensor=f"bus-{n}").fix_at(t) for n in range(6))
    }
    assert len(fixes) >= 4
