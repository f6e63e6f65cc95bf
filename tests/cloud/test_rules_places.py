"""Rules about places: geofence, worksite impact (expected vs anomaly), parking saturation hints,
a worksite on a bus route."""

from __future__ import annotations

import math
import random
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from cloud.core.alerts import Alert
from cloud.core.geo import Geography, GeoJsonWorksites, load_sites
from cloud.core.transit import DEFAULT_WITHIN_M, ListedNetwork, TransitImpact
from cloud.rules.base import Clocks
from cloud.rules.engine import Engine, load_rules
from cloud.rules.kinds.geofence import Geofence, GeofenceConfig
from cloud.rules.kinds.parking_saturation import ParkingSaturation, ParkingSaturationConfig
from cloud.rules.kinds.worksite_impact import WorksiteImpact, WorksiteImpactConfig
from cloud.rules.kinds.worksite_on_route import WorksiteOnRoute, WorksiteOnRouteConfig
from edge.contract import Reading, SensorKind

T0 = datetime(2026, 11, 2, tzinfo=UTC)
# A square of about 110 m x 80 m around Viale della Repubblica's counter (43.8680, 11.1060).
SQUARE = [[11.1055, 43.8675], [11.1065, 43.8675], [11.1065, 43.8685], [11.1055, 43.8685], [11.1055, 43.8675]]


def worksites(planned: bool = True, starts: datetime = T0 + timedelta(days=14)) -> dict[str, Any]:
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [SQUARE]},
                "properties": {
                    "id": "ws-1",
                    "name": "Repubblica resurfacing",
                    "starts_at": starts.isoformat(),
                    "ends_at": (starts + timedelta(days=3)).isoformat(),
                    "planned": planned,
                },
            }
        ],
    }


def geo(**kw: Any) -> Geography:
    return Geography(sites=load_sites(), worksites=GeoJsonWorksites(worksites(**kw)))


def fix(minutes: float, lat: float, lon: float, speed: float = 20.0, sensor: str = "v-bus-101") -> Reading:
    return Reading(
        kind=SensorKind.FLEET, org="comune-prato", gateway="gw-fleet-at", sensor=sensor,
        ts=T0 + timedelta(days=14, minutes=minutes),
        fields={"lat": lat, "lon": lon, "speed_kmh": speed, "heading_deg": 90.0},
    )  # fmt: skip


def feed(rule: Any, readings: list[Reading]) -> list[Alert]:
    out: list[Alert] = []
    for r in readings:
        out.extend(rule.observe(r))
    return out


def test_a_vehicle_entering_an_active_worksite_fires_and_leaving_resolves() -> None:
    rule = Geofence(GeofenceConfig(name="in-worksite", check="inside_worksite"))
    rule.bind(geo())
    assert feed(rule, [fix(0, 43.8660, 11.1060)]) == []
    (fired,) = rule.observe(fix(1, 43.8680, 11.1060))
    assert fired.message == "inside active worksite Repubblica resurfacing"
    assert fired.context is not None
    assert fired.context["worksites"][0]["id"] == "ws-1"
    (resolved,) = rule.observe(fix(2, 43.8700, 11.1060))
    assert resolved.state == "resolved"


def test_a_worksite_outside_its_time_window_does_not_count() -> None:
    rule = Geofence(GeofenceConfig(name="in-worksite", check="inside_worksite"))
    rule.bind(geo(starts=T0 + timedelta(days=30)))
    assert rule.observe(fix(1, 43.8680, 11.1060)) == []


def test_a_vehicle_out_of_its_service_area_fires() -> None:
    area = {"type": "Polygon", "coordinates": [SQUARE]}
    rule = Geofence(GeofenceConfig(name="out-of-area", check="outside_area", area=area))
    assert rule.observe(fix(0, 43.8680, 11.1060)) == []
    (fired,) = rule.observe(fix(1, 43.8800, 11.1060))
    assert fired.message.startswith("outside its service area")


def test_a_vehicle_halted_inside_a_worksite_fires_after_the_halt_time_only() -> None:
    rule = Geofence(GeofenceConfig(name="halted", check="halted", halted_min=10, only_in_worksite=True))
    rule.bind(geo())
    assert feed(rule, [fix(m, 43.8680, 11.1060, speed=0.0) for m in range(10)]) == []
    (fired,) = rule.observe(fix(10, 43.8680, 11.1060, speed=0.0))
    assert fired.message == "halted inside a worksite for 10 min at 43.86800,11.10600"
    assert feed(rule, [fix(m, 43.8000, 11.1060, speed=0.0, sensor="v-bus-102") for m in range(30)]) == []
    (moving,) = rule.observe(fix(11, 43.8681, 11.1060, speed=25.0))
    assert moving.state == "resolved"


def traffic(minutes: float, speed: float, sensor: str = "t-repubblica-in") -> Reading:
    return Reading(
        kind=SensorKind.TRAFFIC, org="comune-prato", gateway="gw-traffico", sensor=sensor,
        ts=T0 + timedelta(minutes=minutes),
        fields={"vehicles": 100, "heavy": 5, "interval_s": 300, "speed_kmh": speed, "occupancy_pct": 10.0},
    )  # fmt: skip


def ordinary_speed(minutes: float, rnd: random.Random) -> float:
    return 45 - 15 * max(0.0, math.sin(2 * math.pi * ((minutes % 1440) - 360) / 1440)) + rnd.gauss(0, 1.0)


def impact_rule(planned: bool | None) -> WorksiteImpact:
    rule = WorksiteImpact(
        WorksiteImpactConfig(name="impact", kind=SensorKind.TRAFFIC, field="speed_kmh", severity="warning")
    )
    rule.bind(
        geo(planned=planned)
        if planned is not None
        else Geography(sites=load_sites(), worksites=geo().worksites)
    )
    return rule


def drop_after_two_weeks(rule: WorksiteImpact, sensor: str = "t-repubblica-in") -> list[Alert]:
    rnd = random.Random(4)
    quiet = feed(rule, [traffic(m, ordinary_speed(m, rnd), sensor) for m in range(0, 14 * 1440, 5)])
    assert quiet == []
    start = 14 * 1440 + 600
    return feed(rule, [traffic(start + m, 8.0 + rnd.gauss(0, 0.5), sensor) for m in range(0, 60, 5)])


def test_a_traffic_drop_beside_a_planned_worksite_is_expected_impact() -> None:
    (fired,) = drop_after_two_weeks(impact_rule(planned=True))
    assert fired.context is not None
    assert fired.context["classification"] == "expected_impact"
    assert fired.context["where"]["name"] == "Viale della Repubblica at Centro Pecci"
    assert fired.context["baseline"] > 25  # the usual speed, against 8 km/h now
    assert fired.severity == "info"
    assert "expected impact of worksite Repubblica resurfacing" in fired.message


def test_the_same_drop_without_a_planned_worksite_is_an_anomaly() -> None:
    (fired,) = drop_after_two_weeks(impact_rule(planned=False))
    assert fired.context is not None
    assert fired.context["classification"] == "anomaly"
    assert fired.severity == "warning"
    (far,) = drop_after_two_weeks(impact_rule(planned=True), sensor="t-galilei-in")  # 2 km away
    assert far.context is not None
    assert far.context["classification"] == "anomaly"


def parking(minutes: float, sensor: str, occupied: int, capacity: int) -> Reading:
    return Reading(
        kind=SensorKind.PARKING, org="comune-prato", gateway="gw-mercatale", sensor=sensor,
        ts=T0 + timedelta(minutes=minutes),
        fields={"occupied": occupied, "capacity": capacity, "occupancy_pct": 100 * occupied / capacity},
    )  # fmt: skip


def test_a_full_car_park_names_the_nearest_facility_with_free_spaces_and_a_park_and_ride() -> None:
    rule = ParkingSaturation(ParkingSaturationConfig(name="saturation", hold_min=10))
    rule.bind(geo())
    feed(
        rule,
        [
            parking(0, "p-castello", 119, 120),  # full: no hint
            parking(0, "p-macelli", 100, 250),  # 1.3 km from Mercatale
            parking(0, "p-stazione-centrale", 100, 380),  # 620 m, a park and ride
            parking(0, "p-interporto", 10, 600),  # far
        ],
    )
    assert feed(rule, [parking(0, "p-mercatale", 515, 520)]) == []
    (fired,) = rule.observe(parking(10, "p-mercatale", 516, 520))
    assert fired.context is not None
    hint = fired.context["hint"]
    assert hint["nearest"]["sensor"] == "p-stazione-centrale"
    assert hint["park_and_ride"]["sensor"] == "p-stazione-centrale"
    assert "nearest with free spaces: Parcheggio Stazione Centrale (280 free" in fired.message


def test_the_rules_file_binds_sites_and_a_geojson_worksites_file(tmp_path: Path) -> None:
    (tmp_path / "worksites.geojson").write_bytes(orjson.dumps(worksites()))
    path = tmp_path / "rules.yaml"
    path.write_text(
        textwrap.dedent(
            """
            worksites: worksites.geojson
            rules:
              - {rule: geofence, name: in-worksite, check: inside_worksite}
            """
        )
    )
    engine = Engine(load_rules(path))
    (fired,) = engine.observe(fix(0, 43.8680, 11.1060))
    assert fired.rule == "in-worksite"


class ImportedLater(ListedNetwork):
    """A bus network whose feed is imported after the rules service started (as in the demo)."""

    is_imported = False

    def impact(self, geometry: Any, within_m: float = DEFAULT_WITHIN_M) -> TransitImpact:
        return super().impact(geometry, within_m) if self.is_imported else TransitImpact()


def test_a_bus_route_imported_after_the_rules_started_is_found_on_a_live_worksite() -> None:
    # A route along Viale della Repubblica, through the worksite's square.
    network = ImportedLater(
        {"R": {"name": "Linea R", "line": [[11.1040, 43.8680], [11.1080, 43.8680]]}}, {}, []
    )
    rule = WorksiteOnRoute(WorksiteOnRouteConfig(name="worksite-on-bus-route"))
    live = GeoJsonWorksites(worksites(planned=False, starts=T0 - timedelta(days=1)))
    rule.bind(Geography(sites=load_sites(), worksites=live, transit=network))
    assert live.active(T0)  # the worksite is live
    assert rule.tick(Clocks(now=T0)) == []  # no network yet

    network.is_imported = True
    fired = rule.tick(Clocks(now=T0 + timedelta(seconds=60)))

    assert {(a.org, a.entity, a.state) for a in fired} == {
        ("comune-prato", "ws-1--r", "firing"),
        ("autolinee-toscane", "ws-1--r", "firing"),
    }


def test_a_worksite_on_a_route_is_told_at_the_first_reading_of_a_replay_behind_the_wall_clock() -> None:
    # Before any reading the rule looks at wall time; the demo's gateways then replay from an
    # hour earlier, and their event time is what the next look uses.
    network = ImportedLater(
        {"R": {"name": "Linea R", "line": [[11.1040, 43.8680], [11.1080, 43.8680]]}}, {}, []
    )
    rule = WorksiteOnRoute(WorksiteOnRouteConfig(name="worksite-on-bus-route"))
    live = GeoJsonWorksites(worksites(planned=False, starts=T0 - timedelta(days=1)))
    rule.bind(Geography(sites=load_sites(), worksites=live, transit=network))
    assert rule.tick(Clocks(wall=T0 + timedelta(hours=1))) == []  # the network not imported yet
    network.is_imported = True

    fired = rule.tick(Clocks(now=T0, wall=T0 + timedelta(hours=1, seconds=1)))

    assert {a.org for a in fired} == {"comune-prato", "autolinee-toscane"}
    assert rule.tick(Clocks(now=T0 + timedelta(seconds=30), wall=T0 + timedelta(hours=1, seconds=2))) == []
