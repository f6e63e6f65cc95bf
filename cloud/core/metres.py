"""Metres on the ground from WGS84 degrees: one local equirectangular projection for every
feature (worksites, sites, transit). Over a city or a metropolitan plain (tens of km) its scale
error is well under 1 %, far under a GPS fix or a street's width, and it needs no PROJ database.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry.base import BaseGeometry

EARTH_M_PER_DEG_LAT = 111_132.0  # mean metres per degree of latitude (WGS84, mid-latitudes)


class Box(Protocol):
    """A WGS84 bounding box (`cloud.core.geo.BBox`)."""

    @property
    def min_lon(self) -> float: ...
    @property
    def min_lat(self) -> float: ...
    @property
    def max_lon(self) -> float: ...
    @property
    def max_lat(self) -> float: ...


@dataclass(frozen=True, slots=True)
class LocalProjection:
    """Equirectangular metres around (`lon0`, `lat0`)."""

    lon0: float
    lat0: float

    @classmethod
    def around(cls, area: Box) -> LocalProjection:
        return cls((area.min_lon + area.max_lon) / 2, (area.min_lat + area.max_lat) / 2)

    def _forward(self, coords: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        kx = EARTH_M_PER_DEG_LAT * math.cos(math.radians(self.lat0))
        out = np.empty_like(coords)
        out[:, 0] = (coords[:, 0] - self.lon0) * kx
        out[:, 1] = (coords[:, 1] - self.lat0) * EARTH_M_PER_DEG_LAT
        return out

    def to_metres(self, geom: BaseGeometry) -> BaseGeometry:
        result: BaseGeometry = shapely.transform(geom, self._forward)
        return result

    def many_to_metres(self, geoms: list[BaseGeometry]) -> npt.NDArray[np.object_]:
        arr = np.asarray(geoms, dtype=object)
        result: npt.NDArray[np.object_] = shapely.transform(arr, self._forward)
        return result


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Metres between two points, in the local projection at their mean latitude."""
    kx = EARTH_M_PER_DEG_LAT * math.cos(math.radians((lat1 + lat2) / 2))
    return math.hypot((lon2 - lon1) * kx, (lat2 - lat1) * EARTH_M_PER_DEG_LAT)
