"""`/feeds/sites.geojson`: where the sensors are, for map layers (Grafana Geomap gazetteer, console).

InfluxDB holds what the sensors measure, not where they stand; Grafana's Geomap joins a table
query's `sensor` column to this feed's feature ids ("lookup" location mode). The places come
from the app's `core.geo.SiteSource` (`app.state.sites`): the installation file's sites, and
where the wiring adds them, the places partners' entities gave (a neighbour's car parks).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request, Response

from cloud.core.geo import Site, SiteSource

sites_feed = APIRouter(prefix="/feeds", tags=["feeds"])


def sites_geojson(sites: Mapping[str, Site]) -> dict[str, Any]:
    features = []
    for sensor, site in sorted(sites.items()):
        properties: dict[str, Any] = {"id": sensor, "name": site.name or sensor}
        if site.capacity is not None:
            properties["capacity"] = site.capacity
        if site.park_and_ride:
            properties["park_and_ride"] = True
        features.append(
            {
                "type": "Feature",
                "id": sensor,
                "geometry": {"type": "Point", "coordinates": [site.lon, site.lat]},
                "properties": properties,
            }
        )
    return {"type": "FeatureCollection", "features": features}


@sites_feed.get("/sites.geojson", summary="Sensor sites (car parks, traffic counters) as GeoJSON points")
def get_sites(request: Request, response: Response) -> dict[str, Any]:
    # Sites change with installations and partners, not by the second: let browsers and Grafana
    # cache briefly.
    response.headers["Cache-Control"] = "public, max-age=60"
    source: SiteSource = request.app.state.sites
    return sites_geojson(source.sites())
