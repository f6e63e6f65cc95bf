"""Coordination findings as retained alerts on `sr/v1/alerts/{org}/worksite-{finding}/{entity}`."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from cloud.core.alerts import Alert, AlertKey
from cloud.io.mqtt import PublishError, publish_retained
from cloud.worksites.conflicts import CoordinationSettings, detect, to_alerts
from cloud.worksites.store import Query, WorksiteStore
from edge.contract import BrokerAddress

log = logging.getLogger(__name__)


def publish_alerts(url: str | BrokerAddress, alerts: Sequence[Alert], *, timeout_s: float = 10.0) -> int:
    """Publish `alerts` retained at QoS 1 and wait for every PUBACK; returns how many.

    `url` is a broker URL, or a BrokerAddress carrying credentials read from a file."""
    broker = BrokerAddress.parse(url) if isinstance(url, str) else url
    return publish_retained(broker, [(a.topic, a.to_json()) for a in alerts], timeout_s=timeout_s)


class CoordinationAlerts:
    """Re-detect every `interval_s` and publish what changed: new findings fire, gone ones resolve.

    The topics are retained, so a rules engine or a dashboard subscribing later sees the current
    state; a finding that disappears (a worksite moved, cancelled) is published `resolved`.
    """

    def __init__(
        self,
        store: WorksiteStore,
        # A broker (a connection per cycle: the CLI) or the process's own publisher (a service).
        url: str | BrokerAddress | Callable[[Sequence[Alert]], int],
        settings: CoordinationSettings | None = None,
        interval_s: float = 60.0,
    ) -> None:
        self.store = store
        self.publish: Callable[[Sequence[Alert]], int]
        if isinstance(url, str | BrokerAddress):
            broker = url
            self.publish = lambda alerts: publish_alerts(broker, alerts)
        else:
            self.publish = url
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
            self.publish(changes)
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
