"""The worksite registry's state written to InfluxDB (`worksite`), as the Worksites dashboard reads it.

A real InfluxDB (fixture `influx_db`) and a SQLite registry holding Prato's demo worksites.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from support_transit import OPERATOR as BUS_OPERATOR
from support_transit import PRATO_AREA as BUS_AREA
from support_transit import prato_feed_zip

from cloud.core.geo import ServiceAreas, Site
from cloud.core.orgs import Caller, Role
from cloud.dashboards.queries import expand
from cloud.dev.demo_data import MUNICIPALITY, load_demo
from cloud.io.db import make_engine
from cloud.io.influx.client import InfluxClient
from cloud.transit.lookup import StoreNetwork
from cloud.transit.store import TransitStore
from cloud.worksites.models import WorksiteCreate
from cloud.worksites.snapshot import (
    MEASUREMENT,
    NEAR_MEASUREMENT,
    ROUTE_MEASUREMENT,
    WorksiteSnapshots,
    phase,
)
from cloud.worksites.store import WorksiteStore

NOW = datetime(2026, 11, 24, 9, 0, 30, tzinfo=UTC)
OPERATOR = Caller(MUNICIPALITY, Role.MUNICIPALITY)


@pytest.fixture
def registry(tmp_path: Path) -> WorksiteStore:
    store = WorksiteStore.open(f"sqlite:///{tmp_path / 'worksites.db'}", areas=ServiceAreas.load())
    load_demo(store, NOW)
    return store


def last_points(influx: InfluxClient) -> dict[str, dict[str, Any]]:
    """Worksite id -> its last point's fields."""
    out = {}
    for s in influx.series(f'SELECT last(*) FROM "{MEASUREMENT}" GROUP BY "id"'):
        row = dict(zip(s["columns"], s["values"][0], strict=True))
        out[s["tags"]["id"]] = {k.removeprefix("last_"): v for k, v in row.items()}
    return out


def point_count(influx: InfluxClient) -> int:
    series = influx.series(f'SELECT count("active") FROM "{MEASUREMENT}"')
    return int(series[0]["values"][0][1]) if series else 0


def test_each_worksite_near_now_is_one_point_with_its_phase_and_impact(
    registry: WorksiteStore, influx_db: InfluxClient
) -> None:
    written = WorksiteSnapshots(registry, sites={}).poll(influx_db, NOW)
    points = last_points(influx_db)
    assert written == len(points)
    assert points["publiacqua-pistoiese-main"]["state"] == "active"
    assert points["publiacqua-pistoiese-main"]["lanes_closed"] == 1
    assert points["publiacqua-pistoiese-main"]["parking_spaces_removed"] == 22
    assert points["open-fiber-pistoiese-ftth"]["state"] == "planned"
    assert points["toscana-energia-montegrappa-allacci"]["state"] == "suspended"
    assert points["alia-ferrucci-cassonetti"]["state"] == "ended", "cancelled"
    # Ended two months ago, or starting in two months: not near now.
    assert "comune-prato-roma-asfalto" not in points
    assert "toscana-energia-galilei-gas" not in points
    for fields in points.values():
        assert fields["active"] == int(fields["state"] == "active")
        assert fields["planned"] == int(fields["state"] == "planned")


def test_the_timestamp_is_the_start_of_the_interval_and_tags_say_what_a_worksite_is(
    registry: WorksiteStore, influx_db: InfluxClient
) -> None:
    WorksiteSnapshots(registry, sites={}, interval_s=60).poll(influx_db, NOW)
    (series,) = influx_db.series(
        f'SELECT "state" FROM "{MEASUREMENT}" WHERE "id" = \'publiacqua-pistoiese-main\' GROUP BY *'
    )
    assert series["values"] == [[int(datetime(2026, 11, 24, 9, 0, tzinfo=UTC).timestamp() * 1000), "active"]]
    assert series["tags"] == {
        "id": "publiacqua-pistoiese-main",
        "org": "publiacqua",
        "street": "Via Pistoiese",
        "work_type": "water",
    }


def test_polling_again_writes_only_on_a_new_interval_or_a_change(
    registry: WorksiteStore, influx_db: InfluxClient
) -> None:
    snapshots = WorksiteSnapshots(registry, sites={}, interval_s=60)
    first = snapshots.poll(influx_db, NOW)
    assert snapshots.poll(influx_db, NOW + timedelta(seconds=10)) == 0, "nothing changed"
    registry.update(
        OPERATOR, "open-fiber-pistoiese-ftth", {"status": "active", "actual_start": NOW.isoformat()}
    )
    assert snapshots.poll(influx_db, NOW + timedelta(seconds=20)) == first, "a change is written at once"
    assert last_points(influx_db)["open-fiber-pistoiese-ftth"]["state"] == "active"
    assert snapshots.poll(influx_db, NOW + timedelta(seconds=29)) == 0
    assert snapshots.poll(influx_db, NOW + timedelta(seconds=30)) == first, "a new interval"
    assert point_count(influx_db) == 3 * first


def test_a_restart_or_a_second_instance_rewrites_the_same_points(
    registry: WorksiteStore, influx_db: InfluxClient
) -> None:
    written = WorksiteSnapshots(registry, sites={}).poll(influx_db, NOW)
    WorksiteSnapshots(registry, sites={}).poll(influx_db, NOW + timedelta(seconds=5))
    assert point_count(influx_db) == written, "same series and timestamp: stored once"


def test_a_planned_worksite_turns_active_when_its_window_opens(registry: WorksiteStore) -> None:
    ws = registry.get("open-fiber-pistoiese-ftth")
    assert phase(ws, ws.start - timedelta(seconds=1)) == "planned"
    assert phase(ws, ws.start) == "active"
    assert phase(ws, ws.end) == "ended"


def test_bad_registry_rows_are_left_out_and_counted_and_the_others_written(
    registry: WorksiteStore, influx_db: InfluxClient
) -> None:
    good = WorksiteSnapshots(registry, sites={}).poll(influx_db, NOW)
    with registry.engine.begin() as conn:
        # Edited by hand, or by another version: a status we do not know, impact not JSON.
        conn.execute(
            sa.text("UPDATE ws_worksites SET status = 'ongoing' WHERE id = 'publiacqua-galilei-sewer'")
        )
        conn.execute(
            sa.text("UPDATE ws_worksites SET impact = '{not json' WHERE id = 'alia-mercatale-isole'")
        )
    # A street that line protocol cannot hold faithfully (a backslash in a tag value).
    item = WorksiteCreate.model_validate(
        registry.get("open-fiber-bologna-ftth").writable() | {"id": "ws-backslash", "street": "Via A\\B"}
    )
    registry.create(OPERATOR, item, now=NOW)
    snapshots = WorksiteSnapshots(registry, sites={})
    assert snapshots.poll(influx_db, NOW + timedelta(minutes=1)) == good - 2
    assert snapshots.unreadable == 3
    assert "publiacqua-pistoiese-main" in last_points(influx_db)


def test_tag_values_with_commas_spaces_and_equals_signs_come_back_as_written(
    registry: WorksiteStore, influx_db: InfluxClient
) -> None:
    street = 'Via Roma, 12 = angolo "Piazza Duomo"'
    item = WorksiteCreate.model_validate(
        registry.get("open-fiber-bologna-ftth").writable() | {"id": "ws-odd-street", "street": street}
    )
    registry.create(OPERATOR, item, now=NOW)
    WorksiteSnapshots(registry, sites={}).poll(influx_db, NOW)
    (series,) = influx_db.series(
        f'SHOW TAG VALUES FROM "{MEASUREMENT}" WITH KEY = "street" WHERE "id" = \'ws-odd-street\''
    )
    assert series["values"] == [["street", street]]


def test_a_registry_not_created_yet_is_retried_without_failing(
    tmp_path: Path, influx_db: InfluxClient
) -> None:
    url = f"sqlite:///{tmp_path / 'later.db'}"
    snapshots = WorksiteSnapshots(WorksiteStore(make_engine(url), areas=ServiceAreas.load()))
    assert snapshots.poll(influx_db, NOW) == 0, "no tables yet: the API has not started"
    load_demo(WorksiteStore.open(url, areas=ServiceAreas.load()), NOW)
    assert snapshots.poll(influx_db, NOW + timedelta(seconds=5)) > 0


def test_the_dashboard_timeline_query_draws_each_worksites_phases_in_order(
    tmp_path: Path, influx_db: InfluxClient
) -> None:
    # The panel's query runs relative to the real now(), so the registry is too.
    now = datetime.now(UTC) - timedelta(minutes=10)
    registry = WorksiteStore.open(f"sqlite:///{tmp_path / 'now.db'}", areas=ServiceAreas.load())
    load_demo(registry, now)
    snapshots = WorksiteSnapshots(registry, sites={}, interval_s=60)
    snapshots.poll(influx_db, now)
    registry.update(
        OPERATOR, "open-fiber-pistoiese-ftth", {"status": "active", "actual_start": now.isoformat()}
    )
    snapshots.poll(influx_db, now + timedelta(minutes=2))
    registry.update(
        OPERATOR,
        "open-fiber-pistoiese-ftth",
        {"status": "completed", "actual_end": (now + timedelta(minutes=4)).isoformat()},
    )
    snapshots.poll(influx_db, now + timedelta(minutes=4))
    query = expand(
        'SELECT last("state") FROM "worksite" WHERE $timeFilter AND "id" = \'open-fiber-pistoiese-ftth\' '
        'GROUP BY time($__interval), "id" fill(previous)',
        range_s=3600,
        interval="1m",
        variables={},
    )
    (series,) = influx_db.series(query)
    states = [v for _, v in series["values"] if v is not None]
    changes = [s for i, s in enumerate(states) if i == 0 or states[i - 1] != s]
    assert changes == ["planned", "active", "ended"]
    assert len(states) > 3, "fill(previous) carries a phase over the minutes without a point"


SITES = {
    # On Via Pistoiese, beside the demo's active water-main worksite, and far from everything.
    "t-pistoiese-in": Site(lat=43.8850, lon=11.0820),
    "p-far-away": Site(lat=43.8520, lon=11.1370),
}


def test_the_sensors_around_a_worksite_that_is_not_over_are_written_with_their_distance(
    registry: WorksiteStore, influx_db: InfluxClient
) -> None:
    WorksiteSnapshots(registry, sites=SITES, radius_m=400).poll(influx_db, NOW)
    near = {
        (s["tags"]["id"], s["tags"]["sensor"]): dict(zip(s["columns"], s["values"][0], strict=True))
        for s in influx_db.series(f'SELECT last(*) FROM "{NEAR_MEASUREMENT}" GROUP BY "id", "sensor"')
    }
    assert ("publiacqua-pistoiese-main", "t-pistoiese-in") in near
    assert near[("publiacqua-pistoiese-main", "t-pistoiese-in")]["last_active"] == 1
    assert near[("publiacqua-pistoiese-main", "t-pistoiese-in")]["last_distance_m"] <= 400
    assert not any(sensor == "p-far-away" for _, sensor in near)
    # The cancelled worksite is over: no sensor is chained to it.
    assert not any(ws == "alia-ferrucci-cassonetti" for ws, _ in near)


def test_a_dashboard_variable_chains_a_worksite_to_the_sensors_around_it(
    registry: WorksiteStore, influx_db: InfluxClient
) -> None:
    WorksiteSnapshots(registry, sites=SITES, radius_m=400).poll(influx_db, NOW)
    query = expand(
        f'SHOW TAG VALUES FROM "{NEAR_MEASUREMENT}" WITH KEY = "sensor" WHERE "id" =~ /^$cantiere$/',
        variables={"cantiere": ["publiacqua-pistoiese-main"]},
    )
    (series,) = influx_db.series(query)
    assert [v[1] for v in series["values"]] == ["t-pistoiese-in"]


@pytest.fixture
def prato_network(tmp_path: Path) -> StoreNetwork:
    store = TransitStore.open(f"sqlite:///{tmp_path / 'transit.db'}")
    store.import_feed(prato_feed_zip(), operator=BUS_OPERATOR, area=BUS_AREA)
    return StoreNetwork(store)


def test_a_worksite_on_bus_routes_is_chained_to_each_route_with_its_stops_inside(
    registry: WorksiteStore, influx_db: InfluxClient, prato_network: StoreNetwork
) -> None:
    WorksiteSnapshots(registry, sites={}, transit=prato_network).poll(influx_db, NOW)

    rows = {
        (s["tags"]["id"], s["tags"]["route"]): dict(zip(s["columns"], s["values"][0], strict=True))
        for s in influx_db.series(
            f'SELECT last("name") AS "name", last("stops") AS "stops", last("active") AS "active", '
            f'last("distance_m") AS "distance_m" FROM "{ROUTE_MEASUREMENT}" GROUP BY "id", "route"'
        )
    }
    # The fibre crossing of Viale Piave (active) lies on LAM Blu, the 2 and the Circolare; their
    # Viale Piave stop is 40 m west of it, beyond the 30 m a worksite drawn as a line takes.
    piave = {route: row for (ws, route), row in rows.items() if ws == "open-fiber-piave-ftth"}
    assert set(piave) == {"LAM-BLU", "2", "CIRC"}
    assert piave["LAM-BLU"]["name"] == "LAM Blu"
    assert piave["LAM-BLU"]["active"] == 1
    assert {row["stops"] for row in piave.values()} == {0}
    # An ended worksite has no route points; a worksite away from every line has none either.
    assert not [ws for ws, _ in rows if ws == "comune-prato-roma-asfalto"]
    assert all(row["distance_m"] <= 30 for row in rows.values())
