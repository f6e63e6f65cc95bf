"""How `sitroom dashboards check` sets variables to "All": as Grafana sends them, chained."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cloud.dashboards.check import Dashboard, all_values
from cloud.dashboards.queries import expand
from cloud.io.influx.client import InfluxClient


def variable(name: str, key: str, where: str = "", **extra: Any) -> dict[str, Any]:
    query = f'SHOW TAG VALUES FROM "worksite_sensor" WITH KEY = "{key}" {where}'.strip()
    return {"name": name, "type": "query", "query": query, "includeAll": True, **extra}


DASHBOARD = Dashboard(
    Path("chain.json"),
    {
        "templating": {
            "list": [
                variable("org", "org", allValue=".*"),
                variable("cantiere", "id", 'WHERE "org" =~ /^$org$/'),
                variable("vicini", "sensor", 'WHERE "id" =~ /^$cantiere$/'),
            ]
        }
    },
)  # fmt: skip


def test_all_without_a_custom_value_sends_every_value_the_chained_query_finds(
    influx_db: InfluxClient,
) -> None:
    influx_db.write(
        [
            "worksite_sensor,id=w-1,org=alia,sensor=t-a distance_m=1 1",
            "worksite_sensor,id=w-1,org=alia,sensor=p.b distance_m=2 1",
            "worksite_sensor,id=w-2,org=publiacqua,sensor=t-c distance_m=3 1",
        ]
    )
    values = all_values(DASHBOARD, influx_db)
    assert values["org"] == ".*"
    assert sorted(values["cantiere"]) == ["w-1", "w-2"]
    assert sorted(values["vicini"]) == ["p.b", "t-a", "t-c"]
    # In a regex they become an escaped group, as Grafana formats a multi-value variable.
    assert (
        expand('"sensor" =~ /^$vicini$/', variables={"vicini": ["p.b", "t-a"]})
        == '"sensor" =~ /^(p\\.b|t-a)$/'
    )


def test_offline_all_stands_in_with_any_value() -> None:
    assert all_values(DASHBOARD) == {"org": ".*", "cantiere": ".*", "vicini": ".*"}
