"""Service watchdog: a cloud service instance (ingest) that stopped reporting, or stalled.

Each instance of a cloud service publishes its counters on
`sr/v1/services/{service}/{instance}/health` every few seconds (ingest: `SITROOM_STATS_INTERVAL_S`).
An instance is *silent* when no report arrived for `silent_s` of wall time: it crashed, hung, or
lost the broker. It is *stalled* when it reports but has work waiting (`backlog` fields above
zero) and its `progress` counter has not moved for `stall_s`: InfluxDB refuses or hangs, and
the broker holds the rest. A report marked `final` (a clean stop) forgets the instance. Wall
time, not event time: a service's health is about now, whatever time the data says.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import Field

from cloud.core.alerts import Alert, Severity
from cloud.rules.base import Clocks, Rule, RuleConfig
from cloud.rules.registry import register

_ID = r"^[a-z0-9][a-z0-9-]{0,62}$"


class ServiceWatchdogConfig(RuleConfig):
    rule: Literal["service_watchdog"] = "service_watchdog"
    service: str = Field(default="ingest", pattern=_ID)
    # The organisation the alert is addressed to: whoever runs the platform.
    org: str = Field(pattern=_ID)
    silent_s: float = Field(default=30.0, gt=0)
    stall_s: float = Field(default=60.0, gt=0)
    progress: str = "writes"
    backlog: list[str] = ["buffered", "writes_in_flight"]
    severity: Severity = "critical"


@dataclass(slots=True)
class _Instance:
    last_report: datetime
    progress: float | None = None
    progress_since: datetime | None = None  # when `progress` last moved (or was first seen)
    backlog: float = 0.0
    alert: Literal["silent", "stalled"] | None = None  # the condition of its open alert


def _number(report: Mapping[str, Any], name: str) -> float | None:
    value = report.get(name)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@register("service_watchdog")
class ServiceWatchdog(Rule[ServiceWatchdogConfig]):
    Config = ServiceWatchdogConfig

    def __init__(self, config: ServiceWatchdogConfig) -> None:
        super().__init__(config)
        self.watches = frozenset()  # no reading: health reports and ticks only
        self.silent = timedelta(seconds=config.silent_s)
        self.stall = timedelta(seconds=config.stall_s)
        self.instances: dict[str, _Instance] = {}

    def service_health(
        self, service: str, instance: str, report: Mapping[str, Any], received: datetime
    ) -> list[Alert]:
        if service != self.config.service:
            return []
        state = self.instances.get(instance)
        out: list[Alert] = []
        if report.get("final") is True:
            # A clean stop (scale-in, a deploy): not an outage. Its open alert, if any, ends.
            if state is not None and state.alert is not None:
                out.append(self._alert(instance, "resolved", received, received, "stopped cleanly"))
            self.instances.pop(instance, None)
            return out
        if state is None:
            state = self.instances[instance] = _Instance(received)
        state.last_report = received
        progress = _number(report, self.config.progress)
        if progress is not None and progress != state.progress:
            state.progress, state.progress_since = progress, received
        state.backlog = sum(_number(report, name) or 0.0 for name in self.config.backlog)
        is_working = state.progress_since == received or state.backlog == 0
        if state.alert == "silent" or (state.alert == "stalled" and is_working):
            what = "reports again" if state.alert == "silent" else "makes progress again"
            state.alert = None
            out.append(self._alert(instance, "resolved", received, received, what))
        return out

    def tick(self, clocks: Clocks) -> list[Alert]:
        now = clocks.wall
        if now is None:
            return []
        out: list[Alert] = []
        for instance, state in self.instances.items():
            if state.alert is not None:
                continue
            silent_for = now - state.last_report
            if silent_for > self.silent:
                state.alert = "silent"
                out.append(
                    self._alert(
                        instance,
                        "firing",
                        now,
                        state.last_report,
                        f"silent for {silent_for.total_seconds():.0f} s (stopped, hung or cut off)",
                        value=silent_for.total_seconds(),
                        threshold=self.config.silent_s,
                    )
                )
            elif state.backlog > 0 and state.progress_since is not None:
                stuck_for = now - state.progress_since
                if stuck_for > self.stall:
                    state.alert = "stalled"
                    out.append(
                        self._alert(
                            instance,
                            "firing",
                            now,
                            state.progress_since,
                            f"stalled: {state.backlog:.0f} waiting, {self.config.progress} unchanged "
                            f"for {stuck_for.total_seconds():.0f} s",
                            value=stuck_for.total_seconds(),
                            threshold=self.config.stall_s,
                        )
                    )
        return out

    def _alert(
        self,
        instance: str,
        state: Literal["firing", "resolved"],
        ts: datetime,
        since: datetime,
        what: str,
        *,
        value: float | None = None,
        threshold: float | None = None,
    ) -> Alert:
        return Alert(
            rule=self.name,
            org=self.config.org,
            entity=instance,
            gateway=instance,
            kind="service",
            severity=self.config.severity,
            state=state,
            since=since,
            ts=ts,
            message=f"{self.config.service} {instance} {what}",
            value=value,
            threshold=threshold,
        )
