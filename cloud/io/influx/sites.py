"""Places that arrive with the data: a partner's car park says where it is, and InfluxDB keeps it.

Our sensors' places are an installation file (`cloud/core/sites.yaml`); a partner's entities
carry their own (an NGSI-LD `location`). The NGSI-LD receiver writes one `sitroom_site` point
beside each reading of an entity with a Point location; `InfluxSites` reads the newest place of
each sensor back as a `core.geo.SiteSource`, for the map feed (`/feeds/sites.geojson`, Grafana's
Geomap lookup), the console's map and the NGSI-LD export.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime

from cloud.core.geo import Site
from cloud.io.influx.client import InfluxClient, InfluxError
from cloud.io.influx.lineprotocol import line

log = logging.getLogger(__name__)

SITE_MEASUREMENT = "sitroom_site"


def site_line(org: str, sensor: str, kind: str, *, lat: float, lon: float, name: str, at: datetime) -> str:
    """The point that places `sensor` (tags org, sensor, kind) at (lat, lon), named `name`."""
    return line(
        SITE_MEASUREMENT,
        {"org": org, "sensor": sensor, "kind": kind},
        {"lat": float(lat), "lon": float(lon), "name": name or sensor},
        at,
    )


class InfluxSites:
    """The places InfluxDB holds, newest per (org, sensor), read at most every `refresh_s`.

    A failing read (InfluxDB down, a user that may not read) keeps the last places and is
    logged once per cause: the map then shows what it showed, never an error.
    """

    def __init__(
        self, influx: InfluxClient, *, refresh_s: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.influx = influx
        self.refresh_s = refresh_s
        self._clock = clock
        self._lock = threading.Lock()
        self._sites: dict[str, Site] = {}
        self._read_at: float | None = None
        self._last_error = ""

    def sites(self) -> dict[str, Site]:
        with self._lock:
            now = self._clock()
            if self._read_at is None or now - self._read_at >= self.refresh_s:
                self._read_at = now
                self._sites = self._read(self._sites)
            return dict(self._sites)

    def _read(self, previous: dict[str, Site]) -> dict[str, Site]:
        try:
            series = self.influx.series(
                f'SELECT last("lat") AS "lat", last("lon") AS "lon", last("name") AS "name" '  # noqa: S608  (constant)
                f'FROM "{SITE_MEASUREMENT}" GROUP BY "org", "sensor"'
            )
        except InfluxError as exc:
            if str(exc) != self._last_error:
                self._last_error = str(exc)
                log.warning("partners' places unavailable, keeping the last ones: %s", exc)
            return previous
        self._last_error = ""
        out: dict[str, Site] = {}
        for s in series:
            tags = s.get("tags") or {}
            row = dict(zip(s["columns"], s["values"][0], strict=True))
            sensor = tags.get("sensor", "")
            try:
                out[sensor] = Site(lat=row["lat"], lon=row["lon"], name=str(row.get("name") or sensor))
            except ValueError as exc:  # pydantic: a place out of range is not shown
                log.warning("place of %s/%s not shown: %s", tags.get("org"), sensor, exc)
        return out


__all__ = ["SITE_MEASUREMENT", "InfluxSites", "site_line"]
