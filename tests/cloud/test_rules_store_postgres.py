"""The alert store and the notification outbox beside it on PostgreSQL: the same races, on a real server."""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from cloud.core.alerts import Alert
from cloud.dev.postgres import PostgresCluster
from cloud.io.db import make_engine
from cloud.notify.outbox import SqlOutbox
from cloud.rules.store import AlertStore, alerts_table

T0 = datetime(2026, 11, 24, 8, tzinfo=UTC)


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    # Not under pytest's tmp_path: as root the server runs as `postgres`, which cannot enter
    # pytest's 0700 root-owned base folder.
    cluster = PostgresCluster(Path(tempfile.mkdtemp(prefix="sitroom-pg-alerts-")))
    try:
        cluster.start()
        yield cluster.create_database("alerts_test")
    finally:
        cluster.remove()


@pytest.fixture
def open_store(pg_url: str) -> Iterator[Callable[[], AlertStore]]:
    """`open_store()` gives a store on the test database; all are closed afterwards (psycopg
    warns about connections left for the garbage collector)."""
    stores: list[AlertStore] = []

    def make() -> AlertStore:
        stores.append(AlertStore(pg_url))
        return stores[-1]

    yield make
    for s in stores:
        s.close()


def alert(entity: str, minutes: float = 0) -> Alert:
    return Alert(
        rule="parking-full", org="comune-prato", entity=entity, gateway="gw-x", kind="parking",
        severity="warning", state="firing", since=T0, ts=T0 + timedelta(minutes=minutes),
        message="full", value=97.0, threshold=95.0, context={"score": 0.9},
    )  # fmt: skip


def test_two_engines_on_postgresql_firing_at_once_open_one_alert_per_key(
    open_store: Callable[[], AlertStore],
) -> None:
    stores = [open_store(), open_store()]
    start = threading.Barrier(6)
    outcomes: list[str] = []

    def fire(i: int) -> None:
        start.wait()
        for k in range(4):
            outcomes.append(stores[i % 2].fire(alert(f"pg-{k}", minutes=i)).outcome)

    threads = [threading.Thread(target=fire, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert outcomes.count("opened") == 4
    assert outcomes.count("duplicate") == 20
    with stores[0].engine.connect() as conn:
        q = sa.select(alerts_table.c.entity).where(alerts_table.c.state != "resolved")
        assert sorted(r[0] for r in conn.execute(q)) == [f"pg-{k}" for k in range(4)]


def test_the_lifecycle_and_context_round_trip_on_postgresql(open_store: Callable[[], AlertStore]) -> None:
    store = open_store()
    opened = store.fire(alert("pg-life")).alert
    assert opened.context == {"score": 0.9}
    assert opened.since == T0
    store.acknowledge(opened.id, by="ada", at=T0 + timedelta(minutes=1))
    done = store.resolve(opened.id, by="ada", at=T0 + timedelta(minutes=2))
    assert (done.alert.state, done.alert.resolved_at) == ("resolved", T0 + timedelta(minutes=2))
    assert store.fire(alert("pg-life", minutes=3)).outcome == "opened"


def test_notifiers_claiming_from_one_outbox_on_postgresql_at_once_never_take_a_delivery_twice(
    pg_url: str,
) -> None:
    outboxes = [SqlOutbox(make_engine(pg_url)) for _ in range(4)]
    try:
        outboxes[0].add([("ops-hook", alert(f"p-{i}")) for i in range(400)], T0, T0)
        claimed: list[list[int]] = [[] for _ in outboxes]
        barrier = threading.Barrier(len(outboxes))

        def claim(n: int) -> None:
            barrier.wait()
            while batch := outboxes[n].claim(f"rules-{n}", T0, timedelta(minutes=5), 7):
                claimed[n] += [d.id for d in batch]
                outboxes[n].done(d.id for d in batch)  # delivered

        threads = [threading.Thread(target=claim, args=(n,)) for n in range(len(outboxes))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        every = [i for ids in claimed for i in ids]
        assert len(every) == len(set(every)) == 400
    finally:
        for o in outboxes:
            o.close()
