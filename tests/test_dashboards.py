"""Offline checks of every Grafana dashboard under dashboards/json against what is provisioned.

The live counterpart, tests/e2e/test_dashboard_queries_live.py, runs each query on InfluxDB.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from cloud.core.alerts import Alert
from cloud.core.geo import Site, parse_geojson
from cloud.core.transit import DelayBook, Departure, ListedNetwork
from cloud.dashboards.check import strings_with_keys
from cloud.dashboards.queries import (
    GRAFANA_BUILTINS,
    UndefinedVariableError,
    datasource_uid,
    expand,
    is_alias_pattern,
    iter_panels,
    template_variables,
    variable_names,
)
from cloud.dev.demo_data import demo_worksites
from cloud.ingest.deadletter import DeadLetter
from cloud.ingest.gateway_health import (
    DERIVED_SOURCE_FIELDS,
    DEVICE_FIELDS,
    DEVICE_MEASUREMENT,
    DEVICE_TAGS,
    HEALTH_FIELDS,
    HEALTH_MEASUREMENT,
    SOURCE_FIELDS,
    STATUS_MEASUREMENT,
)
from cloud.ingest.seqledger import BatchReport
from cloud.ingest.stats import IngestStats
from cloud.io.influx.points import alert_line
from cloud.io.influx.schema import measurements
from cloud.transit.intermodality import CarPark, park_and_rides, snapshot_lines
from cloud.worksites.models import Worksite
from cloud.worksites.snapshot import near_lines, phase, route_lines, worksite_line
from edge.contract import KINDS

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD_DIR = ROOT / "dashboards" / "json"
DATASOURCE_DIR = ROOT / "dashboards" / "provisioning" / "datasources"
DASHBOARDS = sorted(DASHBOARD_DIR.glob("**/*.json"))

GRID_COLUMNS = 24


def line_columns(line: str) -> tuple[str, frozenset[str], frozenset[str]]:
    """(measurement, tag keys, field keys) of one line of InfluxDB line protocol."""
    head, rest = re.split(r"(?<!\\) ", line, maxsplit=1)
    measurement, *tags = re.split(r"(?<!\\),", head)
    # String field values are double-quoted and may hold spaces, commas and equals signs.
    fields = re.split(r"(?<!\\) ", re.sub(r'"(?:[^"\\]|\\.)*"', '""', rest))[0]
    return (
        measurement,
        frozenset(t.split("=", 1)[0] for t in tags),
        frozenset(f.split("=", 1)[0] for f in fields.split(",")),
    )


def through(lon: float, lat: float) -> ListedNetwork:
    """A bus network of one route and one stop at (lon, lat)."""
    return ListedNetwork(
        routes={"R": {"name": "R", "line": [[lon - 0.001, lat], [lon + 0.001, lat]]}},
        stops={"S": {"name": "S", "lat": lat, "lon": lon}},
        trips=[{"trip": "T", "route": "R", "stops": [["S", "2026-11-03T07:00:00+00:00"]]}],
    )


def park_and_ride_lines(network: ListedNetwork, lon: float, lat: float, now: datetime) -> list[str]:
    sites = {"p-r": Site(lat=lat, lon=lon, name="P+R", capacity=10, park_and_ride=True)}
    found = park_and_rides(
        sites,
        network,
        toward=Site(lat=lat + 0.01, lon=lon),
        at=now,
        latest={"p-r": CarPark(50.0, 5, 10, now)},
        delays=DelayBook(),
    )
    found = [replace(p, departures=(departure(now),)) for p in found]
    return snapshot_lines(found, "p-centre", now)


def departure(now: datetime) -> Departure:
    return Departure("o", "R", "R", "T", "", "S", "S", now, "S2", "S2", now, 60)


def known_columns() -> dict[str, frozenset[str]]:
    """Measurement -> every tag key and field key a query may name in it, taken from the code
    that writes them: the contract's sensor kinds, and the cloud's alerts, dead letters and
    ingest counters."""
    columns = {
        # lineprotocol.reading_tags adds org, gateway and sensor to every reading's own tags.
        spec.kind.value: frozenset({"org", "gateway", "sensor", *spec.tags, *spec.by_name})
        for spec in KINDS.values()
    }
    now = datetime.now(UTC)
    alert = Alert(
        rule="r",
        org="o",
        entity="e",
        gateway="g",
        kind="parking",
        severity="warning",
        state="firing",
        since=now,
        ts=now,
        message="m",
        value=1.0,
        threshold=2.0,
    )
    acknowledged = replace(alert, state="acknowledged", acked_by="anna", ack_s=90.0)
    dead_letter = DeadLetter.of(None, topic="sr/v1/o/g/data/parking", payload=b"{}", reason="x")
    # ... the worksite registry's state as the rules service writes it (cloud/worksites/snapshot.py) ...
    registered = [
        Worksite.model_validate(w.model_dump() | {"owner": w.owner, "created_at": now, "updated_at": now})
        for w in demo_worksites(now)
    ]
    worksite = next(ws for ws in registered if phase(ws, now) != "ended")
    centre = parse_geojson(worksite.geometry).representative_point()
    for written in (
        alert_line(alert),
        alert_line(acknowledged),
        dead_letter.to_line(now),
        worksite_line(worksite, now),
        # ... and a sensor beside it (any sensor, placed at the worksite's centre).
        *near_lines(worksite, now, {"s": Site(lat=centre.y, lon=centre.x)}, radius_m=1.0),
        # ... and a bus route through it.
        *route_lines(worksite, now, through(centre.x, centre.y), within_m=30.0),
        # ... and a park-and-ride with its free spaces and next buses (cloud/transit/intermodality.py).
        *park_and_ride_lines(through(centre.x, centre.y), centre.x, centre.y, now),
    ):
        measurement, tags, fields = line_columns(written)
        columns[measurement] = columns.get(measurement, frozenset()) | tags | fields
    # cloud/ingest/consumer.py writes the numeric entries of the stats snapshot, tagged instance.
    stats = IngestStats()
    stats.accounts.apply(BatchReport(group="", instance="i", run="0123abcd", job=0, gateways={"o/g": [0]}))
    stats.wrote_batches([("o", "g", 0)])
    stats.see_clock("o", "g", lag_s=1.0, offset_s=0.0, threshold_s=60.0)
    snapshot = stats.snapshot()
    columns["sitroom_ingest"] = frozenset(
        {"instance"} | {k for k, v in snapshot.items() if isinstance(v, int | float)}
    )
    # ... the gateways' health and status as ingest records them (cloud/ingest/gateway_health.py) ...
    columns[HEALTH_MEASUREMENT] = frozenset({"org", "gateway", *HEALTH_FIELDS})
    columns[DEVICE_MEASUREMENT] = frozenset(
        {*DEVICE_TAGS, *SOURCE_FIELDS, *DERIVED_SOURCE_FIELDS, *DEVICE_FIELDS.values()}
    )
    columns[STATUS_MEASUREMENT] = frozenset({"org", "gateway", "online", "reason"})
    # ... and one point per gateway of its sequence accounting, tagged org, gateway and instance.
    columns["sitroom_gateway_seq"] = frozenset({"org", "gateway", "instance", *snapshot["gateways"]["o/g"]})
    return columns


# A FROM source: `"m"`, `"rp"."m"` (`"$rp"."m"`: raw or rollup by the range) or `"db"."rp"."m"`.
SOURCE = re.compile(r'\bFROM\s+((?:"[^"]*"\.){0,2}"[^"]+"|\(|\S+)', flags=re.IGNORECASE)


def sources(query: str) -> list[str]:
    """The measurements a query reads (subqueries' `(` left out), without database and RP."""
    return [s.rsplit(".", 1)[-1].strip('"') for s in SOURCE.findall(query) if s != "("]


def provisioned_uids() -> set[str]:
    uids = set()
    for path in sorted(DATASOURCE_DIR.glob("*.yaml")):
        for source in yaml.safe_load(path.read_text(encoding="utf-8")).get("datasources", []):
            assert source.get("uid"), f"{path.name}: data source {source.get('name')!r} has no uid"
            uids.add(source["uid"])
    return uids


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def influx_targets(panel: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from panel.get("targets", [])


def where(path: Path, panel: dict[str, Any]) -> str:
    return f"{path.name}: panel {panel.get('id')} {panel.get('title')!r}"


dashboards = pytest.mark.parametrize("path", DASHBOARDS, ids=[p.name for p in DASHBOARDS])


def test_the_overview_dashboard_exists_and_every_dashboard_is_json() -> None:
    assert DASHBOARD_DIR / "situation-room-overview.json" in DASHBOARDS
    for path in DASHBOARDS:
        assert isinstance(load(path), dict), path.name


def test_dashboard_uids_and_titles_are_unique() -> None:
    uids = [load(p).get("uid") for p in DASHBOARDS]
    titles = [load(p).get("title") for p in DASHBOARDS]
    assert all(uids), "every dashboard needs a fixed uid, or Grafana makes a new one each start"
    # Grafana limits a dashboard uid to 40 characters.
    assert all(len(uid) <= 40 for uid in uids), uids
    assert len(set(uids)) == len(uids), uids
    assert len(set(titles)) == len(titles), titles


@dashboards
def test_every_panel_names_a_provisioned_datasource_by_uid(path: Path) -> None:
    uids = provisioned_uids()
    for panel in iter_panels(load(path)):
        assert datasource_uid(panel.get("datasource")) in uids, (
            f"{where(path, panel)}: datasource {panel.get('datasource')!r} is not one of the "
            f"provisioned uids {sorted(uids)}"
        )
        for target in influx_targets(panel):
            if "datasource" in target:
                assert datasource_uid(target["datasource"]) in uids, (
                    f"{where(path, panel)}: target {target.get('refId')} uses {target['datasource']!r}"
                )


@dashboards
def test_every_query_variable_uses_a_provisioned_datasource(path: Path) -> None:
    uids = provisioned_uids()
    for variable in template_variables(load(path)):
        if variable.get("type") == "query":
            assert datasource_uid(variable.get("datasource")) in uids, (
                f"{path.name}: variable ${variable.get('name')} uses {variable.get('datasource')!r}"
            )


@dashboards
def test_every_variable_used_is_defined_or_built_in(path: Path) -> None:
    dashboard = load(path)
    defined = {v["name"] for v in template_variables(dashboard)}
    for key, text in strings_with_keys(dashboard):
        for name in variable_names(text):
            if key == "alias" and is_alias_pattern(name):
                continue
            assert name in defined | GRAFANA_BUILTINS, (
                f"{path.name}: ${name} in {key!r} ({text!r}) is neither a template variable "
                f"({sorted(defined)}) nor a Grafana built-in"
            )


@dashboards
def test_every_panel_query_expands_with_all_variables_set_to_all(path: Path) -> None:
    dashboard = load(path)
    everything = {v["name"]: ".*" for v in template_variables(dashboard)}
    for panel in iter_panels(dashboard):
        for target in influx_targets(panel):
            try:
                expanded = expand(target["query"], variables=everything)
            except UndefinedVariableError as exc:
                pytest.fail(f"{where(path, panel)}: {exc}")
            assert "$" not in expanded.replace("$/", ""), f"{where(path, panel)}: {expanded}"


@dashboards
def test_every_target_is_a_raw_influxql_query_with_a_unique_ref_id(path: Path) -> None:
    for panel in iter_panels(load(path)):
        targets = list(influx_targets(panel))
        assert targets, f"{where(path, panel)}: no query"
        ref_ids = [t.get("refId") for t in targets]
        assert len(set(ref_ids)) == len(ref_ids), f"{where(path, panel)}: refIds {ref_ids}"
        for target in targets:
            # Raw text is what the live test can run and what a reviewer can read in a diff.
            assert target.get("rawQuery") is True, f"{where(path, panel)}: builder-mode target"
            assert target.get("query", "").strip(), f"{where(path, panel)}: empty query"
            assert target.get("resultFormat") in {"time_series", "table", "logs"}, where(path, panel)


@dashboards
def test_every_query_names_known_measurements_and_their_tags_and_fields(path: Path) -> None:
    columns = known_columns()
    for panel in iter_panels(load(path)):
        for target in influx_targets(panel):
            query = target["query"]
            assert all(s.startswith(("(", '"')) for s in SOURCE.findall(query)), (
                f"{where(path, panel)}: quote measurement names: {query}"
            )
            measurements = sources(query)
            unknown = [m for m in measurements if m not in columns]
            assert not unknown, f"{where(path, panel)}: unknown measurement(s) {unknown}"
            aliases = set(re.findall(r'\bAS\s+"([^"]+)"', query, flags=re.IGNORECASE))
            allowed = aliases.union(*(columns[m] for m in measurements))
            # Retention policies: the one the range picks (`$rp`), or the default.
            named = set(re.findall(r'"([^"]+)"', query)) - set(measurements) - {"$rp"}
            assert named <= allowed, (
                f"{where(path, panel)}: {sorted(named - allowed)} are neither tags nor fields "
                f"of {measurements}"
            )


@dashboards
def test_template_variables_are_used_only_as_anchored_regexes(path: Path) -> None:
    # A multi-value variable expands to `(a|b)` and "All" to `.*`: both are right only inside
    # `=~ /^$var$/`; `= '$var'` would match nothing as soon as two values are selected.
    # A single-value variable is an identifier (the retention policy the range picks) or a regex.
    dashboard = load(path)
    variables = template_variables(dashboard)
    names = [v["name"] for v in variables if v.get("multi", True)]
    single = [v["name"] for v in variables if not v.get("multi", True)]
    for panel in iter_panels(dashboard):
        for target in influx_targets(panel):
            query = target["query"]
            for name in names:
                uses = len(re.findall(rf"\${name}\b", query))
                anchored = len(re.findall(rf"[=!]~ /\^\${name}\$/", query))
                assert uses == anchored, f"{where(path, panel)}: ${name} outside /^$…$/: {query}"
            for name in single:
                uses = len(re.findall(rf"\${name}\b", query))
                quoted = len(re.findall(rf'FROM "\${name}"\."[a-z_]+"', query))
                anchored = len(re.findall(rf"[=!]~ /\^\${name}\$/", query))
                assert uses == quoted + anchored, f"{where(path, panel)}: ${name} misused: {query}"


@dashboards
def test_panels_fit_the_grid_without_overlapping(path: Path) -> None:
    panels = list(iter_panels(load(path)))
    ids = [p.get("id") for p in panels]
    assert len(set(ids)) == len(ids), f"{path.name}: panel ids {ids}"
    cells: dict[tuple[int, int], int] = {}
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0, where(path, panel)
        assert grid["x"] + grid["w"] <= GRID_COLUMNS, where(path, panel)
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                other = cells.setdefault((x, y), panel["id"])
                assert other == panel["id"], f"{where(path, panel)} overlaps panel {other}"


def test_the_overview_refreshes_every_10s_over_the_last_6h_with_org_and_zone_variables() -> None:
    dashboard = load(DASHBOARD_DIR / "situation-room-overview.json")
    assert dashboard["title"] == "Situation Room — Prato (Panoramica)"
    assert dashboard["refresh"] == "10s"
    assert dashboard["time"] == {"from": "now-6h", "to": "now"}
    assert dashboard["schemaVersion"] >= 39
    org, zone, rp = template_variables(dashboard)
    assert (rp["name"], rp["multi"], rp["hide"]) == ("rp", False, 2)
    assert org["name"] == "org"
    assert org["query"] == 'SHOW TAG VALUES WITH KEY = "org"'
    assert zone["name"] == "zone"
    assert zone["query"] == 'SHOW TAG VALUES FROM "parking" WITH KEY = "zone"'
    for variable in (org, zone):
        assert variable["multi"] is True
        assert variable["includeAll"] is True
        assert variable["allValue"] == ".*"
    kinds = {panel["type"] for panel in iter_panels(dashboard)}
    assert {"timeseries", "geomap", "table", "stat"} <= kinds


def test_the_zone_variable_filters_every_overview_query_on_a_measurement_with_a_zone_tag() -> None:
    # Only readings carry a zone (edge/contract/kinds.py); every overview query on such a kind
    # filters by it, and no query on another measurement mentions it.
    zoned = {spec.kind.value for spec in KINDS.values() if "zone" in spec.tags}
    assert zoned, "some kind has a zone tag"
    for panel in iter_panels(load(DASHBOARD_DIR / "situation-room-overview.json")):
        for target in influx_targets(panel):
            query = target["query"]
            measurements = set(sources(query))
            filtered = '"zone" =~ /^$zone$/' in query
            assert filtered == bool(measurements & zoned), f"{panel['title']!r}: {query}"


def test_every_map_layer_reads_its_own_table_frame_or_a_feed_of_the_api() -> None:
    # Geomap markers layers read one data frame: each names its target by refId, and that target
    # is a table query; coordinates come as lat/lon columns or by looking the sensor up in the
    # API's sites feed; GeoJSON layers load the worksite feeds of the API.
    for path in DASHBOARDS:
        for geomap in (p for p in iter_panels(load(path)) if p["type"] == "geomap"):
            targets = {t["refId"]: t for t in geomap["targets"]}
            for layer in geomap["options"]["layers"]:
                if layer["type"] == "geojson":
                    assert layer["config"]["src"].startswith("http://127.0.0.1:8080/feeds/"), where(
                        path, geomap
                    )
                    continue
                ref = layer.get("filterData", {}).get("options") if len(targets) > 1 else next(iter(targets))
                target = targets[ref]
                assert target["resultFormat"] == "table", where(path, geomap)
                location = layer["location"]
                if location["mode"] == "coords":
                    aliases = set(re.findall(r'\bAS\s+"([^"]+)"', target["query"]))
                    assert {location["latitude"], location["longitude"]} <= aliases, where(path, geomap)
                else:
                    assert location["mode"] == "lookup", where(path, geomap)
                    assert location["gazetteer"] == "http://127.0.0.1:8080/feeds/sites.geojson"
                    assert f'GROUP BY "{location["lookup"]}"' in target["query"], where(path, geomap)


@dashboards
def test_every_panel_on_sensor_data_reads_raw_or_rollup_by_the_range(path: Path) -> None:
    # Months of history are fast only if long ranges read the hourly rollups: each query on a
    # rolled-up measurement names the RP the `$rp` variable picks, unless it fixes its own range.
    kinds = {m.name for m in measurements().values() if m.is_rolled_up}
    assert {spec.kind.value for spec in KINDS.values()} <= kinds
    dashboard = load(path)
    for panel in iter_panels(dashboard):
        for target in influx_targets(panel):
            query = target["query"]
            if "now() - " in query or panel.get("timeFrom"):
                assert "$rp" not in query, f"{where(path, panel)}: a fixed recent range reads raw"
                continue  # a fixed recent range (the latest values): raw is right
            for found in SOURCE.findall(query):
                if found.rsplit(".", 1)[-1].strip('"') in kinds:
                    assert found.startswith('"$rp".'), f"{where(path, panel)}: {query}"
                    assert "rp" in {v["name"] for v in template_variables(dashboard)}, path.name
