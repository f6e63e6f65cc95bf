"""`sitroom cloud api` as a city runs it: no demo data, organisations from the one registry that
`sitroom provision org add` writes, alerts served by the production app factory."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from cloud.dev.servers import free_port
from cloud.rules.store import AlertStore

from support import REPO, parking_full, wait_until

PASSWORD = "s3cret-pw"


def sitroom(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", *args],
        cwd=REPO, capture_output=True, text=True, timeout=120, input=stdin, check=False,
    )  # fmt: skip


@pytest.fixture
def registry(tmp_path: Path) -> str:
    """A registry with the municipality and one utility, registered by provisioning."""
    db = f"sqlite:///{tmp_path / 'registry.db'}"
    for org, name, role in (
        ("comune-prato", "Comune di Prato", "municipality"),
        ("acqua", "Acqua", "utility"),
    ):
        done = sitroom(
            "provision", "--dir", str(tmp_path / "provision"), "org", "add", "--id", org,
            "--name", name, "--role", role, "--db", db,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert f"organisation {org} ({role}) registered" in done.stdout
    return db


@pytest.fixture
def api(tmp_path: Path, registry: str) -> Iterator[tuple[str, str, AlertStore]]:
    """The API with its alert store and console, no demo data; (base URL, acqua's token, alerts)."""
    added = sitroom(
        "console", "operator-add", "marco", "--org", "acqua", "--role", "utility_operator",
        "--password", PASSWORD, "--dir", str(tmp_path / "console"), "--db", registry,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    alerts_db = f"sqlite:///{tmp_path / 'alerts.db'}"
    alerts = AlertStore(alerts_db)
    port = free_port()
    log = (tmp_path / "api.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge.cli", "cloud", "api", "--db", registry, "--alerts-db", alerts_db,
         "--port", str(port), "--token-for", "acqua", "--console", str(tmp_path / "console")],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{base}/feeds/live.geojson", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(lambda: up() or proc.poll() is not None, 60, what="the API to answer")
        assert proc.poll() is None, (tmp_path / "api.log").read_text()
        token = next(
            line.split()[-1]
            for line in (tmp_path / "api.log").read_text().splitlines()
            if line.startswith("token acqua ")
        )
        yield base, token, alerts
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
        alerts.close()


def test_the_production_api_serves_the_alert_routes(api: tuple[str, str, AlertStore]) -> None:
    base, token, alerts = api
    fired = alerts.fire(parking_full(datetime(2026, 11, 24, 8, tzinfo=UTC), org="acqua", entity="p-acqua"))
    auth = {"Authorization": f"Bearer {token}"}

    listed = httpx.get(f"{base}/alerts", headers=auth)
    acked = httpx.post(f"{base}/alerts/{fired.alert.id}/ack", headers=auth, json={"note": "on it"})

    assert listed.status_code == 200, listed.text
    assert [a["id"] for a in listed.json()] == [fired.alert.id]
    assert acked.status_code == 200, acked.text
    assert alerts.get(fired.alert.id).state == "acknowledged"
    assert httpx.get(f"{base}/alerts").status_code == 401


def test_an_organisation_added_by_provisioning_is_the_one_the_worksite_api_and_the_console_see(
    api: tuple[str, str, AlertStore],
) -> None:
    base, token, _ = api

    orgs = httpx.get(f"{base}/organisations", headers={"Authorization": f"Bearer {token}"})
    with httpx.Client(base_url=base, headers={"X-Sitroom-Console": "1"}, timeout=30) as console:
        logged_in = console.post("/console/api/login", json={"username": "marco", "password": PASSWORD})
        post = console.post(
            "/console/api/threads/city/posts", json={"text": "@comune-prato @acqua @nobody la rete è ok"}
        )

    assert orgs.status_code == 200, orgs.text
    assert {(o["id"], o["role"]) for o in orgs.json()} == {
        ("comune-prato", "municipality"),
        ("acqua", "utility"),
    }
    assert logged_in.status_code == 200, logged_in.text
    assert logged_in.json()["org"] == "acqua"
    assert post.status_code in (200, 201), post.text
    assert post.json()["mentions"] == ["acqua", "comune-prato"]


def test_an_operator_of_an_unregistered_organisation_is_refused_naming_it(
    tmp_path: Path, registry: str
) -> None:
    refused = sitroom(
        "console", "operator-add", "eve", "--org", "not-registered", "--role", "utility_operator",
        "--password", PASSWORD, "--dir", str(tmp_path / "console"), "--db", registry,
    )  # fmt: skip

    assert refused.returncode != 0
    assert "'not-registered' is not a registered organisation" in refused.stderr
    assert "acqua" in refused.stderr
    assert "sitroom provision org add" in refused.stderr
