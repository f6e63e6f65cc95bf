"""NGSI-LD out: our entities in the Smart Data Models, checked against the official schemas."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.apps.cli.exchange import group
from cloud.apps.console import known_sites
from cloud.apps.exchange import installed
from cloud.core.geo import ServiceAreas
from cloud.core.worksites import WorksiteStatus as Status
from cloud.dev.demo_data import load_demo
from cloud.exchange.catalogue import Catalogue, Installed, gather, installed_sensors
from cloud.exchange.citywork import worksite_fields
from cloud.exchange.entities import Place, Thing, city_work, entities_of
from cloud.exchange.export import Export, Form, export
from cloud.exchange.forms import key_values
from cloud.exchange.readings import to_reading
from cloud.io.influx.client import InfluxClient
from cloud.io.influx.latest import InfluxLatest
from cloud.worksites.models import Worksite, WorksiteCreate
from cloud.worksites.store import WorksiteStore
from edge.contract import KINDS, GatewayMeta, Reading, SensorKind, format_ts
from edge.contract.ids import TAG_VALUE_PATTERN
from edge.contract.kinds import NOT_ABOVE

from .smart_data_models import example, problems
from support import REPO

SENSOR_TYPES = {"OffStreetParking", "ParkingSpot", "TrafficFlowObserved", "Vehicle", "FleetVehicleStatus"}


@pytest.fixture(scope="module")
def demo_worksites(tmp_path_factory: pytest.TempPathFactory) -> list[Worksite]:
    """Prato's demo worksites, from a registry of their own."""
    path = tmp_path_factory.mktemp("registry") / "worksites.db"
    store = WorksiteStore.open(f"sqlite:///{path}", areas=ServiceAreas.load())
    load_demo(store, datetime.now(UTC))
    yield store.search()
    store.close()


@pytest.fixture(scope="module")
def demo_export(influxd: Any, demo_data_db: str, demo_worksites: list[Worksite]) -> Iterator[Export]:
    """The export of the demo's data: gateway configs (kinds as their gateways declare them), an
    hour of readings, the partners' car parks and vans, the demo worksites."""
    influx = InfluxClient(influxd.url, demo_data_db)
    catalogue = gather(
        installed=installed(REPO / "firmware_configs"),
        latest=InfluxLatest(influx),
        sites=known_sites(influx),
        worksites=demo_worksites,
    )
    yield export(catalogue)
    influx.close()


@pytest.mark.parametrize("form", list(Form))
def test_every_entity_exported_from_the_demo_validates_against_its_official_schema(
    demo_export: Export, form: Form
) -> None:
    documents = demo_export.documents(form)

    assert {d["type"] for d in documents} == SENSOR_TYPES | {"CityWork"}
    assert [p for d in documents for p in problems(d)] == []


# The bus operator's readings are not mapped: its own GTFS and GTFS-Realtime feeds are the open
# format buses are exchanged in (docs/exchange.md); the export says so on stderr, by reason.
NOT_MAPPED = {
    f"{k.value} readings are not exported" for k in (SensorKind.TRANSIT_VEHICLE, SensorKind.TRANSIT_DELAY)
}


def test_the_demo_export_leaves_out_nothing_it_has_data_for_but_the_bus_operators_readings(
    demo_export: Export,
) -> None:
    assert [s for s in demo_export.skipped if s.reason not in NOT_MAPPED] == []
    assert {s.reason for s in demo_export.skipped} == NOT_MAPPED  # the demo's buses and stops


def test_the_demo_export_includes_what_partners_sent_under_their_own_names(demo_export: Export) -> None:
    providers = {e.attrs["dataProvider"] for e in demo_export.entities}
    partners_parks = [e for e in demo_export.entities if e.attrs["dataProvider"] == "comune-calenzano"]

    assert {"comune-calenzano", "open-fiber"} <= providers
    assert {e.type for e in partners_parks} == {"OffStreetParking"}
    assert all(e.attrs["location"]["type"] == "Point" for e in partners_parks)  # where they said


def test_the_normalized_form_reads_back_as_the_key_values_form(demo_export: Export) -> None:
    for entity in demo_export.entities:
        normalized = entity.normalized()

        assert key_values(normalized) == entity.key_values()
        assert all(a.get("observedAt") for name, a in normalized.items() if name in entity.observed_at)


def test_every_entity_carries_the_model_s_context_then_the_core_context(demo_export: Export) -> None:
    for document in demo_export.documents(Form.NORMALIZED):
        domain = "dataModel.Parking" if "Parking" in document["type"] else "dataModel.Transportation"
        assert domain in document["@context"][0]
        assert document["@context"][-1] == "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"


def _positions(geometry: dict[str, Any]) -> list[list[float]]:
    coords: Any = geometry["coordinates"]
    while isinstance(coords[0], list) and isinstance(coords[0][0], list):
        coords = [p for part in coords for p in part]
    return coords if isinstance(coords[0], list) else [coords]


def test_coordinates_are_longitude_then_latitude_inside_prato(demo_export: Export) -> None:
    """GeoJSON is [lon, lat] (RFC 7946 §3.1.1): checked against Prato, not against the official
    CityWork example, which writes [lat, lon] (its first number is a latitude, 40-odd degrees)."""
    area = ServiceAreas.load().bbox
    seen = 0
    for document in demo_export.documents(Form.KEY_VALUES):
        for geometry in (document[name] for name in ("location", "lastKnownPosition") if name in document):
            for lon, lat in (p[:2] for p in _positions(geometry)):
                assert area.min_lon <= lon <= area.max_lon, (document["id"], lon, lat)
                assert area.min_lat <= lat <= area.max_lat, (document["id"], lon, lat)
                seen += 1
    official = _positions(example("CityWork")["location"])
    assert seen > 50
    assert not area.min_lon <= official[0][0] <= area.max_lon  # the example's axis order is swapped


def test_export_with_nothing_configured_writes_the_demo_s_entities_as_a_key_values_array(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    for name in ("SITROOM_INFLUX_URL", "SITROOM_WORKSITES_DB"):
        monkeypatch.delenv(name, raising=False)
    out = tmp_path / "entities.json"

    result = CliRunner().invoke(group, ["export", "--format", "ngsi-ld", "-o", str(out)])

    assert result.exit_code == 0, result.output
    documents = json.loads(out.read_text())
    assert {d["type"] for d in documents} >= {"OffStreetParking", "ParkingSpot", "CityWork"}
    assert all(not isinstance(d.get("name"), dict) for d in documents)  # keyValues: plain values
    assert [p for d in documents for p in problems(d)] == []
    assert "exported" in result.output


def test_installed_sensors_take_their_kind_from_what_their_gateway_declares_bays_of_a_source_included(
    tmp_path: Path,
) -> None:
    config = tmp_path / "gw-lora.yaml"
    config.write_text(
        """
id: gw-lora
org: comune-prato
location: {lat: 43.8801, lon: 11.0968}
sensors:
  - {driver: bosch_parking, id: lora-centro, zone: centro, street: via-mazzoni,
     devices: {"70b3d5e75e00a1f0": {sensor: s-mazzoni-01},
               "70b3d5e75e00a1f2": {sensor: s-mazzoni-02, street: via-pugliesi}}}
  - {driver: sim_parking, id: p-macelli, zone: ovest}
  - {driver: sim_traffic, id: t-not-declared}
"""
    )
    meta = GatewayMeta.model_validate(
        {"v": 1, "org": "comune-prato", "gateway": "gw-lora", "sensors": [
            {"id": "lora-centro", "kind": "parking_spot", "driver": "bosch_parking",
             "devices": ["s-mazzoni-01", "s-mazzoni-02"]},
            {"id": "p-macelli", "kind": "parking", "driver": "sim_parking"},
        ]}
    )  # fmt: skip

    found = installed_sensors([config], {("comune-prato", "gw-lora"): meta})
    nowhere = installed_sensors([config], {})

    place = Place(43.8801, 11.0968)
    assert found == [
        Installed("comune-prato", "gw-lora", "s-mazzoni-01", SensorKind.PARKING_SPOT,
                  {"zone": "centro", "street": "via-mazzoni"}, place),
        Installed("comune-prato", "gw-lora", "s-mazzoni-02", SensorKind.PARKING_SPOT,
                  {"zone": "centro", "street": "via-pugliesi"}, place),
        Installed("comune-prato", "gw-lora", "p-macelli", SensorKind.PARKING, {"zone": "ovest"}, place),
    ]  # fmt: skip
    assert nowhere == []  # a gateway that declares nothing has no sensor of a known kind


# -- export -> import, reading by reading ----------------------------------------------------------

TS = st.datetimes(
    min_value=datetime(2026, 1, 1),  # noqa: DTZ001
    max_value=datetime(2027, 1, 1),  # noqa: DTZ001
    timezones=st.just(UTC),
).map(lambda t: t.replace(microsecond=t.microsecond // 1000 * 1000))
TAG = st.from_regex(TAG_VALUE_PATTERN, fullmatch=True)
PLACE = Place(43.8825, 11.1003, "Piazza Mercatale")


def _value(kind: SensorKind, name: str) -> st.SearchStrategy[Any]:
    f = KINDS[kind].by_name[name]
    if f.type == "bool":
        return st.booleans()
    if f.type == "int":
        return st.integers(int(f.minimum), int(f.maximum))
    # Measured values: the percentage <-> fraction conversion (units.py) is exact to 15
    # significant digits (not for subnormal numbers, which no sensor measures).
    upper = 359.999 if name == "heading_deg" else f.maximum  # the model's heading is below 360
    return (
        st.floats(f.minimum, upper)
        .map(lambda x: float(f"{x:.15g}"))
        .filter(lambda x: x == 0 or abs(x) > 1e-300)
    )


@st.composite
def readings(draw: st.DrawFn, kind: SensorKind) -> Reading:
    fields = {f.name: draw(_value(kind, f.name)) for f in KINDS[kind].fields}
    for name, bound in NOT_ABOVE.get(kind, ()):
        if fields[name] > fields[bound]:
            fields[name], fields[bound] = fields[bound], fields[name]
    tags = {t: draw(TAG) for t in KINDS[kind].tags if draw(st.booleans())}
    if kind is SensorKind.TRAFFIC and "lane" in tags:
        tags["lane"] = str(draw(st.integers(1, 9)))
    return Reading(
        kind=kind, org="comune-prato", gateway="gw-1", sensor="s-1", ts=draw(TS), fields=fields, tags=tags
    )


@pytest.mark.parametrize(
    "kind", [SensorKind.PARKING, SensorKind.PARKING_SPOT, SensorKind.TRAFFIC, SensorKind.FLEET]
)
@pytest.mark.parametrize("form", list(Form))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_a_reading_exported_and_imported_comes_back_identical(
    kind: SensorKind, form: Form, data: st.DataObject
) -> None:
    reading = data.draw(readings(kind))
    thing = Thing(reading.org, reading.gateway, reading.sensor, kind, PLACE, reading)

    for entity in entities_of(thing):
        document = entity.key_values() if form is Form.KEY_VALUES else entity.normalized()
        mapped = to_reading(json.loads(json.dumps(document)))
        back = Reading.model_validate(
            {**mapped.reading, "kind": kind, "org": reading.org, "gateway": reading.gateway}
        )

        assert back == reading, entity.type
        assert problems(document) == []


# What a CityWork carries of a worksite; the rest (actual dates, most of the impact) has no slot.
CITYWORK_FIELDS = ("title", "description", "street", "work_type", "permit_ref", "geometry", "planned_start",
                   "planned_end", "status")  # fmt: skip


@pytest.mark.parametrize("form", list(Form))
def test_a_worksite_exported_and_read_back_keeps_everything_citywork_holds(
    form: Form, demo_worksites: list[Worksite]
) -> None:
    worksites = demo_worksites
    assert {w.status for w in worksites} >= {Status.PLANNED, Status.ACTIVE, Status.COMPLETED}

    for ws in worksites:
        entity = city_work(ws)
        document = entity.key_values() if form is Form.KEY_VALUES else entity.normalized()
        fields, approval = worksite_fields(json.loads(json.dumps(document)))
        back = WorksiteCreate.model_validate(fields)

        assert {f: getattr(back, f) for f in CITYWORK_FIELDS} == {f: getattr(ws, f) for f in CITYWORK_FIELDS}
        assert (back.id, back.owner, back.impact.bus_lines) == (ws.id, ws.owner, ws.impact.bus_lines)
        if ws.status is Status.PLANNED:
            assert approval is ws.approval


def test_a_vehicle_heading_of_360_is_exported_as_0() -> None:
    at = datetime(2026, 11, 24, 8, tzinfo=UTC)
    fields = {"lat": 43.88, "lon": 11.1, "speed_kmh": 10.0, "heading_deg": 360.0}
    reading = Reading(kind=SensorKind.FLEET, org="alia", gateway="fleet", sensor="v-1", ts=at, fields=fields)

    vehicle, status = entities_of(Thing("alia", "fleet", "v-1", SensorKind.FLEET, None, reading))

    assert vehicle.attrs["heading"] == 0.0  # the model's heading is in [0, 360)
    assert status.attrs["bearing"] == 360.0  # FleetVehicleStatus's bearing has no such bound
    assert problems(vehicle.key_values()) == problems(status.key_values()) == []
    assert vehicle.attrs["observationDateTime"] == format_ts(at)


def test_a_thing_without_a_place_or_a_reading_is_reported_not_exported() -> None:
    silent = Thing("comune-prato", "gw-1", "t-1", SensorKind.TRAFFIC, PLACE, None)
    nowhere = Thing("comune-prato", "gw-1", "p-1", SensorKind.PARKING, None, None)

    result = export(Catalogue([silent, nowhere], []))

    assert result.entities == []
    assert sorted(s.thing for s in result.skipped) == ["p-1", "t-1"]
