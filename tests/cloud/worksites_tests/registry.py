"""Shared pieces of the worksite tests: organisations, a valid payload, an API client helper."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from cloud.worksites.store import WorksiteStore

MUNICIPALITY = "comune-prato"
WATER = "publiacqua"
GAS = "toscana-energia"

# Via Pistoiese, west of the centre, (lon, lat): a real street, ~450 m.
PISTOIESE = {
    "type": "LineString",
    "coordinates": [[11.0795, 43.8854], [11.0820, 43.8851], [11.0848, 43.8847]],
}


def payload(**override: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "title": "Rifacimento condotta idrica",
        "street": "Via Pistoiese",
        "work_type": "water",
        "geometry": PISTOIESE,
        "planned_start": "2026-12-01T07:00:00Z",
        "planned_end": "2026-12-20T17:00:00Z",
    }
    base.update(override)
    return base


@dataclass
class Api:
    client: httpx.Client
    tokens: dict[str, str]
    store: WorksiteStore

    def as_(self, org: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[org]}"}

    def create(self, org: str, **override: Any) -> dict[str, Any]:
        response = self.client.post("/worksites", json=payload(**override), headers=self.as_(org))
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body
