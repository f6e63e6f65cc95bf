"""Geography for rules: where sensors are, and which worksites are active near a point.

`WorksiteLookup` is the seam: rules ask it `active_near` and `containing`. `GeoJsonWorksites`
implements it over a GeoJSON FeatureCollection (file, URL or dict) so the rules work on their
own; an adapter over the worksite registry (cloud.worksites) can implement the same protocol.
Distances use a local equirectangular projection (metres, exact to well under 1 % at city scale).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx
import numpy as np
import orjson
import shapely
import yaml
from pydantic import BaseModel, ConfigDict, Field
from shapely import Point
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

SITES_FILE = Path(__file__).with_name("sites.yaml")
M_PER_DEG_LAT = 111_132.0


class Site(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    name: str = ""
    capacity: int | None = None
    park_and_ride: bool = False


class SitesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sensors: dict[str, Site]


def load_sites(path: Path = SITES_FILE) -> dict[str, Site]:
    return SitesFile.model_validate(yaml.safe_load(path.read_text())).sensors


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    kx = M_PER_DEG_LAT * math.cos(math.radians((lat1 + lat2) / 2))
    return math.hypot((lon2 - lon1) * kx, (lat2 - lat1) * M_PER_DEG_LAT)


def local_metres(geom: BaseGeometry, lat0: float) -> BaseGeometry:
    """`geom` (lon/lat degrees) in metres of a local plane at latitude `lat0`: a city-sized
    equirectangular projection, good to well under 1 % within tens of kilometres."""
    factors = np.array([M_PER_DEG_LAT * math.cos(math.radians(lat0)), M_PER_DEG_LAT])
    return shapely.transform(geom, lambda xy: xy * factors)


def sites_near(geom: BaseGeometry, sites: dict[str, Site], radius_m: float) -> list[tuple[str, float]]:
    """(sensor, metres) of every site within `radius_m` of `geom`, nearest first."""
    lat0 = geom.centroid.y
    metres = local_metres(geom, lat0)
    near = []
    for sensor, site in sites.items():
        d = metres.distance(local_metres(Point(site.lon, site.lat), lat0))
        if d <= radius_m:
            near.append((sensor, round(d, 1)))
    return sorted(near, key=lambda item: (item[1], item[0]))


@dataclass(frozen=True, slots=True)
class WorksiteRef:
    id: str
    name: str
    starts_at: datetime
    ends_at: datetime
    is_planned: bool  # announced in advance: its traffic impact is expected, not an anomaly
    org: str | None = None

    def is_active(self, at: datetime) -> bool:
        return self.starts_at <= at < self.ends_at

    def to_context(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "planned": self.is_planned,
            "ends_at": self.ends_at.isoformat(),
        }


class WorksiteLookup(Protocol):
    def active_near(self, lat: float, lon: float, radius_m: float, at: datetime) -> list[WorksiteRef]: ...

    def containing(self, lat: float, lon: float, at: datetime) -> list[WorksiteRef]: ...


def _ts(value: Any, field: str, index: int) -> datetime:
    try:
        ts = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"features[{index}].properties.{field}: {value!r} is not an ISO 8601 time") from None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


class GeoJsonWorksites:
    """Worksites from a FeatureCollection; each feature's properties: `id`, `name`, `starts_at`,
    `ends_at` (ISO 8601), `planned` (default true), optional `org`."""

    def __init__(self, collection: dict[str, Any]) -> None:
        if collection.get("type") != "FeatureCollection":
            raise ValueError(f"type: expected FeatureCollection, got {collection.get('type')!r}")
        # ref, geometry in degrees, the same in local metres, the latitude of that projection
        self.items: list[tuple[WorksiteRef, BaseGeometry, BaseGeometry, float]] = []
        for i, feature in enumerate(collection.get("features", [])):
            props = feature.get("properties") or {}
            ref = WorksiteRef(
                id=str(props.get("id", f"feature-{i}")),
                name=str(props.get("name", "")),
                starts_at=_ts(props.get("starts_at"), "starts_at", i),
                ends_at=_ts(props.get("ends_at"), "ends_at", i),
                is_planned=bool(props.get("planned", True)),
                org=props.get("org"),
            )
            geom = shape(feature["geometry"])
            lat0 = geom.centroid.y
            self.items.append((ref, geom, self._metres(geom, lat0), lat0))

    @classmethod
    def load(cls, source: str | Path) -> GeoJsonWorksites:
        text = str(source)
        if text.startswith(("http://", "https://")):
            response = httpx.get(text, timeout=10.0)
            response.raise_for_status()
            return cls(orjson.loads(response.content))
        return cls(orjson.loads(Path(source).read_bytes()))

    @staticmethod
    def _metres(geom: BaseGeometry, lat0: float) -> BaseGeometry:
        return local_metres(geom, lat0)

    def active_near(self, lat: float, lon: float, radius_m: float, at: datetime) -> list[WorksiteRef]:
        out = []
        for ref, _geom, metres, lat0 in self.items:
            if ref.is_active(at) and metres.distance(self._metres(Point(lon, lat), lat0)) <= radius_m:
                out.append(ref)
        return out

    def containing(self, lat: float, lon: float, at: datetime) -> list[WorksiteRef]:
        p = Point(lon, lat)
        return [ref for ref, geom, _, _ in self.items if ref.is_active(at) and geom.covers(p)]


class NoWorksites:
    def active_near(self, lat: float, lon: float, radius_m: float, at: datetime) -> list[WorksiteRef]:
        return []

    def containing(self, lat: float, lon: float, at: datetime) -> list[WorksiteRef]:
        return []


@dataclass(slots=True)
class Geography:
    """What geographic rules are bound to when the rules file is loaded."""

    sites: dict[str, Site]
    worksites: WorksiteLookup


class RegistryWorksites:
    """`WorksiteLookup` over the worksite registry (cloud.worksites), refreshed every `refresh_s`.

    Cancelled worksites are ignored; a worksite counts as *planned* when the municipality approved
    it or it was registered before it started (an emergency dig entered after the fact is not).
    """

    def __init__(self, store: Any, refresh_s: float = 60.0) -> None:
        self.store = store
        self.refresh_s = refresh_s
        self._loaded_at = -math.inf
        self._lookup = GeoJsonWorksites({"type": "FeatureCollection", "features": []})

    @classmethod
    def open(cls, url: str, refresh_s: float = 60.0) -> RegistryWorksites:
        from cloud.core.geometry import BBox  # noqa: PLC0415  (only when a rules file asks for it)
        from cloud.worksites.store import WorksiteStore  # noqa: PLC0415

        return cls(WorksiteStore.open(url, area=BBox(-180, -90, 180, 90)), refresh_s)

    def _current(self) -> GeoJsonWorksites:
        now = time.monotonic()
        if now - self._loaded_at >= self.refresh_s:
            features = []
            for w in self.store.search():
                if w.status.value == "cancelled":
                    continue
                props = {
                    "id": w.id,
                    "name": w.title,
                    "starts_at": w.start.isoformat(),
                    "ends_at": w.end.isoformat(),
                    "planned": w.approval.value == "approved" or w.created_at <= w.start,
                    "org": w.owner,
                }
                features.append({"type": "Feature", "geometry": w.geometry, "properties": props})
            self._lookup = GeoJsonWorksites({"type": "FeatureCollection", "features": features})
            self._loaded_at = now
        return self._lookup

    def active_near(self, lat: float, lon: float, radius_m: float, at: datetime) -> list[WorksiteRef]:
        return self._current().active_near(lat, lon, radius_m, at)

    def containing(self, lat: float, lon: float, at: datetime) -> list[WorksiteRef]:
        return self._current().containing(lat, lon, at)
