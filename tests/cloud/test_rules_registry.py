"""Rules read worksites straight from the worksite registry (`worksites: registry:URL`)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from shapely.geometry import shape

from cloud.core.geo import ServiceAreas
from cloud.dev.demo_data import load_demo
from cloud.rules.engine import RulesFile, geography
from cloud.worksites.lookup import open_registry_lookup
from cloud.worksites.store import WorksiteStore


def test_an_approved_active_worksite_of_the_registry_is_found_near_its_own_location(tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    url = f"sqlite:///{tmp_path / 'worksites.db'}"
    store = WorksiteStore.open(url, areas=ServiceAreas.load())
    try:
        load_demo(store, now)
        active = [w for w in store.search() if w.start <= now < w.end and w.approval.value == "approved"]
    finally:
        store.close()
    assert active, "the demo registry has worksites under way"
    target = active[0]
    point = shape(target.geometry).representative_point()

    geo = geography(
        tmp_path / "rules.yaml", RulesFile(rules=[], worksites=f"registry:{url}"), open_registry_lookup
    )
    near = geo.worksites.active_near(point.y, point.x, 50, now)
    assert target.id in [w.id for w in near]
    assert next(w for w in near if w.id == target.id).is_planned
    assert geo.worksites.active_near(point.y, point.x, 50, datetime(2000, 1, 1, tzinfo=UTC)) == []
