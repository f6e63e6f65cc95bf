"""Push dashboards to Grafana and annotate alerts, through Grafana's HTTP API (grafana-client).

With a data policy (decision 0017), `push_organisations` gives each organisation a Grafana
organisation of its own: a data source reading InfluxDB as that organisation's reader, and the
dashboards rendered for it (cloud/dashboards/audience.py). Grafana users are then added to the
organisation they belong to (by an administrator, or by the identity provider's org mapping).
This needs Grafana's server administrator (basic auth): an API token is one organisation's.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from grafana_client.api import GrafanaApi
from grafana_client.client import GrafanaClientError

from cloud.core.alerts import Alert
from cloud.dashboards.audience import Audience, render
from cloud.dashboards.check import Dashboard
from cloud.io.influx.policy import DataPolicy

log = logging.getLogger(__name__)


def connect(
    url: str, *, token: str | None = None, user: str | None = None, password: str | None = None
) -> GrafanaApi:
    """A client for Grafana at `url`, with an API token or basic auth."""
    credential: str | tuple[str, str] | None = token or ((user, password or "") if user else None)
    api: GrafanaApi = GrafanaApi.from_url(url=url, credential=credential, timeout=10.0)
    return api


def push_dashboards(
    api: GrafanaApi, dashboards: list[Dashboard], *, folder_uid: str | None = None
) -> list[str]:
    """Import (create or overwrite) each dashboard; returns their uids."""
    uids = []
    for d in dashboards:
        body: dict[str, Any] = {
            # No numeric id: Grafana matches on uid, so a push never duplicates a dashboard.
            "dashboard": {k: v for k, v in d.json.items() if k != "id"},
            "overwrite": True,
            "message": f"sitroom dashboards push ({d.name})",
        }
        if folder_uid:
            body["folderUid"] = folder_uid
        api.dashboard.update_dashboard(body)
        uids.append(str(d.json.get("uid")))
    return uids


DATASOURCE_UID = "sitroom-influx"  # what every dashboard's panels name (dashboards/provisioning)


@dataclass(frozen=True, slots=True)
class OrgTarget:
    """One organisation's Grafana organisation: who it is and how its data source reads InfluxDB."""

    audience: Audience
    reader: str
    password: str

    def __repr__(self) -> str:  # never a password in a log line
        return f"OrgTarget({self.audience.org!r}, reader={self.reader!r}, password=***)"


def ensure_organisation(api: GrafanaApi, name: str) -> int:
    """The id of the Grafana organisation called `name`, created when missing."""
    api.client.s.headers.pop("X-Grafana-Org-Id", None)  # organisations are the server's
    try:
        found: dict[str, Any] = api.organization.find_organization(name)
        return int(found["id"])
    except GrafanaClientError as exc:
        if exc.status_code != 404:
            raise
    created: dict[str, Any] = api.organization.create_organization({"name": name})
    return int(created["orgId"])


def ensure_datasource(api: GrafanaApi, body: dict[str, Any]) -> str:
    """Create or update the data source of `body["uid"]` in the current organisation."""
    try:
        api.datasource.get_datasource_by_uid(body["uid"])
    except GrafanaClientError as exc:
        if exc.status_code != 404:
            raise
        api.datasource.create_datasource(body)
        return "created"
    api.datasource.update_datasource_by_uid(body["uid"], body)
    return "updated"


def push_organisations(
    api: GrafanaApi,
    dashboards: list[Dashboard],
    *,
    policy: DataPolicy,
    targets: list[OrgTarget],
    influx_url: str,
) -> list[str]:
    """For each organisation: its Grafana organisation (named by its id), its data source (the
    shared database, read as its own reader) and every dashboard rendered for it. Idempotent:
    found organisations and data sources are updated, dashboards overwritten by uid."""
    orgs = [t.audience.org for t in targets]
    done = []
    try:
        for t in targets:
            org_id = ensure_organisation(api, t.audience.org)
            api.client.s.headers["X-Grafana-Org-Id"] = str(org_id)
            source = ensure_datasource(
                api,
                {
                    "uid": DATASOURCE_UID,
                    "name": "Situation Room (InfluxDB)",
                    "type": "influxdb",
                    "access": "proxy",
                    "url": influx_url,
                    "database": policy.database,
                    "user": t.reader,
                    "isDefault": True,
                    "jsonData": {"dbName": policy.database, "httpMode": "POST"},
                    "secureJsonData": {"password": t.password},
                },
            )
            rendered = [Dashboard(d.path, render(d.json, policy, t.audience, orgs)) for d in dashboards]
            push_dashboards(api, rendered)
            done.append(
                f"{t.audience.org}: Grafana organisation {org_id}, data source {source} "
                f"(as {t.reader}), {len(rendered)} dashboards"
            )
    finally:
        api.client.s.headers.pop("X-Grafana-Org-Id", None)
    return done


def annotate_alert(api: GrafanaApi, alert: dict[str, Any], *, dashboard_uid: str | None = None) -> None:
    """An annotation for an alert (the JSON published on sr/v1/alerts/...), tagged so that
    dashboards can filter on rule and org: at its `since` when it fires, a region from `since`
    to `ts` once resolved, and at `ts` with who and how soon when an operator acknowledges it."""
    since = datetime.fromisoformat(str(alert["since"]).replace("Z", "+00:00"))
    ts = datetime.fromisoformat(str(alert["ts"]).replace("Z", "+00:00"))
    state = alert.get("state")
    text = f"{state}: {alert['entity']} — {alert.get('message', '')}"
    if state == "acknowledged":
        after = f" after {alert['ack_s'] / 60:.0f} min" if alert.get("ack_s") is not None else ""
        text = f"acknowledged by {alert.get('acked_by') or '?'}{after}: {alert['entity']}"
    api.annotations.add_annotation(
        dashboard_uid=dashboard_uid,
        time_from=int((ts if state == "acknowledged" else since).timestamp() * 1000),
        time_to=int(ts.timestamp() * 1000) if state == "resolved" else None,
        tags=[
            "sitroom",
            f"rule:{alert['rule']}",
            f"org:{alert['org']}",
            f"severity:{alert.get('severity', '')}",
        ],
        text=text,
    )


class GrafanaAnnotator:
    """Posts alert annotations to Grafana from a thread of its own, so that a slow or absent
    Grafana never holds up the rules engine; a full queue drops (and counts) the surplus."""

    def __init__(self, api: GrafanaApi, *, dashboard_uid: str | None = None, max_queued: int = 1000) -> None:
        self.api = api
        self.dashboard_uid = dashboard_uid
        self.queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=max_queued)
        self.posted = 0
        self.failed = 0
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="grafana-annotations", daemon=True)
        self._thread.start()

    def submit(self, alerts: Sequence[Alert]) -> None:
        for a in alerts:
            try:
                self.queue.put_nowait(orjson.loads(a.to_json()))
            except queue.Full:
                self.dropped += 1

    def _run(self) -> None:
        while (alert := self.queue.get()) is not None:
            try:
                annotate_alert(self.api, alert, dashboard_uid=self.dashboard_uid)
                self.posted += 1
            except Exception as exc:  # noqa: BLE001  (Grafana's trouble must not stop the rules)
                self.failed += 1
                log.warning(
                    "could not annotate alert %s/%s in Grafana: %s",
                    alert.get("rule"),
                    alert.get("entity"),
                    exc,
                )

    def close(self, timeout_s: float = 5.0) -> None:
        self.queue.put(None)
        self._thread.join(timeout_s)
        session = getattr(self.api.client, "s", None)  # grafana-client's HTTP session
        if session is not None:
            session.close()
