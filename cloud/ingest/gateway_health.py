"""Gateways' health and status messages as InfluxDB points, for the pipeline dashboard.

Health arrives on `…/health`, birth and last will on the retained `…/status`. Only a fixed set
of numeric health fields is kept, all as floats, so that their InfluxDB types never conflict.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from cloud.io.influx.lineprotocol import FieldValue, line
from edge.contract import DecodeError, loads

HEALTH_MEASUREMENT = "sitroom_gateway_health"
STATUS_MEASUREMENT = "sitroom_gateway_status"
HEALTH_FIELDS = (
    "uptime_s",
    "readings_read",
    "readings_published",
    "batches_published",
    "queue_depth",
    "oldest_queued_age_s",
    "dropped_readings",
    "source_errors",
    "cpu_pct",
    "rss_mb",
    "disk_free_mb",
    "stale_feeds",  # a feed reader's (sitroom transit read): feeds whose header stopped advancing
)


def _object(payload: bytes, what: str) -> dict[str, Any]:
    body = loads(payload)
    if not isinstance(body, dict):
        raise DecodeError(f"a {what} message is a JSON object", field="payload", value=payload[:64])
    return body


def health_line(org: str, gateway: str, payload: bytes, received: datetime) -> str | None:
    """The point of one health message, None when it carries none of the known counters."""
    body = _object(payload, "health")
    fields: dict[str, FieldValue] = {}
    for name in HEALTH_FIELDS:
        value = body.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            fields[name] = float(value)
    if not fields:
        return None
    return line(HEALTH_MEASUREMENT, {"org": org, "gateway": gateway}, fields, received)


def status_line(org: str, gateway: str, payload: bytes, received: datetime) -> str | None:
    """online = 1 for the birth message, 0 for the last will or a goodbye; None for a cleared
    retained status (empty payload)."""
    if not payload:
        return None
    body = _object(payload, "status")
    state = body.get("state")
    if state not in ("online", "offline"):
        raise DecodeError("state must be online or offline", field="state", value=state)
    fields: dict[str, FieldValue] = {"online": 1 if state == "online" else 0}
    if isinstance(body.get("reason"), str) and body["reason"]:
        fields["reason"] = body["reason"][:200]
    return line(STATUS_MEASUREMENT, {"org": org, "gateway": gateway}, fields, received)
