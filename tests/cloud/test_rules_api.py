"""The alerts HTTP API: an organisation handles its own alerts; conflicts are 409, strangers 404."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from cloud.core.alerts import Alert
from cloud.core.orgs import Caller, Role
from cloud.dev.apiserver import ThreadedApiServer
from cloud.io.http import get_caller
from cloud.rules.api import router
from cloud.rules.store import AlertStore

T0 = datetime(2026, 11, 24, 8, tzinfo=UTC)
Serve = Callable[[Caller], httpx.Client]


def alert(org: str, entity: str) -> Alert:
    return Alert(
        rule="parking-full", org=org, entity=entity, gateway="gw-x", kind="parking", severity="warning",
        state="firing", since=T0, ts=T0, message="full", value=97.0, threshold=95.0,
    )  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> AlertStore:
    return AlertStore(f"sqlite:///{tmp_path / 'alerts.db'}")


@pytest.fixture
def serve(store: AlertStore) -> Iterator[Callable[[Caller], httpx.Client]]:
    """A real API server on loopback; `serve(caller)` gives a client acting as that caller."""
    app = FastAPI()
    app.state.alert_store = store
    app.include_router(router)
    who: list[Caller] = []
    # Authentication is the worksite API's (tested there); here only who the caller is matters.
    app.dependency_overrides[get_caller] = lambda: who[-1]
    clients: list[httpx.Client] = []

    def as_caller(caller: Caller) -> httpx.Client:
        who.append(caller)
        clients.append(httpx.Client(base_url=server.url, timeout=30))
        return clients[-1]

    with ThreadedApiServer(app) as server:
        yield as_caller
    for c in clients:
        c.close()


def test_an_organisation_acknowledges_and_resolves_its_own_alert(store: AlertStore, serve: Serve) -> None:
    mine = store.fire(alert("acqua-spa", "p-a")).alert
    client = serve(Caller(org="acqua-spa", role=Role.UTILITY))
    assert [a["id"] for a in client.get("/alerts").json()] == [mine.id]
    acked = client.post(f"/alerts/{mine.id}/ack", json={"note": "on it"})
    assert (acked.status_code, acked.json()["state"], acked.json()["acked_by"]) == (
        200,
        "acknowledged",
        "acqua-spa",
    )
    resolved = client.post(f"/alerts/{mine.id}/resolve")
    assert resolved.json()["state"] == "resolved"
    again = client.post(f"/alerts/{mine.id}/ack")
    assert again.status_code == 409
    assert "cannot ack an alert that is resolved" in again.json()["detail"]
    events = client.get(f"/alerts/{mine.id}").json()["events"]
    assert [e["event"] for e in events] == ["fire", "ack", "resolve"]


def test_another_organisations_alert_is_not_found_but_the_municipality_sees_all(
    store: AlertStore, serve: Serve
) -> None:
    theirs = store.fire(alert("comune-prato", "p-b")).alert
    stranger = serve(Caller(org="acqua-spa", role=Role.UTILITY))
    assert stranger.get("/alerts").json() == []
    assert stranger.post(f"/alerts/{theirs.id}/ack").status_code == 404
    operator = serve(Caller(org="comune-prato", role=Role.MUNICIPALITY))
    assert [a["id"] for a in operator.get("/alerts").json()] == [theirs.id]


def test_a_maintenance_window_is_created_for_the_callers_organisation(
    store: AlertStore, serve: Serve
) -> None:
    client = serve(Caller(org="acqua-spa", role=Role.UTILITY))
    body = {
        "starts_at": T0.isoformat(), "ends_at": (T0 + timedelta(hours=2)).isoformat(),
        "reason": "pump replacement", "kind": "maintenance", "gateway": "gw-x",
    }  # fmt: skip
    created = client.post("/alerts/silences", json=body)
    assert created.status_code == 201
    assert created.json()["org"] == "acqua-spa"
    t = store.fire(alert("acqua-spa", "p-c"))
    assert t.alert.is_silenced
