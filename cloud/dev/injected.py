"""The demo's verdict on its detector alerts: each one explained by an anomaly the simulators were
told to inject (`anomalies:` of a sensor in the gateway configs), or a false alarm.

The gateway configs are read as plain YAML (the cloud imports no gateway code): a sensor's
anomaly window runs from `after_min` simulated minutes after the simulation's start for
`for_min` minutes (to the end of the run without it), as `edge/simulators/anomalies.py` says.
A detector alert (one whose context has a `score`) is explained when its sensor has a window
that began before the alert's `since` and ended at most `GRACE` before it (a departure is
reported while it lasts and a little after, as the readings settle back).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

GRACE = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Window:
    sensor: str
    kind: str
    begin: datetime
    end: datetime | None  # None: to the end of the run

    def explains(self, since: datetime) -> bool:
        return self.begin <= since and (self.end is None or since <= self.end + GRACE)


def injected_windows(configs: list[Path], sim_start: datetime) -> list[Window]:
    out: list[Window] = []
    for path in configs:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for sensor in raw.get("sensors") or []:
            for anomaly in sensor.get("anomalies") or []:
                begin = sim_start + timedelta(minutes=float(anomaly["after_min"]))
                for_min = anomaly.get("for_min")
                end = None if for_min is None else begin + timedelta(minutes=float(for_min))
                out.append(Window(str(sensor["id"]), str(anomaly["kind"]), begin, end))
    return out


def detector_alerts(firing: list[dict[str, Any]], windows: list[Window]) -> list[dict[str, Any]]:
    """Every firing detector alert with the injected anomaly that explains it (None: a false alarm)."""
    out: list[dict[str, Any]] = []
    for a in firing:
        if (a.get("context") or {}).get("score") is None:
            continue
        since = datetime.fromisoformat(str(a["since"]).replace("Z", "+00:00"))
        found = next((w for w in windows if w.sensor == a.get("entity") and w.explains(since)), None)
        out.append(
            {
                "rule": a.get("rule"),
                "entity": a.get("entity"),
                "since": a.get("since"),
                "message": a.get("message"),
                "injected": None if found is None else found.kind,
            }
        )
    return out


__all__ = ["GRACE", "Window", "detector_alerts", "injected_windows"]
