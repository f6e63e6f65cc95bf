"""The newest reading of every series InfluxDB holds (`core.readings.LatestReadings`)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from pydantic import ValidationError

from cloud.io.influx.client import InfluxClient, InfluxError
from edge.contract import KINDS, Reading, SensorKind

log = logging.getLogger(__name__)


class InfluxLatest:
    def __init__(self, influx: InfluxClient) -> None:
        self.influx = influx

    def latest(self, since: timedelta) -> list[Reading]:
        """One reading per (org, sensor, kind), the newest within `since` (whole hours, at least 1)."""
        out: dict[tuple[str, str, SensorKind], Reading] = {}
        hours = max(1, int(since.total_seconds() // 3600))
        for kind, spec in KINDS.items():
            # Names come from the contract's declarations and an integer, never from input.
            q = (
                f'SELECT * FROM "{kind.value}" WHERE time > now() - {hours}h '  # noqa: S608
                "GROUP BY * ORDER BY time DESC LIMIT 1"
            )
            try:
                series = self.influx.series(q)
            except InfluxError as exc:
                log.warning("latest %s readings unavailable: %s", kind.value, exc)
                continue
            for s in series:
                tags = s.get("tags") or {}
                row = dict(zip(s["columns"], s["values"][0], strict=True))
                try:
                    reading = Reading(
                        kind=kind,
                        org=tags.get("org", ""),
                        gateway=tags.get("gateway", ""),
                        sensor=tags.get("sensor", ""),
                        ts=datetime.fromtimestamp(row["time"] / 1000, UTC),
                        fields={f.name: row[f.name] for f in spec.fields if row.get(f.name) is not None},
                        tags={k: v for k, v in tags.items() if k in spec.tags and v},
                    )
                except ValidationError as exc:
                    log.warning("%s %s: not a reading any more: %s", kind.value, tags, exc.errors()[0]["msg"])
                    continue
                key = (reading.org, reading.sensor, kind)
                if key not in out or out[key].ts < reading.ts:
                    out[key] = reading
        return list(out.values())


__all__ = ["InfluxLatest"]
