"""Worksites as GeoJSON Features with flat properties, for maps (Grafana's Geomap, the console)."""

from __future__ import annotations

from typing import Any

from cloud.core.geo import parse_geojson
from cloud.worksites import wzdx
from cloud.worksites.models import Worksite


def geojson_feature(ws: Worksite) -> dict[str, Any]:
    """A flat-properties Feature: Grafana's Geomap styles and labels by top-level properties."""
    centroid = parse_geojson(ws.geometry).centroid
    impact = ws.impact
    return {
        "type": "Feature",
        "id": ws.id,
        "geometry": ws.geometry,
        "properties": {
            "id": ws.id,
            "title": ws.title,
            "owner": ws.owner,
            "street": ws.street,
            "work_type": ws.work_type.value,
            "status": ws.status.value,
            "approval": ws.approval.value,
            "start": wzdx.format_date(ws.start),
            "end": wzdx.format_date(ws.end),
            "road_closed": impact.road_closed,
            "lanes_closed": impact.lanes_closed,
            "parking_spaces_removed": impact.parking_spaces_removed,
            "bus_lines": ",".join(impact.bus_lines),
            "detour": impact.detour or "",
            "lat": round(centroid.y, 6),
            "lon": round(centroid.x, 6),
        },
    }


def feature_collection(sites: list[Worksite], **meta: Any) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": [geojson_feature(w) for w in sites], **meta}
