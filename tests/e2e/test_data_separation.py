"""Data separated per organisation, end to end, on an InfluxDB with authentication.

`sitroom provision apply` brings InfluxDB in line with the data policy (deploy/data-policy.yaml)
and the organisation registry; ingest and the rules service write as the one WRITE-only user,
each point where the policy says; then each organisation's reader reads its own private data
and the shared layers and is refused the others' private data, and the municipality's reads all.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import paho.mqtt.client as mqtt
import pytest
import yaml
from click.testing import CliRunner
from paho.mqtt.enums import CallbackAPIVersion

from cloud.apps.cli.provision import group as provision
from cloud.core.geo import ServiceAreas
from cloud.core.orgs import Organisation, Role
from cloud.core.settings import CloudSettings
from cloud.dashboards.audience import Audience, render
from cloud.dashboards.check import Dashboard, Report, check_live, load_dashboards
from cloud.dev.servers import Influxd, Mosquitto
from cloud.io.influx.client import InfluxClient
from cloud.io.influx.policy import DataPolicy
from cloud.io.orgstore import OrgStore
from edge.contract import format_ts

from support import REPO, cloud_services, parking_full, unique, wait_until

pytestmark = pytest.mark.e2e
POLICY = REPO / "deploy" / "data-policy.yaml"
ADMIN, WRITER = ("admin", "adm-pw"), ("sitroom-writer", "w-pw")


@dataclass
class Deployment:
    url: str
    orgs: dict[str, str]  # role in the test (a, b, city) -> organisation id
    readers: dict[str, tuple[str, str]]  # organisation -> (user, password)
    settings: CloudSettings

    def query(self, who: str, q: str, db: str = "sitroom") -> httpx.Response:
        user = self.readers[self.orgs[who]] if who != "admin" else ADMIN
        return httpx.get(
            f"{self.url}/query", params={"db": db, "q": q}, auth=user, trust_env=False, timeout=10
        )

    def values(self, who: str, q: str, db: str = "sitroom") -> list[list[Any]]:
        response = self.query(who, q, db)
        assert response.status_code == 200, response.text
        [result] = response.json()["results"]
        assert "error" not in result, result
        return [row for s in result.get("series", []) for row in s["values"]]

    def private(self, who: str) -> str:
        return f"sitroom_{self.orgs[who]}"


@pytest.fixture
def deployment(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Deployment]:
    influxd = Influxd(tmp_path / "influxd", auth=True).start()
    try:
        orgs = {"a": unique("alia-"), "b": unique("publiacqua-"), "city": unique("comune-")}
        registry = f"sqlite:///{tmp_path / 'registry.db'}"
        store = OrgStore.open(registry)
        for who, org in orgs.items():
            store.add(
                Organisation(id=org, name=org, role=Role.MUNICIPALITY if who == "city" else Role.UTILITY)
            )
        store.close()
        plan = tmp_path / "plan.yaml"
        plan.write_text(
            yaml.safe_dump({"influx": {"url": influxd.url, "policy": str(POLICY), "registry": registry}})
        )
        env = {"SITROOM_INFLUX_ADMIN_PASSWORD": ADMIN[1], "SITROOM_INFLUX_WRITE_PASSWORD": WRITER[1]}
        result = CliRunner().invoke(provision, ["--dir", str(tmp_path / "prov"), "apply", str(plan)], env=env)
        assert result.exit_code == 0, result.output
        again = CliRunner().invoke(provision, ["--dir", str(tmp_path / "prov"), "apply", str(plan)], env=env)
        assert f"influx {influxd.url}: nothing changed" in again.output, again.output
        readers = json.loads((tmp_path / "prov" / "influx" / "readers.json").read_text())
        settings = CloudSettings(
            mqtt_url=mosquitto.url,
            influx_url=influxd.url,
            influx_db="sitroom",
            influx_username=WRITER[0],
            influx_password=WRITER[1],
            data_policy=str(POLICY),
            org_filter=",".join(orgs.values()),
            instance=unique("sep-"),
            stats_interval_s=1.0,
            write_linger_ms=50,
        )
        yield Deployment(
            influxd.url, orgs, {o: (r["username"], r["password"]) for o, r in readers.items()}, settings
        )
    finally:
        influxd.stop()


def batch(
    org: str, kind: str, fields: dict[str, Any], tags: dict[str, str] | None = None
) -> tuple[str, bytes]:
    ts = format_ts(datetime.now(UTC) - timedelta(minutes=1))
    reading: dict[str, Any] = {"sensor": f"{kind[0]}-1", "ts": ts, "fields": fields}
    if tags:
        reading["tags"] = tags
    body = {
        "v": 1,
        "org": org,
        "gateway": "gw-1",
        "kind": kind,
        "seq": 0,
        "sent_at": ts,
        "readings": [reading],
    }
    return f"sr/v1/{org}/gw-1/data/{kind}", orjson.dumps(body)


def publish(port: int, messages: list[tuple[str, bytes]]) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=unique("pub-"))
    client.connect("127.0.0.1", port)
    client.loop_start()
    for topic, payload in messages:
        client.publish(topic, payload, qos=1).wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


@pytest.fixture
def written(deployment: Deployment, mosquitto: Mosquitto) -> Deployment:
    """Each of a and b has a fleet position (private) and a car park (shared); an alert for a."""
    messages = []
    for who, lat in (("a", 43.87), ("b", 43.77)):
        org = deployment.orgs[who]
        messages.append(
            batch(org, "fleet", {"lat": lat, "lon": 11.1, "speed_kmh": 20.0, "heading_deg": 90.0})
        )
        messages.append(batch(org, "parking", {"occupied": 10, "capacity": 100, "occupancy_pct": 10.0}))
    with cloud_services(deployment.settings) as (_ingest, rules):
        publish(mosquitto.port, messages)
        rules.emit([parking_full(datetime.now(UTC), org=deployment.orgs["a"])])
        for who in ("a", "b"):
            wait_until(
                lambda who=who: deployment.values(
                    "admin", 'SELECT count("lat") FROM "fleet"', deployment.private(who)
                ),
                30,
                what=f"{who}'s fleet position stored",
            )
        wait_until(
            lambda: len(deployment.values("admin", 'SELECT "occupied" FROM "parking"')) == 2,
            30,
            what="2 car parks",
        )
    return deployment


def refused(response: httpx.Response) -> bool:
    body = response.json()
    return response.status_code == 403 or any(
        "not authorized" in r.get("error", "") for r in body.get("results", [])
    )


def test_a_private_kind_is_stored_in_its_organisations_database_and_a_shared_one_in_the_shared(
    written: Deployment,
) -> None:
    d = written
    assert d.values("admin", 'SELECT "lat" FROM "fleet"') == []  # nothing private in the shared database
    assert [r[1] for r in d.values("admin", 'SELECT "lat" FROM "fleet"', d.private("a"))] == [43.87]
    orgs = {r[2] for r in d.values("admin", 'SELECT "occupied", "org" FROM "parking"')}
    assert orgs == {d.orgs["a"], d.orgs["b"]}


def test_an_organisations_reader_cannot_read_anothers_private_series(written: Deployment) -> None:
    d = written
    q = 'SELECT "lat" FROM "fleet"'

    assert [r[1] for r in d.values("a", q, d.private("a"))] == [43.87]
    assert refused(d.query("a", q, d.private("b")))
    assert refused(d.query("b", q, d.private("a")))
    # Nor through a fully qualified name from a database it may read.
    assert refused(d.query("a", f'SELECT "lat" FROM "{d.private("b")}".."fleet"'))


def test_both_organisations_read_the_shared_layers(written: Deployment) -> None:
    d = written
    for who in ("a", "b"):
        rows = d.values(who, 'SELECT "occupied", "org" FROM "parking"')
        assert {r[2] for r in rows} == {d.orgs["a"], d.orgs["b"]}, who


def test_an_alert_is_read_only_by_the_organisation_it_concerns_and_the_municipality(
    written: Deployment,
) -> None:
    d = written
    q = 'SELECT "message" FROM "alerts"'

    assert d.values("a", q, d.private("a"))
    assert d.values("city", q, d.private("a"))
    assert refused(d.query("b", q, d.private("a")))
    assert d.values("admin", q) == []


def test_the_municipality_reads_every_organisations_private_data_in_one_query(written: Deployment) -> None:
    d = written
    sources = f'"{d.private("a")}".."fleet", "{d.private("b")}".."fleet"'

    rows = d.values("city", f'SELECT last("lat") FROM {sources} GROUP BY "org"')

    assert sorted(r[1] for r in rows) == [43.77, 43.87]
    assert refused(d.query("a", f'SELECT last("lat") FROM {sources} GROUP BY "org"'))


@pytest.mark.parametrize("who", ["a", "city"])
def test_the_dashboards_rendered_for_an_organisation_run_as_its_reader_and_show_its_fleet(
    written: Deployment, who: str
) -> None:
    d = written
    policy = DataPolicy.load(POLICY, "sitroom")
    audience = Audience(d.orgs[who], who == "city", ServiceAreas.load().view(), "Europe/Rome")
    user, password = d.readers[d.orgs[who]]
    reader = InfluxClient(d.url, "sitroom", username=user, password=password)
    report = Report()
    try:
        for board in load_dashboards(REPO / "dashboards" / "json"):
            rendered = Dashboard(board.path, render(board.json, policy, audience, list(d.orgs.values())))
            check_live(rendered, reader, report=report)
    finally:
        reader.close()

    # Panels of data this deployment did not write may be empty; none may fail (a query this
    # reader may not run: "not authorized").
    failed = [p for p in report.problems if not p.endswith(": returned no data")]
    assert not failed, failed
    fleets = [p for p in report.problems if p.startswith("fleets.json")]
    assert fleets == [], fleets  # its vehicles (and, for the municipality, every organisation's)
