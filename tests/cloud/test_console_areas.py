"""The console's map shows the deployment's areas, centred on the operator's own."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx

from cloud.apps.demo import running_console
from cloud.console.auth import ConsoleRole
from cloud.core.geo import ServiceAreas
from cloud.dev.demo_data import DEMO_PASSWORD, load_demo
from cloud.worksites.store import WorksiteStore

from support import REPO

METRO = REPO / "deploy" / "areas" / "prato-florence.yaml"


def snapshot(url: str, username: str) -> dict[str, object]:
    with httpx.Client(base_url=url, timeout=30, headers={"X-Sitroom-Console": "1"}) as c:
        login = {"username": username, "password": DEMO_PASSWORD}
        c.post("/console/api/login", json=login).raise_for_status()
        body: dict[str, object] = c.get("/console/api/snapshot").raise_for_status().json()
        return body


def test_each_operator_sees_every_area_outlined_and_starts_on_their_own(tmp_path: Path) -> None:
    areas = ServiceAreas.load(METRO)
    worksites = WorksiteStore.open(f"sqlite:///{tmp_path / 'ws.db'}", areas=areas)
    load_demo(worksites, datetime.now(UTC))
    serving = running_console(tmp_path / "console", worksites=worksites, alerts=None, influx=None)
    with serving as (url, console):
        role = ConsoleRole.MUNICIPALITY_OPERATOR
        console.store.add_operator("sara", DEMO_PASSWORD, "comune-firenze", role, "Sara (Comune di Firenze)")
        prato, florence = snapshot(url, "anna"), snapshot(url, "sara")

    for snap in (prato, florence):
        outlines = snap["areas"]
        assert isinstance(outlines, dict)
        assert [f["properties"]["id"] for f in outlines["features"]] == ["prato", "piana-fiorentina"]
        assert outlines["municipalities"] == ["comune-firenze", "comune-prato"]
    assert prato["areas"]["view"] == areas.view(["prato"])  # type: ignore[index]
    assert florence["areas"]["view"] == areas.view(["piana-fiorentina"])  # type: ignore[index]
    assert florence["areas"]["view"]["lat"] < prato["areas"]["view"]["lat"]  # type: ignore[index]
    assert "comune-firenze-tramvia-sesto" in {f["id"] for f in prato["worksites"]["features"]}  # type: ignore[index]


def test_the_view_of_an_operator_bound_to_no_area_shows_them_all() -> None:
    areas = ServiceAreas.load(METRO)

    view = areas.view([])

    assert view == areas.view(["prato", "piana-fiorentina"])
    assert view["zoom"] == 11
