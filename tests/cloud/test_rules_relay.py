"""Operators' acknowledgements and resolutions in the alert store, turned into alerts to send on.

The broker and InfluxDB side (the retained message replaced, the point written) is proved end
to end in tests/e2e/test_alerts_e2e.py; here, what the relay makes of the store's history.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from cloud.io.influx.points import alert_line
from cloud.rules.relay import OperatorRelay
from cloud.rules.store import AlertStore

from support import parking_full

T0 = datetime(2026, 11, 24, 8, tzinfo=UTC)
FIRING = parking_full(
    T0 - timedelta(minutes=15), ts=T0, message="occupancy_pct 97 above 95 for 15 min", value=97.0
)


@pytest.fixture
def store(tmp_path: Path) -> AlertStore:
    return AlertStore(f"sqlite:///{tmp_path / 'alerts.db'}")


def relay(store: AlertStore) -> OperatorRelay:
    return OperatorRelay(store, now=T0 - timedelta(hours=1))


def test_an_ack_becomes_an_acknowledged_alert_with_its_time_to_acknowledge(store: AlertStore) -> None:
    r = relay(store)
    opened = store.fire(FIRING)
    store.acknowledge(opened.alert.id, by="comune-prato/anna", at=T0 + timedelta(seconds=90))
    [(acked, is_current)] = r.pending()
    assert is_current
    assert acked.key == FIRING.key
    assert (acked.state, acked.ts, acked.ack_s, acked.acked_by) == (
        "acknowledged",
        T0 + timedelta(seconds=90),
        90.0,
        "comune-prato/anna",
    )
    assert acked.topic == FIRING.topic, "it replaces the retained firing message"
    body = orjson.loads(acked.to_json())
    assert (body["state"], body["id"], body["ack_s"]) == ("acknowledged", opened.alert.id, 90.0)
    # The firing point's tags with state acknowledged; still open, no longer unacknowledged.
    assert alert_line(acked).split(" ", 1)[0] == alert_line(FIRING).split(" ", 1)[0].replace(
        "state=firing", "state=acknowledged"
    )
    assert "ack_s=90.0" in alert_line(acked)
    assert ",active=1i,unacked=0i," in alert_line(acked)
    assert ",active=1i,unacked=1i," in alert_line(FIRING)


def test_a_move_comes_back_until_committed_and_then_never_again(store: AlertStore) -> None:
    r = relay(store)
    opened = store.fire(FIRING)
    store.acknowledge(opened.alert.id, by="anna", at=T0 + timedelta(seconds=5))
    assert len(r.pending()) == 1
    assert len(r.pending()) == 1, "not sent yet (InfluxDB was down): offered again"
    r.commit()
    assert r.pending() == []


def test_the_engines_own_resolutions_are_not_relayed_but_an_operators_are(store: AlertStore) -> None:
    r = relay(store)
    store.fire(FIRING)
    store.resolve_key(FIRING.resolved(T0 + timedelta(minutes=5), "back to 80"))
    assert r.pending() == [], "the engine publishes its own transitions"
    opened = store.fire(replace(FIRING, ts=T0 + timedelta(minutes=10)))
    store.resolve(opened.alert.id, by="anna", note="sensor replaced", at=T0 + timedelta(minutes=11))
    [(resolved, is_current)] = r.pending()
    assert is_current
    assert (resolved.state, resolved.message) == ("resolved", "resolved by anna: sensor replaced")
    assert ",active=0i,unacked=0i," in alert_line(resolved)


def test_a_move_overtaken_by_a_later_one_or_a_new_alert_does_not_replace_the_retained_state(
    store: AlertStore,
) -> None:
    r = relay(store)
    opened = store.fire(FIRING)
    store.acknowledge(opened.alert.id, by="anna", at=T0 + timedelta(minutes=1))
    store.resolve(opened.alert.id, by="anna", at=T0 + timedelta(minutes=2))
    store.fire(replace(FIRING, ts=T0 + timedelta(minutes=3)))  # the condition is back: a new alert
    moves = r.pending()
    assert [(a.state, is_current) for a, is_current in moves] == [
        ("acknowledged", False),
        ("resolved", False),
    ], "both still go to InfluxDB (history), neither over the new firing message"


def test_moves_made_while_the_service_was_down_are_sent_at_start_within_the_lookback(
    store: AlertStore,
) -> None:
    old = store.fire(replace(FIRING, entity="p-serraglio", ts=T0 - timedelta(days=2, minutes=10)))
    store.acknowledge(old.alert.id, by="anna", at=T0 - timedelta(days=2))
    recent = store.fire(FIRING)
    store.acknowledge(recent.alert.id, by="anna", at=T0 + timedelta(minutes=1))
    started = OperatorRelay(store, lookback=timedelta(days=1), now=T0 + timedelta(minutes=5))
    assert [a.entity for a, _ in started.pending()] == ["p-mercatale"]
