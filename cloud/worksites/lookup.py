"""The worksite registry seen by rules: `WorksiteLookup` over the store, refreshed periodically.

The rules service gets it from its wiring (`cloud/apps/rules.py`) when a rules file says
`worksites: registry:URL`; rules themselves only know the protocol.
"""

from __future__ import annotations

import logging
import math
import time
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError

from cloud.core.geo import GeoJsonWorksites, WorksiteLookup, WorksiteRef
from cloud.io.db import make_engine
from cloud.worksites.store import WorksiteStore

log = logging.getLogger(__name__)


def open_registry_lookup(url: str, refresh_s: float = 60.0) -> WorksiteLookup:
    # Rules look worksites up wherever they are: the registry's area check applies on writes.
    return RegistryWorksites(WorksiteStore.open(url, areas=None), refresh_s)


def read_registry_lookup(url: str, refresh_s: float = 60.0) -> WorksiteLookup:
    """The registry read only, as the service's own default source: the API owns its schema and
    creates it, maybe after the rules service started; until then no worksite is known."""
    return RegistryWorksites(WorksiteStore(make_engine(url), areas=None), refresh_s)


class RegistryWorksites:
    """`WorksiteLookup` (cloud.core.geo) over the worksite registry, refreshed every `refresh_s`.

    Cancelled worksites are ignored; a worksite counts as *planned* when the municipality approved
    it or it was registered before it started (an emergency dig entered after the fact is not).
    """

    def __init__(self, store: WorksiteStore, refresh_s: float = 60.0) -> None:
        self.store = store
        self.refresh_s = refresh_s
        self._loaded_at = -math.inf
        self._lookup = GeoJsonWorksites({"type": "FeatureCollection", "features": []})

    @classmethod
    def open(cls, url: str, refresh_s: float = 60.0) -> RegistryWorksites:
        return cls(WorksiteStore.open(url, areas=None), refresh_s)

    def _current(self) -> GeoJsonWorksites:
        now = time.monotonic()
        if now - self._loaded_at >= self.refresh_s:
            features = []
            try:
                found = self.store.search()
            except SQLAlchemyError as exc:
                # Not created yet, or unreachable: the last worksites known stand until the next try.
                log.warning("worksite registry unreadable, retrying in %g s: %s", self.refresh_s, exc)
                self._loaded_at = now
                return self._lookup
            for w in found:
                if w.status.value == "cancelled":
                    continue
                props = {
                    "id": w.id,
                    "name": w.title,
                    "starts_at": w.start.isoformat(),
                    "ends_at": w.end.isoformat(),
                    "planned": w.approval.value == "approved" or w.created_at <= w.start,
                    "org": w.owner,
                    "street": w.street,
                }
                features.append({"type": "Feature", "geometry": w.geometry, "properties": props})
            self._lookup = GeoJsonWorksites({"type": "FeatureCollection", "features": features})
            self._loaded_at = now
        return self._lookup

    def active_near(self, lat: float, lon: float, radius_m: float, at: datetime) -> list[WorksiteRef]:
        return self._current().active_near(lat, lon, radius_m, at)

    def containing(self, lat: float, lon: float, at: datetime) -> list[WorksiteRef]:
        return self._current().containing(lat, lon, at)

    def active(self, at: datetime) -> list[WorksiteRef]:
        return self._current().active(at)
