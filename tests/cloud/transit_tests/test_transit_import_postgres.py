"""The same import on PostgreSQL: a new version replaces the old one, a broken one changes nothing."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from support_transit import OPERATOR, PRATO_AREA, edited, prato_feed_zip

from cloud.dev.postgres import PostgresCluster
from cloud.transit import network
from cloud.transit.store import TransitStore
from edge.contract.gtfs.static import FeedError


@pytest.fixture(scope="module")
def pg_store() -> Iterator[TransitStore]:
    # Not under pytest's tmp_path: as root the server runs as `postgres`, which cannot enter
    # pytest's 0700 root-owned base folder.
    cluster = PostgresCluster(Path(tempfile.mkdtemp(prefix="sitroom-pg-transit-")))
    try:
        cluster.start()
        store = TransitStore.open(cluster.create_database("transit_test"))
        yield store
        store.close()
    finally:
        cluster.remove()


def test_on_postgresql_a_new_version_replaces_the_old_and_a_broken_one_changes_nothing(
    pg_store: TransitStore,
) -> None:
    first = pg_store.import_feed(prato_feed_zip(), operator=OPERATOR, area=PRATO_AREA)
    more = edited("stops.txt", lambda ls: ls.append("PO-NUOVA,Fermata nuova,43.8800,11.1000,1"))
    second = pg_store.import_feed(more, operator=OPERATOR, area=PRATO_AREA)
    with pytest.raises(FeedError):
        pg_store.import_feed(prato_feed_zip({"stop_times.txt": None}), operator=OPERATOR, area=PRATO_AREA)

    assert (first.feed.version, second.feed.version) == (1, 2)
    assert pg_store.current_feed(OPERATOR).id == second.feed.id
    assert len(network.stops(pg_store, OPERATOR)) == 24
    assert sum(r.trips for r in network.routes(pg_store, OPERATOR)) == 833
    assert network.trip_stops(pg_store, OPERATOR, "LAM-BLU_FER_0_2410")[0].departure == "24:10:00"
