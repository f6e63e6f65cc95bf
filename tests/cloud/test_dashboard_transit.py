"""The Public transport dashboard: its panels, and its figures computed by InfluxDB from known delays.

Every panel's query also runs on demo data in tests/e2e/test_dashboard_queries_live.py; here the
on-time share and delays are checked to the number on points whose answer is known.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from cloud.dashboards.build import transit
from cloud.dashboards.queries import expand, iter_panels
from cloud.io.influx.client import InfluxClient

EVERYTHING = {"org": ".*", "route": ".*"}


def panels() -> dict[str, dict[str, Any]]:
    return {p["title"]: p for p in iter_panels(transit())}


def answer(influx: InfluxClient, title: str) -> list[dict[str, Any]]:
    query = expand(panels()[title]["targets"][0]["query"], variables=EVERYTHING)
    return influx.series(query)


def test_the_public_transport_dashboard_shows_what_the_issue_asks_for() -> None:
    board = transit()
    found = {p["title"]: p["type"] for p in iter_panels(board)}

    assert board["title"] == "Trasporto pubblico / Public transport"
    assert found == {
        "Bus in servizio per linea / Buses in service by line": "geomap",
        "Puntualità / On time": "stat",
        "Ritardo medio / Mean delay": "stat",
        "Bus in servizio / Buses reporting": "stat",
        "Feed fermi / Stale feeds": "stat",
        "Puntualità per linea / On time by line": "table",
        "Ritardo per linea / Delay by line": "timeseries",
        "Cantieri sulle linee / Worksites on bus lines": "table",
        "Percorsi sui cantieri / Routes through worksites": "table",
    }
    (routes, buses) = panels()["Bus in servizio per linea / Buses in service by line"]["options"]["layers"]
    assert routes["config"]["src"] == "http://127.0.0.1:8080/feeds/transit/routes.geojson"
    assert buses["config"]["style"]["color"]["field"] == "route"  # a colour per line


@pytest.fixture
def delays(influx_db: InfluxClient) -> InfluxClient:
    """Stop events of two lines a minute ago: line 2 has 2 of 4 on time, CIRC 3 of 3, and a
    cancelled stop (no delay) counts for neither."""
    now_ns = (int(time.time()) - 60) * 1_000_000_000
    events = [("2", -120), ("2", -60), ("2", 300), ("2", 301), ("CIRC", 0), ("CIRC", 45), ("CIRC", 299)]
    lines = [
        f"transit_delay,org=autolinee-toscane,gateway=gtfs-rt-prato,sensor=s{i},route={route} "
        f'trip="t{i}",stop_sequence=1i,status="scheduled",delay_s={delay}i {now_ns + i}'
        for i, (route, delay) in enumerate(events)
    ]
    lines.append(
        "transit_delay,org=autolinee-toscane,gateway=gtfs-rt-prato,sensor=s9,route=2 "
        f'trip="t9",stop_sequence=1i,status="cancelled" {now_ns + 9}'
    )
    influx_db.write(lines)
    return influx_db


def test_on_time_is_from_a_minute_early_to_five_minutes_late_of_the_stops_with_a_delay(
    delays: InfluxClient,
) -> None:
    ((share,),) = [[row[1] for row in s["values"]] for s in answer(delays, "Puntualità / On time")]

    assert share == pytest.approx(100 * 5 / 7)


def test_on_time_by_line_gives_each_line_its_share_mean_delay_and_stops(delays: InfluxClient) -> None:
    rows = {
        s["tags"]["route"]: dict(zip(s["columns"], s["values"][0], strict=True))
        for s in answer(delays, "Puntualità per linea / On time by line")
    }

    assert rows["2"]["puntuali %"] == pytest.approx(50.0)
    assert rows["2"]["fermate"] == 4
    assert rows["2"]["ritardo medio s"] == pytest.approx((-120 - 60 + 300 + 301) / 4)
    assert rows["CIRC"]["puntuali %"] == pytest.approx(100.0)
