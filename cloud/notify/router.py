"""Routing alerts to channels by organisation and severity, and grouping storms.

Alerts submitted within `group_wait_s` of the first one are delivered together: each channel
gets one message for the whole group (a digest), so a thousand alerts in a burst make one
e-mail and one webhook per route, not a thousand. Delivery runs in a worker thread: a slow SMTP
server never holds up the engine. Pending deliveries wait in an outbox (cloud/notify/outbox.py),
durable in the alert store's database for the rules service, so a crash loses none. A failed
delivery is logged, retried for a while, counted, and never fatal.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy.exc import SQLAlchemyError

from cloud.core.alerts import Alert, Severity
from cloud.io.mqtt import Outbound
from cloud.notify.base import ChannelContext, DeliveryError, NotificationChannel
from cloud.notify.channels import get
from cloud.notify.outbox import Delivery, MemoryOutbox, Outbox
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
    # A delivery that failed (after the channel's own retries) is tried again after
    # retry_backoff_s, doubling each time, until retry_for_s after it was first queued.
    retry_backoff_s: float = Field(default=10.0, gt=0)
    retry_for_s: float = Field(default=3600.0, ge=0)

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
    config: NotificationsConfig, broker: BrokerAddress | None = None, outbound: Outbound | None = None
) -> dict[str, NotificationChannel[Any]]:
    """Channels from their config, offered the service's own `broker`, or better its own
    connection (`outbound`); errors name `channels[i].field`."""
    context = ChannelContext(broker=broker, outbound=outbound)
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


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Notifier:
    """Routes alerts to channels through an outbox (cloud/notify/outbox.py) and delivers them
    from a worker thread. With a `SqlOutbox` a delivery outlives a crash: it stays in the
    outbox until its channel took it (at least once). A failed delivery (`DeliveryError`, after
    the channel's own retries) is tried again every `retry_backoff_s`, doubling, for
    `retry_for_s`; then it is dropped, logged and counted as failed. `owner` names this
    process among those sharing the outbox."""

    def __init__(
        self,
        config: NotificationsConfig,
        channels: dict[str, NotificationChannel[Any]],
        *,
        outbox: Outbox | None = None,
        owner: str = "notifier",
        poll_s: float = 1.0,
    ) -> None:
        self.config = config
        self.channels = channels
        self.outbox: Outbox = outbox or MemoryOutbox()
        self.owner = owner
        self.poll_s = poll_s
        self.delivered = 0
        self.failed = 0
        self.retried = 0
        self.grouped = 0
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._delivering = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="sitroom-notify", daemon=True)
        self._thread.start()

    def routed(self, alerts: Sequence[Alert]) -> list[tuple[str, Alert]]:
        """(channel, alert) for every route an alert matches, each pair once."""
        out: list[tuple[str, Alert]] = []
        for a in alerts:
            names: list[str] = []
            for route in self.config.routes:
                if route.matches(a):
                    names += [n for n in route.channels if n not in names]
            out += [(name, a) for name in names]
        return out

    def submit(self, alerts: Sequence[Alert]) -> None:
        deliveries = self.routed(alerts)
        if not deliveries:
            return
        now = _utcnow()
        self.outbox.add(deliveries, now, now + timedelta(seconds=self.config.group_wait_s))
        self._wake.set()

    def wait_idle(self, timeout_s: float) -> bool:
        """True once every submitted alert has been delivered, or has failed (and waits for a
        retry, or was dropped)."""
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            if self._delivering.acquire(timeout=left):
                try:
                    if self.outbox.waiting_first_attempt() == 0:
                        return True
                finally:
                    self._delivering.release()
            time.sleep(0.02)
        return False

    def close(self) -> None:
        self._closing.set()
        self._wake.set()
        self._thread.join(timeout=30)
        for channel in self.channels.values():
            channel.close()
        self.outbox.close()

    def _run(self) -> None:
        while not self._closing.is_set():
            try:
                with self._delivering:
                    now = _utcnow()
                    batch = self.outbox.claim(self.owner, now, _LEASE, _CLAIM_LIMIT)
                    if batch:
                        self.deliver(batch, now)
                        continue
                    due = self.outbox.next_due(self.owner, now)
            except SQLAlchemyError as exc:
                # The database is away: the deliveries wait in it; try again shortly.
                log.warning("notification outbox unavailable: %s", exc)
                due = None
            wait_s = self.poll_s if due is None else min(self.poll_s, (due - _utcnow()).total_seconds())
            if wait_s > 0:
                self._wake.wait(wait_s)
            self._wake.clear()

    def deliver(self, batch: Sequence[Delivery], now: datetime) -> None:
        per_channel: dict[str, list[Delivery]] = {}
        for d in batch:
            per_channel.setdefault(d.channel, []).append(d)
        for name, deliveries in per_channel.items():
            ids = [d.id for d in deliveries]
            channel = self.channels.get(name)
            if channel is None:  # gone from the configuration since the delivery was queued
                log.warning("%d notifications for channel %r dropped: no such channel", len(ids), name)
                self.outbox.done(ids)
                self.failed += 1
                continue
            alerts: list[Alert] = []
            for d in deliveries:
                if d.alert not in alerts:
                    alerts.append(d.alert)
            if len(alerts) > 1:
                self.grouped += len(alerts)
            try:
                channel.send(alerts)
            except DeliveryError as exc:
                self._failed(deliveries, now, exc)
                continue
            self.outbox.done(ids)
            self.delivered += 1

    def _failed(self, deliveries: Sequence[Delivery], now: datetime, exc: DeliveryError) -> None:
        ids = [d.id for d in deliveries]
        oldest = min(d.created_at for d in deliveries)
        attempts = max(d.attempts for d in deliveries)
        retry_at = now + timedelta(seconds=self.config.retry_backoff_s * 2**attempts)
        if retry_at - oldest > timedelta(seconds=self.config.retry_for_s):
            self.outbox.done(ids)
            self.failed += 1
            log.warning("notification of %d alerts not delivered, given up: %s", len(ids), exc)
            return
        self.retried += 1
        self.outbox.retry(ids, retry_at, str(exc))
        log.warning("notification of %d alerts not delivered, again at %s: %s", len(ids), retry_at, exc)


_LEASE = timedelta(minutes=5)  # a claim outlives the slowest channel's own retries
_CLAIM_LIMIT = 10_000
