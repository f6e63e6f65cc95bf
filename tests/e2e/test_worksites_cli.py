"""The worksite registry as a user drives it: `sitroom worksites ...` and `sitroom cloud api`."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest

from cloud.core.geo import ServiceAreas
from cloud.core.orgs import (
    Caller,
    Role,
)
from cloud.dev.demo_data import demo_worksites, load_demo
from cloud.dev.servers import Mosquitto, free_port
from cloud.worksites.alerts import CoordinationAlerts
from cloud.worksites.store import WorksiteStore

from support import REPO, Recorder, wait_until

DEMO = demo_worksites(datetime.now(UTC))
# Those a GeoJSON export shows without --all: completed and cancelled ones are left out.
DEMO_OPEN = [w for w in DEMO if w.status not in ("completed", "cancelled")]

pytestmark = pytest.mark.e2e


def sitroom(*args: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "edge.cli", *args],
        cwd=REPO, capture_output=True, text=True, timeout=100, check=False, input=stdin,
    )  # fmt: skip
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_the_cli_loads_lists_updates_exports_and_reimports_the_demo_registry(tmp_path: Path) -> None:
    db = ["worksites", "--db", f"sqlite:///{tmp_path / 'ws.db'}"]
    assert f"{len(DEMO)} demo worksite(s) added" in sitroom(*db, "demo").stdout
    listed = sitroom(*db, "list", "--status", "active", "--json").stdout
    assert {w["status"] for w in orjson.loads(listed)} == {"active"}

    found = orjson.loads(sitroom(*db, "conflicts", "--json").stdout)
    assert {c["finding"] for c in found} == {"conflict", "synergy", "redig"}
    pistoiese = next(c for c in found if c["finding"] == "conflict")
    assert pistoiese["streets"] == ["Via Pistoiese", "Via Pistoiese"]

    sitroom(*db, "--as", "publiacqua", "update", "publiacqua-galilei-sewer", "--set", "status=active")
    denied = sitroom(
        *db, "--as", "publiacqua", "update", "alia-mercatale-isole", "--set", "title=x", check=False
    )
    assert denied.returncode == 1
    assert "belongs to 'alia'" in denied.stderr
    shown = orjson.loads(sitroom(*db, "show", "publiacqua-galilei-sewer", "--history").stdout)
    assert [(h["action"], h["actor"]) for h in shown["history"]] == [
        ("create", "publiacqua"),
        ("update", "publiacqua"),
    ]

    first, second = tmp_path / "first.json", tmp_path / "second.json"
    sitroom(*db, "export", "--format", "wzdx", "--all", "-o", str(first))
    assert "0 created, 0 updated" in sitroom(*db, "import", str(first)).stdout
    sitroom(*db, "export", "--format", "wzdx", "--all", "-o", str(second))
    assert first.read_bytes() == second.read_bytes()
    geojson = orjson.loads(sitroom(*db, "export", "--format", "geojson").stdout)
    assert geojson["type"] == "FeatureCollection"
    assert len(geojson["features"]) == len(DEMO_OPEN)


def test_the_cli_refuses_a_bad_worksite_naming_the_field_and_adds_nothing(tmp_path: Path) -> None:
    db = ["worksites", "--db", f"sqlite:///{tmp_path / 'ws.db'}"]
    sitroom(*db, "demo")
    bad = {
        "title": "Scavo",
        "street": "Via Roma",
        "work_type": "gas",
        "geometry": {"type": "Point", "coordinates": [43.873, 11.093]},
        "planned_start": "2026-12-01T07:00:00Z",
        "planned_end": "2026-11-01T07:00:00Z",
    }
    refused = sitroom(*db, "add", "-", stdin=orjson.dumps(bad).decode(), check=False)
    assert refused.returncode == 1
    assert "planned_end: must be after planned_start" in refused.stderr
    bad["planned_end"] = "2026-12-02T07:00:00Z"
    refused = sitroom(*db, "add", "-", stdin=orjson.dumps(bad).decode(), check=False)
    assert "geometry: coordinates outside every configured area" in refused.stderr
    assert f"{len(DEMO)} worksite(s)" in sitroom(*db, "list").stdout


def test_a_utilitys_csv_imports_with_a_column_mapping(tmp_path: Path) -> None:
    db = ["worksites", "--db", f"sqlite:///{tmp_path / 'ws.db'}"]
    sitroom(*db, "demo")
    (tmp_path / "map.yaml").write_text(
        "delimiter: ';'\n"
        "columns: {title: Lavori, street: Via, planned_start: Dal, planned_end: Al, lat: Lat, lon: Lon}\n"
        "defaults: {work_type: water}\n"
    )
    (tmp_path / "lavori.csv").write_text(
        "Lavori;Via;Dal;Al;Lat;Lon\nPerdita;Via Bologna;01/12/2026;02/12/2026;43.8900;11.0960\n"
    )
    out = sitroom(*db, "--as", "publiacqua", "import", str(tmp_path / "lavori.csv"), "--format", "csv",
                  "--mapping", str(tmp_path / "map.yaml")).stdout  # fmt: skip
    assert "1 created" in out
    mine = orjson.loads(sitroom(*db, "list", "--owner", "publiacqua", "--json").stdout)
    assert "Perdita" in [w["title"] for w in mine]


def test_conflicts_are_published_as_retained_alerts(tmp_path: Path, restartable_broker: Mosquitto) -> None:
    db = ["worksites", "--db", f"sqlite:///{tmp_path / 'ws.db'}"]
    sitroom(*db, "demo")
    sitroom(*db, "conflicts", "--publish", restartable_broker.url)
    # Retained: a subscriber arriving afterwards still gets them.
    recorder = Recorder("127.0.0.1", restartable_broker.port, ["sr/v1/alerts/+/+/#"]).start()
    try:
        wait_until(lambda: len(recorder.on("sr/v1/alerts/")) >= 6, 30, what="six retained alerts")
        topics = {t for t, _ in recorder.on("sr/v1/alerts/")}
        conflict = "publiacqua-pistoiese-main--open-fiber-pistoiese-ftth"
        assert f"sr/v1/alerts/publiacqua/worksite-conflict/{conflict}" in topics
        assert f"sr/v1/alerts/open-fiber/worksite-conflict/{conflict}" in topics
        body = orjson.loads(dict(recorder.on("sr/v1/alerts/open-fiber/worksite-conflict/"))[
            f"sr/v1/alerts/open-fiber/worksite-conflict/{conflict}"])  # fmt: skip
        assert body["state"] == "firing"
        assert "Via Pistoiese" in body["message"]
    finally:
        recorder.stop()


def test_the_api_server_serves_feeds_and_authenticated_writes_and_publishes_alerts(
    tmp_path: Path, restartable_broker: Mosquitto
) -> None:
    port = free_port()
    log = (tmp_path / "api.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge.cli", "cloud", "api", "--db", f"sqlite:///{tmp_path / 'ws.db'}",
         "--port", str(port), "--demo-data", "--token-for", "publiacqua",
         "--mqtt-url", restartable_broker.url],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            try:
                return httpx.get(f"{base}/feeds/live.geojson", timeout=5).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(lambda: up() or proc.poll() is not None, 60, what="the API to answer")
        assert proc.poll() is None, (tmp_path / "api.log").read_text()
        token = next(
            line.split()[-1]
            for line in (tmp_path / "api.log").read_text().splitlines()
            if line.startswith("token ")
        )
        live = httpx.get(f"{base}/feeds/live.geojson", headers={"Origin": "http://grafana:3000"}).json()
        assert {f["properties"]["street"] for f in live["features"]} >= {"Via Pistoiese", "Piazza Mercatale"}
        wzdx = httpx.get(f"{base}/feeds/wzdx.json").json()
        assert wzdx["feed_info"]["version"] == "4.2"
        created = httpx.post(
            f"{base}/worksites",
            headers={"Authorization": f"Bearer {token}"},
            json={"title": "Allaccio", "street": "Via Bologna", "work_type": "water",
                  "geometry": {"type": "Point", "coordinates": [11.096, 43.89]},
                  "planned_start": "2026-12-01T07:00:00Z", "planned_end": "2026-12-02T07:00:00Z"},
        )  # fmt: skip
        assert created.status_code == 201, created.text
        assert created.json()["owner"] == "publiacqua"
        assert httpx.get(f"{base}/worksites").status_code == 401
        recorder = Recorder("127.0.0.1", restartable_broker.port, ["sr/v1/alerts/#"]).start()
        try:
            wait_until(
                lambda: len(recorder.on("sr/v1/alerts/")) >= 6, 60, what="the API's coordination alerts"
            )
        finally:
            recorder.stop()
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def test_coordination_alerts_fire_and_resolve_when_a_worksite_is_cancelled(
    tmp_path: Path, restartable_broker: Mosquitto
) -> None:

    store = WorksiteStore.open(f"sqlite:///{tmp_path / 'ws.db'}", areas=ServiceAreas.load())
    recorder = Recorder("127.0.0.1", restartable_broker.port, ["sr/v1/alerts/#"]).start()
    try:
        load_demo(store, datetime.now(UTC))
        alerts = CoordinationAlerts(store, restartable_broker.url)
        assert alerts.cycle() == 6  # conflict, synergy and redig, each to both organisations
        assert alerts.cycle() == 0  # nothing changed, nothing re-sent
        store.update(Caller("open-fiber", Role.UTILITY), "open-fiber-pistoiese-ftth", {"status": "cancelled"})
        assert alerts.cycle() == 2
        conflict = "publiacqua-pistoiese-main--open-fiber-pistoiese-ftth"
        topic = f"sr/v1/alerts/publiacqua/worksite-conflict/{conflict}"

        def states() -> list[str]:
            return [orjson.loads(p)["state"] for t, p in recorder.on(topic)]

        assert wait_until(lambda: states() == ["firing", "resolved"], 30, what="firing then resolved")
    finally:
        recorder.stop()
        store.close()
