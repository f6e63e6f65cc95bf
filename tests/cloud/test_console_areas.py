"""The console's map shows the deployment's areas, centred on the operator's own; with a data
policy each operator sees its own organisation's private data (a municipality's, everyone's)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import httpx

from cloud.apps.demo import running_console
from cloud.console.auth import ConsoleRole
from cloud.console.broadcast import Broadcaster
from cloud.console.live import Sources
from cloud.core.geo import FixedSites, ServiceAreas
from cloud.core.orgs import Organisation, Role
from cloud.dev.demo_data import DEMO_PASSWORD, load_demo
from cloud.io.influx.client import InfluxClient
from cloud.io.influx.lineprotocol import line
from cloud.io.influx.policy import DataPolicy
from cloud.io.orgstore import OrgStore
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


def test_with_a_data_policy_an_operator_sees_its_own_fleet_and_the_municipality_every_one(
    influx_db: InfluxClient, tmp_path: Path
) -> None:
    policy = DataPolicy.load(REPO / "deploy" / "data-policy.yaml", influx_db.database)
    orgs = OrgStore.open(f"sqlite:///{tmp_path / 'orgs.db'}")
    orgs.add(Organisation(id="alia", name="Alia", role=Role.UTILITY))
    orgs.add(Organisation(id="at", name="Autolinee Toscane", role=Role.UTILITY))
    orgs.add(Organisation(id="comune-prato", name="Comune di Prato", role=Role.MUNICIPALITY))
    now = datetime.now(UTC)
    try:
        for org, lat in (("alia", 43.87), ("at", 43.88)):
            influx_db.create_database(policy.private_database(org))
            influx_db.write(
                [line("fleet", {"org": org, "gateway": "fleet", "sensor": f"v-{org}"},
                      {"lat": lat, "lon": 11.1, "speed_kmh": 10.0, "heading_deg": 0.0}, now)],
                database=policy.private_database(org),
            )  # fmt: skip
        sources = Sources(influx=influx_db, policy=policy, orgs=orgs, sites=FixedSites({}))
        everything = sources.sensors()

        assert sorted(v["org"] for v in everything["fleet"]) == ["alia", "at"]
        assert [v["org"] for v in sources.visible_to("alia", everything)["fleet"]] == ["alia"]
        assert sorted(v["org"] for v in sources.visible_to("comune-prato", everything)["fleet"]) == [
            "alia",
            "at",
        ]
    finally:
        for org in ("alia", "at"):
            influx_db.drop_database(policy.private_database(org))


def test_an_event_with_a_view_reaches_each_organisations_consoles_as_it_may_see_it() -> None:
    async def run() -> dict[str, bytes]:
        broadcaster = Broadcaster()
        subs = {org: broadcaster.subscribe(org, f"op-{org}") for org in ("alia", "at")}
        broadcaster.publish("sensors", {"fleet": ["a", "b"]}, view=lambda org: {"fleet": [org]})
        await asyncio.sleep(0.05)
        return {org: sub.queue.get_nowait() for org, sub in subs.items()}

    frames = asyncio.run(run())

    assert b'data: {"fleet":["alia"]}' in frames["alia"]
    assert b'data: {"fleet":["at"]}' in frames["at"]
