"""Check dashboards: offline (structure, data sources, variables) and live (every query on InfluxDB).

A panel whose query InfluxDB refuses, or that finds nothing in data the demo wrote, is a broken
panel whatever its JSON looks like; `check_live` runs each query as Grafana would send it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cloud.dashboards.queries import (
    GRAFANA_BUILTINS,
    UndefinedVariableError,
    datasource_uid,
    expand,
    grafana_interval,
    is_alias_pattern,
    iter_panels,
    seconds,
    template_variables,
    variable_names,
)
from cloud.io.influx.client import InfluxClient, QueryError

DEFAULT_RANGE_S = 6 * 3600  # the dashboards' default time range, now-6h .. now


@dataclass(frozen=True, slots=True)
class Dashboard:
    path: Path
    json: dict[str, Any]

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def panels(self) -> list[dict[str, Any]]:
        return list(iter_panels(self.json))


@dataclass(slots=True)
class Report:
    dashboards: int = 0
    checked: int = 0  # panels whose queries ran
    with_data: int = 0  # ... and returned series
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.checked == self.with_data


def load_dashboards(directory: Path) -> list[Dashboard]:
    out = []
    for path in sorted(directory.glob("**/*.json")):
        try:
            out.append(Dashboard(path, json.loads(path.read_text(encoding="utf-8"))))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not JSON: {exc}") from None
    return out


def provisioned_uids(datasources_dir: Path) -> set[str]:
    uids = set()
    for path in sorted(datasources_dir.glob("*.yaml")):
        for source in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("datasources", []):
            if source.get("uid"):
                uids.add(str(source["uid"]))
    return uids


def strings_with_keys(node: object, key: str = "") -> Iterator[tuple[str, str]]:
    """Every string in a JSON tree, with the key it sits under."""
    if isinstance(node, str):
        yield key, node
    elif isinstance(node, dict):
        for k, v in node.items():
            yield from strings_with_keys(v, k)
    elif isinstance(node, list):
        for v in node:
            yield from strings_with_keys(v, key)


def all_values(
    dashboard: Dashboard, influx: InfluxClient | None = None, *, range_s: int = DEFAULT_RANGE_S
) -> dict[str, str | list[str]]:
    """Every variable set to "All", as Grafana sends it: its custom all value if it has one;
    without one, Grafana sends every value the variable's query found, as `(a|b|c)` in a regex,
    so with `influx` that query runs (on the variables before it, as Grafana chains them, over
    the last `range_s` seconds). A single-value variable (the RP picked by the range) is the
    first value found, sent as it is. Offline, `.*` stands in for each. Raises QueryError when a
    variable's query fails."""
    values: dict[str, str | list[str]] = {}
    for v in template_variables(dashboard.json):
        if v.get("allValue") or influx is None or v.get("type") != "query":
            values[v["name"]] = v.get("allValue") or ".*"
            continue
        found = influx.query(expand(str(v.get("query", "")), range_s=range_s, variables=values), epoch="ms")
        # Grafana takes the second column when there is one (SHOW TAG VALUES' value, a SELECT's
        # first column after time), else the first.
        offered = [
            str(row[1] if len(row) > 1 else row[0])
            for r in found
            for series in r.get("series", [])
            for row in series.get("values", [])
        ]
        values[v["name"]] = offered if v.get("multi", True) else (offered[0] if offered else "")
    return values


def check_offline(dashboard: Dashboard, uids: set[str]) -> list[str]:
    """Structure problems: unprovisioned data sources, undefined variables, non-raw targets."""
    problems: list[str] = []
    name = dashboard.name
    for v in template_variables(dashboard.json):
        if v.get("type") == "query" and datasource_uid(v.get("datasource")) not in uids:
            problems.append(f"{name}: variable ${v.get('name')} uses unprovisioned {v.get('datasource')!r}")
    defined = {v["name"] for v in template_variables(dashboard.json)}
    for key, text in strings_with_keys(dashboard.json):
        for var in variable_names(text):
            if not (key == "alias" and is_alias_pattern(var)) and var not in defined | GRAFANA_BUILTINS:
                problems.append(f"{name}: ${var} in {key!r} is neither a variable nor a Grafana built-in")
    everything = all_values(dashboard)
    for panel in dashboard.panels:
        problems.extend(
            _panel_problems(
                f"{name}: panel {panel.get('id')} {panel.get('title')!r}", panel, uids, everything
            )
        )
    return problems


def _panel_problems(
    where: str, panel: dict[str, Any], uids: set[str], everything: dict[str, str | list[str]]
) -> list[str]:
    problems = []
    if datasource_uid(panel.get("datasource")) not in uids:
        problems.append(
            f"{where}: data source {panel.get('datasource')!r} is not provisioned ({sorted(uids)})"
        )
    targets = panel.get("targets", [])
    if not targets:
        problems.append(f"{where}: no query")
    ref_ids = [t.get("refId") for t in targets]
    if len(set(ref_ids)) != len(ref_ids):
        problems.append(f"{where}: duplicate refIds {ref_ids}")
    for t in targets:
        if "datasource" in t and datasource_uid(t["datasource"]) not in uids:
            problems.append(f"{where}: target {t.get('refId')} uses unprovisioned {t['datasource']!r}")
        if t.get("rawQuery") is not True or not str(t.get("query", "")).strip():
            problems.append(f"{where}: target {t.get('refId')} is not a raw InfluxQL query")
            continue
        try:
            expand(t["query"], variables=everything)
        except UndefinedVariableError as exc:
            problems.append(f"{where}: {exc}")
    return problems


def panel_range_s(panel: dict[str, Any], range_s: int) -> int:
    """The range a panel's queries cover: its own relative time (`timeFrom`, Grafana's panel
    "Relative time") or the dashboard's."""
    own = panel.get("timeFrom")
    return seconds(str(own)) if own else range_s


def check_live(
    dashboard: Dashboard, influx: InfluxClient, *, range_s: int = DEFAULT_RANGE_S, report: Report
) -> None:
    """Run every panel's queries with every variable on "All"; record errors and empty panels.
    Annotation queries run too: they may find nothing, but they must not fail."""
    try:
        everything = all_values(dashboard, influx, range_s=range_s)
    except (QueryError, UndefinedVariableError) as exc:
        report.problems.append(f"{dashboard.name}: a variable's query failed: {exc}")
        everything = all_values(dashboard)
    for annotation in dashboard.json.get("annotations", {}).get("list", []):
        if "query" in annotation:
            try:
                influx.query(expand(annotation["query"], range_s=range_s, variables=everything), epoch="ms")
            except (QueryError, UndefinedVariableError) as exc:
                report.problems.append(f"{dashboard.name}: annotation {annotation.get('name')!r}: {exc}")
    for panel in dashboard.panels:
        where = f"{dashboard.name}: panel {panel.get('id')} {panel.get('title')!r}"
        span = panel_range_s(panel, range_s)
        points, minimum = int(panel.get("maxDataPoints") or 1000), str(panel.get("interval") or "")
        interval = grafana_interval(span, points, minimum)
        found = False
        failed = False
        for t in panel.get("targets", []):
            try:
                query = expand(t.get("query", ""), range_s=span, interval=interval, variables=everything)
                found |= any(r.get("series") for r in influx.query(query, epoch="ms"))
            except (QueryError, UndefinedVariableError) as exc:
                report.problems.append(f"{where}: {exc}")
                failed = True
        report.checked += 1
        if found:
            report.with_data += 1
        elif not failed:
            report.problems.append(f"{where}: returned no data")
