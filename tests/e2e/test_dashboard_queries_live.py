"""Every query of every dashboard, expanded as Grafana would, run on InfluxDB holding demo data.

A panel whose query InfluxDB rejects, or that finds nothing in data the demo wrote, is a broken
panel, whatever its JSON looks like. The offline structure checks are in tests/test_dashboards.py.

Fixtures (tests/conftest.py): `influxd`, our own InfluxDB (`.url`), and `demo_data_db`, the name
of a database on it holding data written by the demo pipeline within the last few minutes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from cloud.dashboards.queries import expand, iter_panels, template_variables, variable_names

pytestmark = pytest.mark.e2e

DASHBOARD_DIR = Path(__file__).resolve().parent.parent.parent / "dashboards" / "json"
DASHBOARDS = sorted(DASHBOARD_DIR.glob("**/*.json"))
# The dashboards' default time range (now-6h .. now) and a typical automatic interval.
RANGE_S = 6 * 3600
INTERVAL = "1m"
# Panels that are right to show nothing on healthy demo data: no alert may be open at the
# moment the test looks, and a run without bad input has no dead letter.
MAY_BE_EMPTY = {"Allarmi aperti", "Messaggi scartati (dead letter)"}


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def panel_targets() -> list[Any]:
    cases = []
    for path in DASHBOARDS:
        dashboard = load(path)
        for panel in iter_panels(dashboard):
            for target in panel.get("targets", []):
                cases.append(
                    pytest.param(
                        dashboard,
                        panel,
                        target,
                        id=f"{path.stem}:{panel['id']}:{target['refId']}",
                    )
                )
    return cases


def run(url: str, database: str, query: str) -> list[dict[str, Any]]:
    """The series InfluxDB returns for `query`, sent as Grafana sends it (GET /query)."""
    response = httpx.get(f"{url}/query", params={"db": database, "q": query, "epoch": "ms"}, timeout=30)
    assert response.status_code == 200, f"HTTP {response.status_code}: {response.text}\n{query}"
    results = response.json()["results"]
    errors = [r["error"] for r in results if "error" in r]
    assert not errors, f"{errors}\n{query}"
    return [series for r in results for series in r.get("series", [])]


def chained(
    url: str, database: str, dashboard: dict[str, Any]
) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """The values each query variable offers, from its own query with the variables before it
    set to "All", and what Grafana sends for each on "All" (a custom all value, else every
    value offered, as a later chained query or panel sees it)."""
    values: dict[str, list[str]] = {}
    everything: dict[str, str | list[str]] = {}
    for variable in template_variables(dashboard):
        if variable.get("type") == "query":
            series = run(url, database, expand(variable["query"], range_s=RANGE_S, variables=everything))
            values[variable["name"]] = sorted({row[1] for s in series for row in s["values"]})
        offered = values.get(variable["name"], [".*"])
        if not variable.get("multi", True):  # the RP for the range: one value, sent as it is
            everything[variable["name"]] = offered[0] if offered else ""
            continue
        everything[variable["name"]] = variable.get("allValue") or offered
    return values, everything


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.stem for p in DASHBOARDS])
def test_every_query_variable_offers_values_from_demo_data(
    influxd: Any, demo_data_db: str, path: Path
) -> None:
    for name, values in chained(influxd.url, demo_data_db, load(path))[0].items():
        assert values, f"{path.name}: ${name} offers nothing to choose"


@pytest.mark.parametrize(("dashboard", "panel", "target"), panel_targets())
def test_every_panel_query_runs_and_finds_demo_data_with_all_selected(
    influxd: Any, demo_data_db: str, dashboard: dict[str, Any], panel: dict[str, Any], target: Any
) -> None:
    everything = chained(influxd.url, demo_data_db, dashboard)[1]
    query = expand(target["query"], range_s=RANGE_S, interval=INTERVAL, variables=everything)
    series = run(influxd.url, demo_data_db, query)
    if panel["title"] not in MAY_BE_EMPTY:
        assert series, f"panel {panel['title']!r} finds no data: {query}"
    if panel["type"] == "geomap" and series:
        # Grafana's table format turns the series' GROUP BY tags into columns too.
        columns = set(series[0]["columns"]) | set(series[0].get("tags", {}))
        for layer in panel["options"]["layers"]:
            if (
                "location" not in layer
                or layer.get("filterData", {}).get("options", target["refId"]) != target["refId"]
            ):
                continue  # a GeoJSON layer, or a layer reading another target's frame
            location = layer["location"]
            if location["mode"] == "coords":
                wanted = {location["latitude"], location["longitude"]}
            else:
                wanted = {location["lookup"]}
            assert wanted <= columns, f"{panel['title']!r}: no {wanted - columns} in {columns}"


@pytest.mark.parametrize(("dashboard", "panel", "target"), panel_targets())
def test_every_panel_query_finds_demo_data_for_some_single_selected_value(
    influxd: Any, demo_data_db: str, dashboard: dict[str, Any], panel: dict[str, Any], target: Any
) -> None:
    # One selected value reaches the query as an escaped regex group `(value)`, not as `.*`.
    # Not every organisation has every kind of sensor, so the panel must find data for at
    # least one of the values offered, and run without error for all of them.
    offered, everything = chained(influxd.url, demo_data_db, dashboard)
    single = {v["name"] for v in template_variables(dashboard) if not v.get("multi", True)}
    for name in sorted((variable_names(target["query"]) & offered.keys()) - single):
        finding = []
        for value in offered[name]:
            chosen = {**everything, name: [value]}
            query = expand(target["query"], range_s=RANGE_S, interval=INTERVAL, variables=chosen)
            if run(influxd.url, demo_data_db, query):
                finding.append(value)
        if panel["title"] not in MAY_BE_EMPTY:
            assert finding, f"panel {panel['title']!r} finds nothing for any single ${name}"
