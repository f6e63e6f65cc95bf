"""Our InfluxDB schema obeys InfluxDB 3's rules, checked statically from the declarations.

InfluxDB 3 (Core, Enterprise, Clustered) refuses a tag and a field of the same name in one table,
fixes a table's tag set at its first write (later writes may omit tags, never add one) and a
field's type likewise. The declarations (cloud/io/influx/schema.py: the contract's KINDS and
every measurement the cloud writes, and their hourly rollups) must obey that, and every line our
writers produce must conform to its declaration: what this file checks, with no server.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from cloud.core.alerts import Alert
from cloud.core.geo import Site, parse_geojson
from cloud.core.settings import CloudSettings
from cloud.core.transit import DelayBook, Departure, ListedNetwork
from cloud.dev.demo_data import demo_worksites
from cloud.ingest.consumer import Ingest
from cloud.ingest.deadletter import DeadLetter
from cloud.ingest.gateway_health import DEVICE_FIELDS, HEALTH_FIELDS, SOURCE_FIELDS, health_lines, status_line
from cloud.ingest.seqledger import BatchReport
from cloud.io.influx.lineprotocol import reading_line
from cloud.io.influx.points import alert_line
from cloud.io.influx.retention import rollups, rp_choice_lines
from cloud.io.influx.schema import ENVELOPE_TAGS, SAMPLES_FIELD, create_table_commands, measurements
from cloud.io.influx.sites import site_line
from cloud.transit.intermodality import CarPark, park_and_rides, snapshot_lines
from cloud.worksites.models import Worksite
from cloud.worksites.snapshot import near_lines, route_lines, worksite_line
from edge.contract import KINDS, Reading

NOW = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
_TYPES = {
    "int": r"-?\d+i",
    "bool": r"(?:t|T|true|True|TRUE|f|F|false|False|FALSE)",
    "str": r'"(?:[^"\\]|\\.)*"',
}


def parse(line: str) -> tuple[str, dict[str, str], dict[str, str]]:
    """(measurement, tags, field -> its type) of one line of our line protocol."""
    head, rest = re.split(r"(?<!\\) ", line, maxsplit=1)
    measurement, *tag_parts = re.split(r"(?<!\\),", head)
    tags = dict(t.split("=", 1) for t in tag_parts)
    field_part = rest.rsplit(" ", 1)[0]
    fields: dict[str, str] = {}
    pattern = re.compile(r"((?:[^=\\]|\\.)+)=(" + "|".join(_TYPES.values()) + r"|[^,]+)(?:,|$)")
    for key, value in pattern.findall(field_part):
        kind = next((t for t, rx in _TYPES.items() if re.fullmatch(rx, value)), "float")
        fields[key] = kind
    return measurement, tags, fields


def every_written_line() -> list[str]:
    """One line of every shape each of our writers produces."""
    lines = []
    for spec in KINDS.values():
        values: dict[str, Any] = {
            f.name: {
                "bool": True,
                "int": int(f.minimum) + 1,
                "float": float(f.minimum) + 0.5,
                "str": f.choices[0] if f.choices else "x",
            }[f.type]
            for f in spec.fields
        }
        lines.append(
            reading_line(
                Reading(
                    kind=spec.kind, org="o", gateway="g", sensor="s", ts=NOW, fields=values,
                    tags=dict.fromkeys(spec.tags, "x"),
                )
            )
        )  # fmt: skip
    alert = Alert(
        rule="r", org="o", entity="e", gateway="g", kind="parking", severity="warning", state="firing",
        since=NOW, ts=NOW, message="m", value=1.0, threshold=2.0,
    )  # fmt: skip
    lines += [alert_line(alert), alert_line(replace(alert, state="acknowledged", acked_by="a", ack_s=9.0))]
    dead = DeadLetter.of(
        None, topic="sr/v1/o/g/data/parking", payload=b"{}", org="o", gateway="g", reason="x"
    )
    lines += [dead.to_line(NOW), dead.to_line(NOW, "worker-1")]
    device = dict.fromkeys(DEVICE_FIELDS, 1) | {"sensor": "s2"}
    source = dict.fromkeys(SOURCE_FIELDS, 1) | {"rejected": {"crc": 2}, "state": "connected"}
    health = dict.fromkeys(HEALTH_FIELDS, 1) | {"drivers": {"s": source | {"devices": {"d": device}}}}
    lines += health_lines("o", "g", orjson.dumps(health), NOW)
    status = status_line("o", "g", b'{"state": "offline", "reason": "lost"}', NOW)
    assert status is not None
    lines += [status, site_line("o", "s", "parking", lat=43.9, lon=11.1, name="P", at=NOW)]
    worksites = [
        Worksite.model_validate(w.model_dump() | {"owner": w.owner, "created_at": NOW, "updated_at": NOW})
        for w in demo_worksites(NOW)
    ]
    for ws in worksites:
        lines.append(worksite_line(ws, NOW))
        centre = parse_geojson(ws.geometry).representative_point()
        lines += near_lines(ws, NOW, {"s": Site(lat=centre.y, lon=centre.x)}, radius_m=1.0)
        lines += route_lines(ws, NOW, bus_route_through(centre.x, centre.y), within_m=30.0)
    lines += park_and_ride_lines()
    lines += rp_choice_lines()
    return lines + ingest_report_lines()


class Written:
    """Stands in for InfluxDB in a report: keeps the lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, lines: list[str], **_: Any) -> None:
        self.lines += lines


def ingest_report_lines() -> list[str]:
    """What ingest writes about itself and each gateway's sequence and clock."""
    written = Written()
    ingest = Ingest(CloudSettings(), influx=written)  # type: ignore[arg-type]
    ingest.stats.accounts.apply(
        BatchReport(group="", instance="i", run="0123abcd", job=0, gateways={"o/g": [0]})
    )
    ingest.stats.see_clock("o", "g", lag_s=1.0, offset_s=0.5, threshold_s=60.0)
    ingest.report()
    assert written.lines, "ingest reported nothing"
    return written.lines


def test_no_measurement_has_a_tag_and_a_field_of_the_same_name() -> None:
    for m in measurements().values():
        clash = set(m.tags) & {*m.field_names, *(m.rollup_fields() if m.is_rolled_up else ())}
        assert not clash, f"{m.name}: {sorted(clash)} both tag and field"


def test_every_measurement_has_one_tag_set_and_distinct_names() -> None:
    for m in measurements().values():
        assert len(set(m.tags)) == len(m.tags), m.name
        assert len(set(m.field_names)) == len(m.field_names), m.name
        assert m.tags, f"{m.name}: InfluxDB 3 tables need at least one tag"


def test_the_kinds_are_declared_from_the_contract_with_the_envelope_tags() -> None:
    declared = measurements()
    for spec in KINDS.values():
        m = declared[spec.kind.value]
        assert set(m.tags) == {*spec.tags, *ENVELOPE_TAGS}
        assert {(f.name, f.type) for f in m.fields} == {(f.name, f.type) for f in spec.fields}
        assert m.is_rolled_up


def test_every_line_we_write_conforms_to_its_declaration() -> None:
    declared = measurements()
    seen = set()
    for line in every_written_line():
        name, tags, fields = parse(line)
        assert name in declared, f"{name} is written but not declared in cloud/io/influx/schema.py"
        m = declared[name]
        assert set(tags) <= set(m.tags), f"{name}: tags {sorted(set(tags) - set(m.tags))} not declared"
        types = {f.name: f.type for f in m.fields}
        for field, kind in fields.items():
            assert field in types, f"{name}: field {field!r} not declared"
            assert kind == types[field], f"{name}.{field}: written as {kind}, declared {types[field]}"
        seen.add(name)
    assert seen == set(declared), f"never written here: {sorted(set(declared) - seen)}"


@pytest.mark.parametrize("rollup", rollups(), ids=lambda r: r.name)
def test_every_rollup_keeps_the_tags_and_writes_only_declared_fields(rollup: Any) -> None:
    m = measurements()[rollup.source]
    written = set(re.findall(r'AS "([^"]+)"', rollup.select))
    assert written <= set(m.rollup_fields()), rollup.select
    assert not written & set(m.tags)
    assert SAMPLES_FIELD in m.rollup_fields()


def test_every_rolled_up_field_is_in_some_rollup() -> None:
    for m in measurements().values():
        if m.is_rolled_up:
            written = {
                n for r in rollups() if r.source == m.name for n in re.findall(r'AS "([^"]+)"', r.select)
            }
            assert written == set(m.rollup_fields()), m.name


def test_each_table_can_be_created_with_its_whole_tag_set_before_the_first_write() -> None:
    commands = create_table_commands("sitroom")
    assert len(commands) == len(measurements())
    assert (
        "influxdb3 create table --database sitroom --tags zone,street,org,gateway,sensor parking_spot"
        in commands
    )


def bus_route_through(lon: float, lat: float) -> ListedNetwork:
    """A bus network of one route and one stop at (lon, lat)."""
    return ListedNetwork(
        routes={"R": {"name": "R", "line": [[lon - 0.001, lat], [lon + 0.001, lat]]}},
        stops={"S": {"name": "S", "lat": lat, "lon": lon}},
        trips=[],
    )


def park_and_ride_lines() -> list[str]:
    """The park-and-ride points (cloud/transit/intermodality.py), with and without a bus."""
    lat, lon = 43.88, 11.10
    sites = {"p-r": Site(lat=lat, lon=lon, name="P+R", capacity=10, park_and_ride=True)}
    found = park_and_rides(
        sites, bus_route_through(lon, lat), toward=Site(lat=lat + 0.01, lon=lon), at=NOW,
        latest={"p-r": CarPark(50.0, 5, 10, NOW)}, delays=DelayBook(),
    )  # fmt: skip
    bus = Departure("o", "R", "R", "T", "", "S", "S", NOW, "S2", "S2", NOW, 60)
    return snapshot_lines(found, "p-centre", NOW) + snapshot_lines(
        [replace(p, departures=(bus,)) for p in found], "p-centre", NOW
    )
