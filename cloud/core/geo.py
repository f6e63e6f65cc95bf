"""Geography every feature shares: GeoJSON geometry checks, the configured service areas, where
the sensors are (sites), the `WorksiteLookup` protocol through which rules ask which worksites
are near a point, and the `Geography` rules are bound to (sites, worksites, the transit network).

Geometries arrive as GeoJSON (RFC 7946: WGS84, `[lon, lat]`); distances are in metres of the
local projection of `cloud/core/metres.py`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx
import orjson
import shapely
import yaml
from pydantic import BaseModel, ConfigDict, Field
from shapely import Point
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

from cloud.core.metres import LocalProjection
from cloud.core.transit import NoTransit, TransitNetwork
from edge.contract.areas import Area, Areas, load_areas

SITES_FILE = Path(__file__).with_name("sites.yaml")
GEOMETRY_TYPES = ("Point", "LineString", "Polygon", "MultiPoint", "MultiLineString", "MultiPolygon")
MAX_VERTICES = 10_000


class GeometryError(ValueError):
    """An unusable geometry; `reason` says why in words a user can act on."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True, slots=True)
class BBox:
    """A WGS84 bounding box, `min_lon,min_lat,max_lon,max_lat` (GeoJSON `bbox` order)."""

    min_lon: float
    min_lat: float
    max_lon: float
    max_lat: float

    def __post_init__(self) -> None:
        if not (-180 <= self.min_lon <= self.max_lon <= 180 and -90 <= self.min_lat <= self.max_lat <= 90):
            raise ValueError(
                f"bbox must be min_lon,min_lat,max_lon,max_lat with min <= max in WGS84: {self.as_list()}"
            )

    @classmethod
    def parse(cls, text: str) -> BBox:
        parts = text.split(",")
        if len(parts) != 4:
            raise ValueError(f"bbox must be four numbers min_lon,min_lat,max_lon,max_lat: {text!r}")
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise ValueError(f"bbox must be four numbers min_lon,min_lat,max_lon,max_lat: {text!r}") from None
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"bbox values must be finite: {text!r}")
        return cls(*values)

    def as_list(self) -> list[float]:
        return [self.min_lon, self.min_lat, self.max_lon, self.max_lat]

    def contains(self, other: BBox) -> bool:
        return (
            self.min_lon <= other.min_lon
            and self.min_lat <= other.min_lat
            and other.max_lon <= self.max_lon
            and other.max_lat <= self.max_lat
        )

    def polygon(self) -> BaseGeometry:
        return shapely.box(self.min_lon, self.min_lat, self.max_lon, self.max_lat)


WORLD = BBox(-180, -90, 180, 90)  # for reading a registry back: its area was checked on the way in


# RFC 7946 section 4: WGS84 longitude and latitude in decimal degrees.
_RANGES = ((-180.0, 180.0, "longitude"), (-90.0, 90.0, "latitude"))


def _check_position(position: Any) -> None:
    if not isinstance(position, list | tuple) or len(position) not in (2, 3):
        raise GeometryError(f"a position must be [lon, lat]: {position!r}"[:200])
    for value in position:
        # An int may be too large for a float (10**400): compare it, never convert it.
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise GeometryError(f"a coordinate must be a finite number: {value!r}"[:200])
        if isinstance(value, float) and not math.isfinite(value):
            raise GeometryError(f"a coordinate must be a finite number: {value!r}"[:200])
    for value, (low, high, name) in zip(position, _RANGES, strict=False):
        if not low <= value <= high:
            raise GeometryError(f"a {name} must be within {low:g} and {high:g} degrees: {value!r}"[:200])


def _walk(coords: Any, depth: int) -> int:
    """Check the nesting of `coordinates` and return the number of positions."""
    if depth == 0:
        _check_position(coords)
        return 1
    if not isinstance(coords, list | tuple):
        raise GeometryError("coordinates are not nested as the geometry type requires")
    return sum(_walk(c, depth - 1) for c in coords)


_DEPTH = {"Point": 0, "LineString": 1, "MultiPoint": 1, "Polygon": 2, "MultiLineString": 2, "MultiPolygon": 3}


def _check_rings(kind: str, polygons: Any) -> None:
    for rings in polygons:
        for ring in rings:
            # RFC 7946 3.1.6: a linear ring is closed, with four or more positions.
            if len(ring) < 4 or list(ring[0]) != list(ring[-1]):
                raise GeometryError(f"a {kind} ring must be closed (first = last) with 4 or more positions")


def parse_geojson(obj: Any) -> BaseGeometry:
    """A valid shapely geometry from a GeoJSON geometry object, or `GeometryError` saying why."""
    if not isinstance(obj, dict):
        raise GeometryError("must be a GeoJSON geometry object")
    kind = obj.get("type")
    if kind not in GEOMETRY_TYPES:
        raise GeometryError(f"type must be one of {', '.join(GEOMETRY_TYPES)}: {kind!r}"[:200])
    if "coordinates" not in obj:
        raise GeometryError("coordinates missing")
    extra = set(obj) - {"type", "coordinates", "bbox"}
    if extra:
        raise GeometryError(f"unexpected members: {', '.join(sorted(map(str, extra)))}"[:200])
    count = _walk(obj["coordinates"], _DEPTH[kind])
    if kind in ("Polygon", "MultiPolygon"):
        _check_rings(kind, [obj["coordinates"]] if kind == "Polygon" else obj["coordinates"])
    if count == 0:
        raise GeometryError("empty geometry")
    if count > MAX_VERTICES:
        raise GeometryError(f"too many vertices ({count} > {MAX_VERTICES})")
    try:
        geom = shape(obj)
    except (ValueError, TypeError, shapely.errors.ShapelyError) as exc:
        raise GeometryError(f"not a valid {kind}: {exc}") from None
    if geom.is_empty:
        raise GeometryError("empty geometry")
    if not geom.is_valid:
        # e.g. "Self-intersection[11.1 43.88]" (GEOS IsValidOp)
        raise GeometryError(f"invalid {kind}: {shapely.is_valid_reason(geom)}")
    if kind in ("LineString", "MultiLineString") and geom.length == 0:
        raise GeometryError(f"degenerate {kind}: all points equal")
    return geom


def to_geojson(geom: BaseGeometry) -> dict[str, Any]:
    out: dict[str, Any] = dict(mapping(geom))
    out["coordinates"] = _lists(out["coordinates"])
    return out


def _lists(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_lists(v) for v in value]
    return value


class ServiceAreas:
    """The deployment's areas (edge.contract.areas) as geometries: where worksites may lie.

    A geometry outside every area is refused as a typo (swapped lat/lon, a missing minus sign,
    another city's coordinates), naming the configured areas. One that crosses the border of two
    configured areas is accepted: roadworks do not stop at a municipal boundary.
    """

    def __init__(self, areas: Areas) -> None:
        self.areas = areas
        self._shapes = {a.id: shape(a.boundary.model_dump()) for a in areas}
        self._union = shapely.union_all(list(self._shapes.values()))
        # Sub-metre slack: a worksite drawn along a boundary line is inside its area.
        self._covering = self._union.buffer(1e-5)
        shapely.prepare(self._covering)
        self.bbox = BBox(*areas.bbox)
        self.projection = LocalProjection.around(self.bbox)

    @classmethod
    def load(cls, path: Path | str | None = None) -> ServiceAreas:
        """The areas of the file at `path` (None: the default, Prato alone)."""
        return cls(load_areas(path))

    def __iter__(self) -> Iterator[Area]:
        return iter(self.areas)

    @property
    def ids(self) -> list[str]:
        return self.areas.ids

    def check(self, geom: BaseGeometry) -> list[str]:
        """The ids of the areas `geom` lies in, or GeometryError naming every configured area."""
        if not self._covering.covers(geom):
            raise GeometryError(
                f"coordinates outside every configured area ({self.areas.describe()}; "
                f"geometry spans {[round(v, 6) for v in geom.bounds]}; GeoJSON order is [lon, lat])"
            )
        return [a for a, s in self._shapes.items() if s.intersects(geom)]

    def view(self, only: Sequence[str] = ()) -> dict[str, float]:
        """A map view (centre and zoom) that shows the areas `only` (default: all of them)."""
        chosen = [a for a in self.areas if a.id in only] or list(self.areas)
        return map_view(Areas(tuple(chosen)).bbox)


def map_view(bbox: tuple[float, float, float, float]) -> dict[str, float]:
    """Centre and a web-map zoom level (256-pixel tiles) at which `bbox` fits about 1,000 pixels."""
    min_lon, min_lat, max_lon, max_lat = bbox
    lat = (min_lat + max_lat) / 2
    span_deg = max(max_lon - min_lon, (max_lat - min_lat) / math.cos(math.radians(lat)), 1e-6)
    zoom = max(1, min(18, math.floor(math.log2(1000 * 360 / (256 * span_deg)))))
    return {"lat": round(lat, 4), "lon": round((min_lon + max_lon) / 2, 4), "zoom": zoom}


def local_metres(geom: BaseGeometry, lat0: float) -> BaseGeometry:
    """`geom` (lon/lat degrees) in metres of the local projection at latitude `lat0`."""
    return LocalProjection(0.0, lat0).to_metres(geom)


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


class SiteSource(Protocol):
    """Where the sensors are, as of now: the installation file's sites, and the places that
    partners' entities gave (`cloud.io.influx.sites`), for the map feeds and the console."""

    def sites(self) -> dict[str, Site]: ...


@dataclass(frozen=True, slots=True)
class FixedSites:
    """Sites that do not change while the process runs (the installation file's)."""

    known: dict[str, Site]

    @classmethod
    def from_file(cls, path: Path = SITES_FILE) -> FixedSites:
        return cls(load_sites(path))

    def sites(self) -> dict[str, Site]:
        return self.known


class MergedSites:
    """Several sources as one; the first that places a sensor wins (ours before a partner's)."""

    def __init__(self, *sources: SiteSource) -> None:
        self.sources = sources

    def sites(self) -> dict[str, Site]:
        out: dict[str, Site] = {}
        for source in reversed(self.sources):
            out.update(source.sites())
        return out


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
    street: str = ""
    geometry: dict[str, Any] | None = field(default=None, compare=False, hash=False)  # GeoJSON

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

    def active(self, at: datetime) -> list[WorksiteRef]:
        """Every worksite active at `at`, with its geometry."""
        ...


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
                street=str(props.get("street", "")),
                geometry=feature["geometry"],
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

    def active(self, at: datetime) -> list[WorksiteRef]:
        return [ref for ref, _, _, _ in self.items if ref.is_active(at)]


class NoWorksites:
    def active_near(self, lat: float, lon: float, radius_m: float, at: datetime) -> list[WorksiteRef]:
        return []

    def containing(self, lat: float, lon: float, at: datetime) -> list[WorksiteRef]:
        return []

    def active(self, at: datetime) -> list[WorksiteRef]:
        return []


@dataclass(slots=True)
class Geography:
    """What geographic rules are bound to when the rules file is loaded."""

    sites: dict[str, Site]
    worksites: WorksiteLookup
    transit: TransitNetwork = field(default_factory=NoTransit)
