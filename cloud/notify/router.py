"""Routing alerts to channels by organisation and severity, and grouping storms.

Alerts submitted within `group_wait_s` of the first one are delivered together: each channel
gets one message for the whole group (a digest), so a thousand alerts in a burst make one
e-mail and one webhook per route, not a thousand. Delivery runs in a worker thread: a slow SMTP
server never holds up the engine. A failed delivery is logged and counted, never fatal.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cloud.core.alerts import Alert, Severity
from cloud.notify.base import ChannelContext, DeliveryError, NotificationChannel
from cloud.notify.channels import get
from edge.contract import BrokerAddress

log = logging.getLogger(__name__)
SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


class Route(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    org: str | None = None  # None: every organisation
    min_severity: Severity = "info"
    channels: list[str] = Field(min_length=1)

    def matches(self, a: Alert) -> bool:
        return self.org in (None, a.org) and SEVERITY_RANK[a.severity] >= SEVERITY_RANK[self.min_severity]


class NotificationsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    channels: list[dict[str, Any]] = []
    routes: list[Route] = []
    group_wait_s: float = Field(default=0.2, ge=0, le=600)

    @model_validator(mode="after")
    def _routes_name_channels(self) -> NotificationsConfig:
        known = {str(c.get("name")) for c in self.channels}
        for i, route in enumerate(self.routes):
            for name in route.channels:
                if name not in known:
                    raise ValueError(
                        f"routes[{i}].channels: {name!r} is not a channel (known: {sorted(known)})"
                    )
        return self


def build_channels(
    config: NotificationsConfig, broker: BrokerAddress | None = None
) -> dict[str, NotificationChannel[Any]]:
    """Channels from their config, offered the service's own `broker`; errors name `channels[i].field`."""
    context = ChannelContext(broker=broker)
    out: dict[str, NotificationChannel[Any]] = {}
    for i, raw in enumerate(config.channels):
        cls = get(str(raw.get("type")))
        try:
            cfg = cls.Config.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"channels[{i}].{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                for e in exc.errors(include_url=False)
            )
            raise ValueError(problems) from None
        out[cfg.name] = cls(cfg, context)
    return out


class Notifier:
    def __init__(self, config: NotificationsConfig, channels: dict[str, NotificationChannel[Any]]) -> None:
        self.config = config
        self.channels = channels
        self._inbox: queue.Queue[Alert | None] = queue.Queue()
        self.delivered = 0
        self.failed = 0
        self.grouped = 0
        self._idle = threading.Event()
        self._idle.set()
        self._thread = threading.Thread(target=self._run, name="sitroom-notify", daemon=True)
        self._thread.start()

    def submit(self, alerts: Sequence[Alert]) -> None:
        for a in alerts:
            self._idle.clear()
            self._inbox.put(a)

    def wait_idle(self, timeout_s: float) -> bool:
        """True once every submitted alert has been delivered or has failed."""
        return self._idle.wait(timeout_s)

    def close(self) -> None:
        self._inbox.put(None)
        self._thread.join(timeout=30)
        for channel in self.channels.values():
            channel.close()

    def _run(self) -> None:
        while True:
            first = self._inbox.get()
            if first is None:
                return
            group = [first]
            deadline = time.monotonic() + self.config.group_wait_s
            stop = False
            while (left := deadline - time.monotonic()) > 0:
                try:
                    nxt = self._inbox.get(timeout=left)
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                group.append(nxt)
            self.deliver(group)
            if self._inbox.empty():
                self._idle.set()
            if stop:
                return

    def deliver(self, group: Sequence[Alert]) -> None:
        per_channel: dict[str, list[Alert]] = {}
        for a in group:
            for route in self.config.routes:
                if route.matches(a):
                    for name in route.channels:
                        bucket = per_channel.setdefault(name, [])
                        if a not in bucket:
                            bucket.append(a)
        for name, alerts in per_channel.items():
            if len(alerts) > 1:
                self.grouped += len(alerts)
            try:
                self.channels[name].send(alerts)
                self.delivered += 1
            except DeliveryError as exc:
                self.failed += 1
                log.warning("notification of %d alerts not delivered: %s", len(alerts), exc)
