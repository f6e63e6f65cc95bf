"""The alert store: one active alert per (rule, org, entity), whatever the order or concurrency."""

from __future__ import annotations

import tempfile
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from cloud.core.alerts import Alert, AlertNotFoundError
from cloud.core.lifecycle import Event, InvalidTransitionError, next_state
from cloud.rules.store import AlertStore, alerts_table

T0 = datetime(2026, 11, 24, 8, tzinfo=UTC)
ENTITIES = ["p-a", "p-b"]


def alert(
    entity: str = "p-a", minutes: float = 0, rule: str = "parking-full", state: str = "firing"
) -> Alert:
    return Alert(
        rule=rule,
        org="comune-prato",
        entity=entity,
        gateway="gw-x",
        kind="parking",
        severity="warning",
        state=state,  # type: ignore[arg-type]
        since=T0,
        ts=T0 + timedelta(minutes=minutes),
        message="occupancy_pct 97 above 95",
        value=97.0,
        threshold=95.0,
    )


def active_rows(store: AlertStore) -> list[tuple[str, str, str]]:
    with store.engine.connect() as conn:
        q = sa.select(alerts_table.c.rule, alerts_table.c.org, alerts_table.c.entity).where(
            alerts_table.c.state != "resolved"
        )
        return [(r[0], r[1], r[2]) for r in conn.execute(q)]


@pytest.fixture
def store(tmp_path: Path) -> AlertStore:
    return AlertStore(f"sqlite:///{tmp_path / 'alerts.db'}")


def test_the_database_refuses_a_second_active_alert_for_one_key(store: AlertStore) -> None:
    store.fire(alert())
    row = {
        "rule": "parking-full", "org": "comune-prato", "entity": "p-a", "gateway": "gw-x",
        "kind": "parking", "severity": "warning", "state": "firing",
        "since": T0, "fired_at": T0, "updated_at": T0, "message": "x",
    }  # fmt: skip
    with pytest.raises(sa.exc.IntegrityError), store.engine.begin() as conn:
        conn.execute(alerts_table.insert().values(**row))


def test_firing_twice_is_one_alert_and_a_counted_duplicate(store: AlertStore) -> None:
    first = store.fire(alert())
    again = store.fire(alert(minutes=1))
    assert (first.outcome, again.outcome) == ("opened", "duplicate")
    assert again.alert.id == first.alert.id
    assert store.get(first.alert.id).duplicates == 1


def test_acknowledge_then_resolve_keeps_the_history(store: AlertStore) -> None:
    opened = store.fire(alert()).alert
    acked = store.acknowledge(opened.id, by="ada", note="crew on the way", at=T0 + timedelta(minutes=2))
    assert (acked.outcome, acked.alert.state, acked.alert.acked_by) == ("acknowledged", "acknowledged", "ada")
    assert store.fire(alert(minutes=3)).outcome == "duplicate"  # acknowledged is still active
    done = store.resolve(opened.id, by="ada", at=T0 + timedelta(minutes=5))
    assert done.alert.state == "resolved"
    assert [e[0] for e in store.events(opened.id)] == ["fire", "ack", "resolve"]


def test_a_fire_after_resolve_opens_a_new_alert(store: AlertStore) -> None:
    first = store.fire(alert()).alert
    store.resolve_key(alert(minutes=5, state="resolved"))
    second = store.fire(alert(minutes=10))
    assert second.outcome == "opened"
    assert second.alert.id != first.id
    assert store.get(first.id).state == "resolved"


def test_acknowledging_a_resolved_alert_is_refused_and_unknown_ids_are_named(store: AlertStore) -> None:
    opened = store.fire(alert()).alert
    store.resolve(opened.id, by="ada")
    with pytest.raises(InvalidTransitionError, match="cannot ack an alert that is resolved"):
        store.acknowledge(opened.id, by="ada")
    with pytest.raises(AlertNotFoundError, match="no alert with id 999"):
        store.resolve(999, by="ada")


def test_an_alert_in_a_silence_or_maintenance_window_is_stored_but_not_notified(store: AlertStore) -> None:
    store.add_silence(
        starts_at=T0 - timedelta(hours=1), ends_at=T0 + timedelta(hours=1), reason="resurfacing",
        created_by="ada", kind="maintenance", gateway="gw-x",
    )  # fmt: skip
    t = store.fire(alert())
    assert t.outcome == "opened"
    assert t.alert.is_silenced
    assert not t.should_notify
    later = store.fire(alert(entity="p-b", minutes=120))
    assert later.should_notify


def test_a_flapping_key_is_stored_but_not_notified(store: AlertStore) -> None:
    notified = []
    for i in range(6):
        t = store.fire(alert(minutes=10 * i))
        notified.append(t.should_notify)
        store.resolve_key(alert(minutes=10 * i + 5, state="resolved"))
    assert notified == [True, True, True, False, False, False]


def test_concurrent_firing_from_two_engines_on_one_database_opens_one_alert(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    stores = [AlertStore(url), AlertStore(url)]
    start = threading.Barrier(8)
    outcomes: list[str] = []

    def fire(i: int) -> None:
        start.wait()
        for k in range(5):
            outcomes.append(stores[i % 2].fire(alert(entity=f"p-{k}", minutes=i)).outcome)

    threads = [threading.Thread(target=fire, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(active_rows(stores[0])) == [("parking-full", "comune-prato", f"p-{k}") for k in range(5)]
    assert outcomes.count("opened") == 5
    assert outcomes.count("duplicate") == 35


def test_the_lifecycle_table_has_no_dead_end() -> None:
    for state in ("firing", "acknowledged", "resolved"):
        assert next_state(state, Event.FIRE) in ("firing", "acknowledged")
        assert next_state(state, Event.RESOLVE) == "resolved"
    with pytest.raises(InvalidTransitionError):
        next_state(None, Event.ACK)


class AlertLifecycle(RuleBasedStateMachine):
    """Random fire/ack/resolve sequences, some fired by two threads at once, against a model."""

    def __init__(self) -> None:
        super().__init__()
        self.minutes = 0
        self.model: dict[str, str] = {}  # entity -> state of its latest alert

    @initialize()
    def open_store(self) -> None:
        # A file, not `sqlite://`: an in-memory database is private to each thread's connection.
        self.folder = tempfile.TemporaryDirectory()
        self.store = AlertStore(f"sqlite:///{self.folder.name}/alerts.db", flap_max=10_000)

    def teardown(self) -> None:
        if hasattr(self, "store"):
            self.store.engine.dispose()
            self.folder.cleanup()

    def _tick(self) -> int:
        self.minutes += 1
        return self.minutes

    @rule(entity=st.sampled_from(ENTITIES))
    def fire(self, entity: str) -> None:
        t = self.store.fire(alert(entity=entity, minutes=self._tick()))
        was = self.model.get(entity)
        assert t.outcome == ("duplicate" if was in ("firing", "acknowledged") else "opened")
        self.model[entity] = t.alert.state

    @rule(entity=st.sampled_from(ENTITIES))
    def fire_concurrently(self, entity: str) -> None:
        m = self._tick()
        outcomes: list[str] = []
        threads = [
            threading.Thread(
                target=lambda: outcomes.append(self.store.fire(alert(entity=entity, minutes=m)).outcome)
            )
            for _ in range(3)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        expected_opened = 0 if self.model.get(entity) in ("firing", "acknowledged") else 1
        assert outcomes.count("opened") == expected_opened
        if expected_opened:
            self.model[entity] = "firing"

    @precondition(lambda self: any(s in ("firing", "acknowledged") for s in self.model.values()))
    @rule(data=st.data())
    def acknowledge(self, data: st.DataObject) -> None:
        entity = data.draw(st.sampled_from([e for e, s in self.model.items() if s != "resolved"]))
        (current,) = [a for a in self.store.active() if a.entity == entity]
        t = self.store.acknowledge(current.id, by="op", at=T0 + timedelta(minutes=self._tick()))
        assert t.alert.state == "acknowledged"
        self.model[entity] = "acknowledged"

    @rule(entity=st.sampled_from(ENTITIES))
    def resolve(self, entity: str) -> None:
        t = self.store.resolve_key(alert(entity=entity, minutes=self._tick(), state="resolved"))
        if self.model.get(entity) in ("firing", "acknowledged"):
            assert t is not None
            assert t.alert.state == "resolved"
            self.model[entity] = "resolved"
        else:
            assert t is None

    @invariant()
    def at_most_one_active_alert_per_key_and_it_matches_the_model(self) -> None:
        if not hasattr(self, "store"):
            return
        keys = active_rows(self.store)
        assert len(keys) == len(set(keys))
        active = {a.entity: a.state for a in self.store.active()}
        assert active == {e: s for e, s in self.model.items() if s != "resolved"}


AlertLifecycle.TestCase.settings = settings(max_examples=25, stateful_step_count=20, deadline=None)
test_alert_lifecycle_never_has_two_active_alerts_or_a_stuck_state = AlertLifecycle.TestCase
