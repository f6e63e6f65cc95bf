"""Coordination findings as retained alerts on `sr/v1/alerts/{org}/worksite-{finding}/{entity}`."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from cloud.core.alerts import Alert, AlertKey
from cloud.worksites.conflicts import CoordinationSettings, detect, to_alerts
from cloud.worksites.store import Query, WorksiteStore
from edge.contract import BrokerAddress

log = logging.getLogger(__name__)


class PublishError(RuntimeError):
    pass


def publish_alerts(url: str | BrokerAddress, alerts: Sequence[Alert], *, timeout_s: float = 10.0) -> int:
    """Publish `alerts` retained at QoS 1 and wait for every PUBACK; returns how many.

    `url` is a broker URL, or a BrokerAddress carrying credentials read from a file; messages
    name the broker by `broker.url`, which never shows a password."""
    broker = BrokerAddress.parse(url) if isinstance(url, str) else url
    url = broker.url
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="", protocol=mqtt.MQTTv311)
    if broker.username:
        client.username_pw_set(broker.username, broker.password)
    try:
        client.connect(broker.host, broker.port)
    except OSError as exc:
        raise PublishError(f"cannot reach {url}: {exc}") from None
    client.loop_start()
    try:
        infos = [client.publish(a.topic, a.to_json(), qos=1, retain=True) for a in alerts]
        for info in infos:
            info.wait_for_publish(timeout_s)
            if not info.is_published():
                raise PublishError(f"broker {url} did not acknowledge an alert within {timeout_s:g} s")
    finally:
        client.disconnect()
        client.loop_stop()
    return len(alerts)


class CoordinationAlerts:
    """Re-detect every `interval_s` and publish what changed: new findings fire, gone ones resolve.

    The topics are retained, so a rules engine or a dashboard subscribing later sees the current
    state; a finding that disappears (a worksite moved, cancelled) is published `resolved`.
    """

    def __init__(
        self,
        store: WorksiteStore,
        url: str | BrokerAddress,
        settings: CoordinationSettings | None = None,
        interval_s: float = 60.0,
    ) -> None:
        self.store = store
        self.url = url
        self.settings = settings or CoordinationSettings()
        self.interval_s = interval_s
        self.firing: dict[AlertKey, Alert] = {}
        self.published = 0
        self.errors = 0

    def cycle(self, now: datetime | None = None) -> int:
        """One detection and publication; returns how many alerts were published."""
        now = now or datetime.now(UTC)
        since = now - timedelta(days=self.settings.redig_days)
        sites = self.store.search(Query(start=since, limit=10**9))
        current = {
            a.key: a for a in to_alerts(detect(sites, self.settings, projection=self.store.projection), now)
        }
        changes = [a for key, a in current.items() if key not in self.firing]
        changes += [
            old.resolved(now, f"no longer flagged: {old.message}")
            for key, old in self.firing.items()
            if key not in current
        ]
        if changes:
            publish_alerts(self.url, changes)
        self.firing = {key: self.firing.get(key, a) for key, a in current.items()}
        self.published += len(changes)
        return len(changes)

    def run(self, stop: threading.Event) -> None:
        while True:
            try:
                self.cycle()
            except (PublishError, OSError) as exc:
                # The broker may be down for a while: try again next cycle, all changes still pending.
                self.errors += 1
                log.warning("worksite alerts not published: %s", exc)
            if stop.wait(self.interval_s):
                return
