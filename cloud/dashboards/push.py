"""Push dashboards to Grafana and annotate alerts, through Grafana's HTTP API (grafana-client)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from grafana_client.api import GrafanaApi

from cloud.dashboards.check import Dashboard


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


def annotate_alert(api: GrafanaApi, alert: dict[str, Any], *, dashboard_uid: str | None = None) -> None:
    """An annotation for an alert (the JSON published on sr/v1/alerts/...), region from its
    `since` to its `ts` when resolved, tagged so dashboards can filter on rule and org."""
    since = datetime.fromisoformat(str(alert["since"]).replace("Z", "+00:00"))
    ts = datetime.fromisoformat(str(alert["ts"]).replace("Z", "+00:00"))
    api.annotations.add_annotation(
        dashboard_uid=dashboard_uid,
        time_from=int(since.timestamp() * 1000),
        time_to=int(ts.timestamp() * 1000) if alert.get("state") == "resolved" else None,
        tags=[
            "sitroom",
            f"rule:{alert['rule']}",
            f"org:{alert['org']}",
            f"severity:{alert.get('severity', '')}",
        ],
        text=f"{alert.get('state')}: {alert['entity']} — {alert.get('message', '')}",
    )
