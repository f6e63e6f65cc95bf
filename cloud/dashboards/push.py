"""Push dashboards to Grafana and annotate alerts, through Grafana's HTTP API (grafana-client)."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from grafana_client.api import GrafanaApi

from cloud.core.alerts import Alert
from cloud.dashboards.check import Dashboard

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
