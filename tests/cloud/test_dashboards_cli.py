"""`sitroom dashboards check` offline, Grafana's interval rule, and `push` against a Grafana stand-in."""

from __future__ import annotations

import base64
import json
import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cloud.apps.cli.dashboards import group
from cloud.apps.rules import grafana_annotator
from cloud.core.geo import ServiceAreas
from cloud.core.orgs import Organisation, Role
from cloud.core.settings import CloudSettings
from cloud.dashboards.build import BUILDERS, render
from cloud.dashboards.push import annotate_alert, connect
from cloud.dashboards.queries import grafana_interval
from cloud.io.orgstore import OrgStore
from cloud.rules.engine import Engine, load_rules
from cloud.rules.service import RulesService
from cloud.rules.store import AlertStore

from support import REPO, parking_full, wait_until


@pytest.mark.parametrize(
    ("range_s", "points", "minimum", "expected"),
    [
        (6 * 3600, 1000, "", "20s"),  # 21.6 s
        (3600, 1000, "", "5s"),  # 3.6 s
        (24 * 3600, 1000, "", "1m"),  # 86.4 s
        (7 * 86400, 1000, "", "10m"),  # 604.8 s
        (3600, 1000, "1m", "1m"),  # the panel's minimum wins
        (300, 1000, ">10s", "10s"),
    ],
)
def test_the_interval_is_grafanas_rounded_range_over_data_points(
    range_s: int, points: int, minimum: str, expected: str
) -> None:
    assert grafana_interval(range_s, points, minimum) == expected


def test_the_repository_dashboards_pass_the_offline_check() -> None:
    result = CliRunner().invoke(group, ["check", "--dir", str(REPO / "dashboards")])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "panels: 0 checked, 0 returned data"


def test_an_undefined_variable_and_an_unprovisioned_datasource_fail_the_check(tmp_path: Path) -> None:
    shutil.copytree(REPO / "dashboards", tmp_path / "d")
    path = tmp_path / "d" / "json" / "situation-room-overview.json"
    dashboard = json.loads(path.read_text())
    panel = next(p for p in dashboard["panels"] if p.get("targets"))
    panel["targets"][0]["query"] += ' AND "district" =~ /^$district$/'
    panel["datasource"] = {"type": "influxdb", "uid": "nowhere"}
    path.write_text(json.dumps(dashboard))
    result = CliRunner().invoke(group, ["check", "--dir", str(tmp_path / "d")])
    assert result.exit_code == 1
    assert "$district" in result.output
    assert "'nowhere'" in result.output


class GrafanaStandIn(BaseHTTPRequestHandler):
    """The Grafana API endpoints `push` and the annotations use, recording each request: the
    dashboards and annotations, and for `push --policy` organisations and data sources, kept
    per organisation (the `X-Grafana-Org-Id` header) as Grafana keeps them."""

    requests: list[tuple[str, str, str | None, Any]] = []
    orgs: dict[str, int] = {}
    datasources: dict[tuple[str, str], Any] = {}  # (org id, uid) -> body
    dashboards: dict[tuple[str, str], Any] = {}  # (org id, uid) -> dashboard

    def _reply(self, reply: Any, status: int = 200) -> None:
        data = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    @property
    def org(self) -> str:
        return self.headers.get("X-Grafana-Org-Id") or "1"

    def do_GET(self) -> None:
        self.requests.append((self.command, self.path, self.headers.get("Authorization"), None))
        if self.path.startswith("/api/orgs/name/") and self.path.rsplit("/", 1)[1] in self.orgs:
            name = self.path.rsplit("/", 1)[1]
            self._reply({"id": self.orgs[name], "name": name})
        elif (
            self.path.startswith("/api/datasources/uid/")
            and (self.org, self.path.rsplit("/", 1)[1]) in self.datasources
        ):
            self._reply(self.datasources[(self.org, self.path.rsplit("/", 1)[1])])
        else:
            self._reply({"message": "not found"}, 404)

    def do_PUT(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.requests.append((self.command, self.path, self.headers.get("Authorization"), body))
        self.datasources[(self.org, self.path.rsplit("/", 1)[1])] = body
        self._reply({"message": "Datasource updated"})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.requests.append((self.command, self.path, self.headers.get("Authorization"), body))
        if self.path == "/api/dashboards/db":
            self.dashboards[(self.org, body["dashboard"]["uid"])] = body["dashboard"]
            reply = {"id": 1, "uid": body["dashboard"]["uid"], "status": "success", "version": 1}
        elif self.path == "/api/annotations":
            reply = {"id": 7, "message": "Annotation added"}
        elif self.path == "/api/orgs":
            self.orgs[body["name"]] = len(self.orgs) + 2  # 1 is Grafana's Main Org.
            reply = {"orgId": self.orgs[body["name"]], "message": "Organization created"}
        elif self.path == "/api/datasources":
            self.datasources[(self.org, body["uid"])] = body
            reply = {"id": 3, "message": "Datasource added"}
        else:
            self.send_error(404)
            return
        self._reply(reply)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def grafana() -> Iterator[str]:
    GrafanaStandIn.requests = []
    GrafanaStandIn.orgs, GrafanaStandIn.datasources, GrafanaStandIn.dashboards = {}, {}, {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), GrafanaStandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_push_imports_every_dashboard_by_uid_with_overwrite(grafana: str) -> None:
    result = CliRunner().invoke(
        group,
        [
            "push",
            "--dir",
            str(REPO / "dashboards"),
            "--grafana",
            grafana,
            "--user",
            "admin",
            "--password",
            "pw",
        ],
    )
    assert result.exit_code == 0, result.output
    dashboards = sorted((REPO / "dashboards" / "json").glob("*.json"))
    assert len(GrafanaStandIn.requests) == len(dashboards)
    for (method, path, auth, body), file in zip(GrafanaStandIn.requests, dashboards, strict=True):
        expected = json.loads(file.read_text())
        expected.pop("id", None)
        assert (method, path) == ("POST", "/api/dashboards/db")
        assert auth == "Basic " + base64.b64encode(b"admin:pw").decode()
        assert body == {
            "dashboard": expected,
            "overwrite": True,
            "message": f"sitroom dashboards push ({file.name})",
        }


def test_an_alert_becomes_a_tagged_annotation_region_once_resolved(grafana: str) -> None:
    alert = {
        "rule": "parking-full",
        "org": "comune-prato",
        "entity": "p-mercatale",
        "severity": "warning",
        "state": "resolved",
        "since": "2026-11-24T08:00:00.000Z",
        "ts": "2026-11-24T08:30:00.000Z",
        "message": "occupancy_pct back to 80",
    }
    annotate_alert(connect(grafana, token="tok"), alert, dashboard_uid="sitroom-overview")
    [(method, path, auth, body)] = GrafanaStandIn.requests
    assert (method, path, auth) == ("POST", "/api/annotations", "Bearer tok")
    assert body == {
        "panelId": None,
        "dashboardUID": "sitroom-overview",
        "time": 1795507200000,
        "timeEnd": 1795509000000,
        "tags": ["sitroom", "rule:parking-full", "org:comune-prato", "severity:warning"],
        "text": "resolved: p-mercatale — occupancy_pct back to 80",
    }


def test_an_acknowledgement_is_annotated_when_it_happened_with_who_and_how_soon(grafana: str) -> None:
    alert = {
        "rule": "parking-full",
        "org": "comune-prato",
        "entity": "p-mercatale",
        "severity": "warning",
        "state": "acknowledged",
        "since": "2026-11-24T08:00:00.000Z",
        "ts": "2026-11-24T08:04:00.000Z",
        "acked_by": "comune-prato/anna",
        "ack_s": 240.0,
        "message": "occupancy_pct 99 above 95 for 15 min",
    }
    annotate_alert(connect(grafana, token="tok"), alert)
    [(_, _, _, body)] = GrafanaStandIn.requests
    assert body["time"] == 1795507440000
    assert body["timeEnd"] is None
    assert body["text"] == "acknowledged by comune-prato/anna after 4 min: p-mercatale"


def test_the_committed_theme_dashboards_are_what_the_builder_generates() -> None:
    for name, build in BUILDERS.items():
        committed = (REPO / "dashboards" / "json" / f"{name}.json").read_text(encoding="utf-8")
        assert committed == render(build()), (
            f"dashboards/json/{name}.json is stale: run `sitroom dashboards build`"
        )


def test_every_theme_dashboard_annotates_alerts_and_filters_by_organisation() -> None:
    for name, build in BUILDERS.items():
        board = build()
        assert [a["name"] for a in board["annotations"]["list"]] == ["Allarmi / Alerts"], name
        assert "org" in {v["name"] for v in board["templating"]["list"]}, name
        assert " / " in board["title"], f"{name}: Italian / English title"


def test_the_rules_service_annotates_each_alert_in_grafana_when_configured(
    grafana: str, settings: CloudSettings
) -> None:
    configured = settings.model_copy(update={"grafana_url": grafana, "grafana_token": "tok"})
    service = RulesService(configured, Engine(load_rules()), annotator=grafana_annotator(configured))
    now = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    alert = parking_full(now)
    service.emit([alert])
    wait_until(lambda: GrafanaStandIn.requests, 10, what="an annotation posted")
    assert service.annotator is not None
    service.annotator.close()
    service.influx.close()
    [(method, path, auth, body)] = GrafanaStandIn.requests
    assert (method, path, auth) == ("POST", "/api/annotations", "Bearer tok")
    assert body["tags"] == ["sitroom", "rule:parking-full", "org:comune-prato", "severity:warning"]
    assert body["time"] == int(now.timestamp() * 1000)
    assert body["timeEnd"] is None
    assert body["text"] == "firing: p-mercatale — occupancy_pct 99 above 95 for 15 min"


def test_an_operators_acknowledgement_reaches_grafana_through_the_rules_service(
    grafana: str, settings: CloudSettings, tmp_path: Path
) -> None:
    store = AlertStore(f"sqlite:///{tmp_path / 'alerts.db'}")
    # Every organisation's: the alert is comune-prato's, and a shard relays only its own.
    configured = settings.model_copy(
        update={"grafana_url": grafana, "grafana_token": "tok", "org_filter": "+"}
    )
    service = RulesService(
        configured, Engine(load_rules()), store=store, annotator=grafana_annotator(configured)
    )
    now = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    alert = parking_full(now)
    service.emit([alert])
    (opened,) = store.active()
    store.acknowledge(opened.id, by="comune-prato/anna", at=now + timedelta(minutes=3))
    assert service.relay_operator_moves() == 1
    wait_until(lambda: len(GrafanaStandIn.requests) == 2, 10, what="two annotations posted")
    assert service.annotator is not None
    service.annotator.close()
    service.influx.close()
    texts = [body["text"] for *_, body in GrafanaStandIn.requests]
    assert texts[1] == "acknowledged by comune-prato/anna after 3 min: p-mercatale"


def push_args(grafana: str, registry: str, readers: Path) -> list[str]:
    return ["push", "--dir", str(REPO / "dashboards"), "--grafana", grafana, "--user", "admin",
            "--password", "pw", "--policy", str(REPO / "deploy" / "data-policy.yaml"), "--registry", registry,
            "--readers", str(readers)]  # fmt: skip


def test_push_with_a_data_policy_gives_each_organisation_its_own_grafana_organisation(
    grafana: str, tmp_path: Path
) -> None:
    registry = f"sqlite:///{tmp_path / 'registry.db'}"
    orgs = OrgStore.open(registry)
    orgs.add(Organisation(id="alia", name="Alia", role=Role.UTILITY, areas=("prato",)))
    orgs.add(Organisation(id="at", name="Autolinee Toscane", role=Role.UTILITY, areas=("piana-fiorentina",)))
    orgs.add(
        Organisation(id="comune-prato", name="Comune di Prato", role=Role.MUNICIPALITY, areas=("prato",))
    )
    orgs.close()
    readers = tmp_path / "readers.json"
    readers.write_text(
        json.dumps(
            {o: {"username": f"reader.{o}", "password": f"pw-{o}"} for o in ("alia", "at", "comune-prato")}
        )
    )
    args = [*push_args(grafana, registry, readers), "--influx-url", "http://influxdb:8086",
            "--areas", str(REPO / "deploy" / "areas" / "prato-florence.yaml")]  # fmt: skip

    first = CliRunner().invoke(group, args)
    second = CliRunner().invoke(group, args)

    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    ids = GrafanaStandIn.orgs
    assert set(ids) == {"alia", "at", "comune-prato"}  # created once: the second push found them
    n = len(list((REPO / "dashboards" / "json").glob("*.json")))  # every one, rendered for each
    assert (
        f"alia: Grafana organisation 2, data source updated (as reader.alia), {n} dashboards" in second.output
    )
    alia, city = str(ids["alia"]), str(ids["comune-prato"])
    source = GrafanaStandIn.datasources[(alia, "sitroom-influx")]
    assert (source["user"], source["database"], source["url"]) == (
        "reader.alia",
        "sitroom",
        "http://influxdb:8086",
    )
    assert source["secureJsonData"] == {"password": "pw-alia"}

    def fleet_map(org: str) -> dict[str, Any]:
        board = GrafanaStandIn.dashboards[(org, "sitroom-fleets")]
        return next(p for p in board["panels"] if p["type"] == "geomap")

    assert 'FROM "sitroom_alia".."fleet" WHERE' in fleet_map(alia)["targets"][0]["query"]
    assert (
        'FROM "sitroom_alia".."fleet", "sitroom_at".."fleet", "sitroom_comune-prato".."fleet"'
        in fleet_map(city)["targets"][0]["query"]
    )
    speed = next(
        p for p in GrafanaStandIn.dashboards[(alia, "sitroom-fleets")]["panels"] if p["type"] == "timeseries"
    )
    assert 'FROM "sitroom_alia"."$rp"."fleet" WHERE' in speed["targets"][0]["query"]  # the range's RP
    # The shared layers stay in the data source's database; maps open on the organisation's areas.
    parking = GrafanaStandIn.dashboards[(alia, "sitroom-parking")]
    assert 'FROM "$rp"."parking"' in parking["panels"][0]["targets"][0]["query"]
    areas = ServiceAreas.load(REPO / "deploy" / "areas" / "prato-florence.yaml")
    assert fleet_map(str(ids["at"]))["options"]["view"] == {
        "id": "coords",
        **areas.view(["piana-fiorentina"]),
    }
    assert GrafanaStandIn.dashboards[(alia, "sitroom-fleets")]["timezone"] == "Europe/Rome"
    vehicle_type = next(v for v in GrafanaStandIn.dashboards[(alia, "sitroom-fleets")]["templating"]["list"]
                        if v["name"] == "vehicle_type")  # fmt: skip
    assert vehicle_type["query"] == (
        'SELECT "vehicle_type", "n" FROM (SELECT count("lat") AS "n" FROM "sitroom_alia".."fleet" '
        'WHERE $timeFilter GROUP BY "vehicle_type")'
    )


def test_push_with_a_data_policy_needs_the_readers_provisioning_kept(grafana: str, tmp_path: Path) -> None:
    registry = f"sqlite:///{tmp_path / 'registry.db'}"
    OrgStore.open(registry).add(Organisation(id="alia", name="Alia", role=Role.UTILITY))
    readers = tmp_path / "readers.json"
    readers.write_text("{}")
    result = CliRunner().invoke(group, push_args(grafana, registry, readers))

    assert result.exit_code == 1
    assert "no reader for 'alia': run `sitroom provision apply` first" in result.output
    assert GrafanaStandIn.requests == []
