"""Areas: the territories a deployment serves, declared in a file, never in code.

An area has an id, a name, a boundary (a GeoJSON Polygon or MultiPolygon, RFC 7946 `[lon, lat]`),
the organisation of its municipality (it approves the worksites there and reads every
organisation's data) and its IANA time zone. One file lists them all:

    areas:
      - id: prato
        name: Prato
        municipality: comune-prato
        timezone: Europe/Rome
        boundary: {type: Polygon, coordinates: [[[10.98, 43.84], [11.02, 43.80], ...]]}

Every check that used to know Prato reads it: where a gateway may stand (gateway/config.py),
where a worksite may lie (cloud.core.geo.ServiceAreas), the console's and the dashboards' default
view. It lives in the contract because gateways and the cloud read the same file; it is pure
Python (even-odd point in polygon), so a street gateway needs no geometry library.
`DEFAULT_AREAS_FILE` (Prato alone) applies when a deployment names none (`SITROOM_AREAS`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from edge.contract.ids import Id

DEFAULT_AREAS_FILE = Path(__file__).with_name("areas.yaml")
# The deployment's areas file, for gateways and cloud processes alike (their CLIs' `--areas`).
AREAS_ENV = "SITROOM_AREAS"

Position = tuple[float, float]
Ring = list[Position]


class AreasFileError(ValueError):
    """An areas file that cannot be used; `problems` are `path: problem: value` lines."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


class OutsideAreasError(ValueError):
    """A point in none of the configured areas; the message lists them."""

    def __init__(self, lat: float, lon: float, areas: Areas) -> None:
        self.lat = lat
        self.lon = lon
        self.area_ids = [a.id for a in areas]
        super().__init__(
            f"({lat}, {lon}) is outside every configured area ({areas.describe()}); are lat and lon swapped?"
        )


def _check_ring(ring: Sequence[Sequence[float]]) -> Ring:
    # RFC 7946 3.1.6: a linear ring is closed, with four or more positions.
    if len(ring) < 4 or list(ring[0]) != list(ring[-1]):
        raise ValueError("a ring must be closed (first = last) with 4 or more positions")
    out: Ring = []
    for position in ring:
        if len(position) not in (2, 3):
            raise ValueError(f"a position is [lon, lat]: {list(position)!r}")
        lon, lat = float(position[0]), float(position[1])
        if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
            raise ValueError(f"a position is [lon, lat] in WGS84 degrees: {list(position)!r}")
        out.append((lon, lat))
    return out


class Boundary(BaseModel):
    """A GeoJSON Polygon or MultiPolygon: each polygon an outer ring, then its holes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["Polygon", "MultiPolygon"]
    coordinates: list[Any]

    @model_validator(mode="after")
    def _rings(self) -> Self:
        polygons = [self.coordinates] if self.type == "Polygon" else self.coordinates
        if not polygons or not all(isinstance(p, list) and p for p in polygons):
            raise ValueError(f"a {self.type} needs at least one ring")
        for polygon in polygons:
            for ring in polygon:
                _check_ring(ring)
        return self

    def polygons(self) -> list[list[Ring]]:
        polygons = [self.coordinates] if self.type == "Polygon" else self.coordinates
        return [[_check_ring(ring) for ring in polygon] for polygon in polygons]


def _inside(ring: Ring, lon: float, lat: float) -> bool:
    """Even-odd ray casting: does a ray from the point towards +lon cross the ring an odd number
    of times? Points exactly on an edge may fall either way, which is fine for a typo check."""
    inside = False
    j = len(ring) - 1
    for i in range(len(ring)):
        (xi, yi), (xj, yj) = ring[i], ring[j]
        if (yi > lat) != (yj > lat) and lon < (xj - xi) * (lat - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside


class Area(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Id
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    municipality: Id  # the organisation of the area's municipality
    timezone: str = "Europe/Rome"
    boundary: Boundary

    @model_validator(mode="after")
    def _zone(self) -> Self:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"timezone: {self.timezone!r} is not an IANA time zone (e.g. Europe/Rome)"
            ) from None
        return self

    def contains(self, lat: float, lon: float) -> bool:
        for outer, *holes in self.boundary.polygons():
            if _inside(outer, lon, lat) and not any(_inside(h, lon, lat) for h in holes):
                return True
        return False

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """min_lon, min_lat, max_lon, max_lat (GeoJSON `bbox` order)."""
        points = [p for polygon in self.boundary.polygons() for p in polygon[0]]
        lons, lats = [p[0] for p in points], [p[1] for p in points]
        return min(lons), min(lats), max(lons), max(lats)


class AreasFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    areas: list[Area] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> Self:
        seen: set[str] = set()
        for i, area in enumerate(self.areas):
            if area.id in seen:
                raise ValueError(f"areas[{i}].id: {area.id!r} is listed twice")
            seen.add(area.id)
        return self


@dataclass(frozen=True, slots=True)
class Areas:
    """The configured areas, in file order (the first one containing a point is its area)."""

    items: tuple[Area, ...]
    source: str = str(DEFAULT_AREAS_FILE)

    def __iter__(self) -> Iterator[Area]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def ids(self) -> list[str]:
        return [a.id for a in self.items]

    def get(self, area_id: str) -> Area:
        for area in self.items:
            if area.id == area_id:
                return area
        raise KeyError(f"area {area_id!r} is not configured; configured: {', '.join(self.ids)}")

    def locate(self, lat: float, lon: float) -> Area | None:
        return next((a for a in self.items if a.contains(lat, lon)), None)

    def require(self, lat: float, lon: float) -> Area:
        """The area of the point, or OutsideAreasError listing the configured areas."""
        area = self.locate(lat, lon)
        if area is None:
            raise OutsideAreasError(lat, lon, self)
        return area

    def describe(self) -> str:
        return "; ".join(
            f"{a.id} ({a.name}: lon {a.bbox[0]:g}..{a.bbox[2]:g}, lat {a.bbox[1]:g}..{a.bbox[3]:g})"
            for a in self.items
        )

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        boxes = [a.bbox for a in self.items]
        return (
            min(b[0] for b in boxes),
            min(b[1] for b in boxes),
            max(b[2] for b in boxes),
            max(b[3] for b in boxes),
        )

    def municipalities(self) -> list[str]:
        return sorted({a.municipality for a in self.items})


def parse_areas(raw: Any, source: str = "<areas>") -> Areas:
    try:
        parsed = AreasFile.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            path = ""
            for part in err["loc"]:
                path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
            value = err.get("input")
            shown = "" if isinstance(value, dict | list) else f": {value!r}"[:120]
            problems.append(f"{path or '(top)'}: {err['msg']}{shown}")
        raise AreasFileError(source, problems) from None
    return Areas(tuple(parsed.areas), source)


def load_areas(path: Path | str | None = None) -> Areas:
    """The areas of `path`; with None, of the default file (Prato alone)."""
    chosen = Path(path) if path else DEFAULT_AREAS_FILE
    try:
        raw = yaml.safe_load(chosen.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise AreasFileError(str(chosen), [f"cannot read it ({exc})"]) from None
    return parse_areas(raw, str(chosen))


__all__ = [
    "AREAS_ENV",
    "DEFAULT_AREAS_FILE",
    "Area",
    "Areas",
    "AreasFileError",
    "Boundary",
    "OutsideAreasError",
    "load_areas",
    "parse_areas",
]
