"""InfluxDB points of the kernel's own concepts (alerts), beside the readings ingest writes."""

from __future__ import annotations

from cloud.core.alerts import Alert
from cloud.io.influx.lineprotocol import FieldValue, line

ALERTS_MEASUREMENT = "alerts"


def alert_line(alert: Alert) -> str:
    """One point per alert transition, at the time it was decided (event time)."""
    fields: dict[str, FieldValue] = {
        "message": alert.message,
        "active": 0 if alert.state == "resolved" else 1,
        # Open and nobody on it yet: the last point of an alert says whether it still is.
        "unacked": 1 if alert.state == "firing" else 0,
        "since_ms": int(alert.since.timestamp() * 1000),
    }
    if alert.ack_s is not None:
        fields["ack_s"] = float(alert.ack_s)
    if alert.value is not None:
        fields["value"] = float(alert.value)
    if alert.threshold is not None:
        fields["threshold"] = float(alert.threshold)
    tags = {
        "rule": alert.rule,
        "org": alert.org,
        "entity": alert.entity,
        "gateway": alert.gateway,
        "kind": alert.kind,
        "severity": alert.severity,
        "state": alert.state,
    }
    return line(ALERTS_MEASUREMENT, tags, fields, alert.ts)
