"""Stored readings as the features that read them back see them: `LatestReadings`.

The NGSI-LD export (`cloud.exchange`) describes each sensor by its newest reading; where those
come from (InfluxDB: `cloud.io.influx.latest`) is the wiring's choice (`cloud/apps/`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol

from edge.contract import Reading


class LatestReadings(Protocol):
    def latest(self, since: timedelta) -> list[Reading]:
        """The newest reading of every series stored within `since`, every kind."""
        ...


__all__ = ["LatestReadings"]
