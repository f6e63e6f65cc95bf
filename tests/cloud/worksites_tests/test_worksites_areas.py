"""Worksites lie in the configured areas (edge/contract/areas.py), and in their owner's areas."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from cloud.core.geo import ServiceAreas
from cloud.core.orgs import Caller, Organisation, Role
from cloud.io.db import MIGRATIONS_TABLE
from cloud.io.orgstore import OrgStore
from cloud.worksites.models import InvalidWorksiteError, WorksiteCreate
from cloud.worksites.store import WorksiteStore

from support import REPO

METRO = REPO / "deploy" / "areas" / "prato-florence.yaml"
NOW = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
# Viale XI Agosto towards Sesto Fiorentino, in the Florence plain.
FLORENCE = {"type": "LineString", "coordinates": [[11.2150, 43.8040], [11.2208, 43.8062]]}
PRATO = {"type": "LineString", "coordinates": [[11.0960, 43.8810], [11.0990, 43.8815]]}


def worksite(ws_id: str, geometry: dict[str, Any], owner: str = "publiacqua") -> WorksiteCreate:
    return WorksiteCreate.model_validate(
        {
            "id": ws_id,
            "owner": owner,
            "title": "Condotta idrica",
            "street": "Via di prova",
            "work_type": "water",
            "planned_start": NOW + timedelta(days=2),
            "planned_end": NOW + timedelta(days=9),
            "geometry": geometry,
        }
    )


def registry(tmp_path: Path, areas: ServiceAreas, *orgs: Organisation) -> WorksiteStore:
    store = WorksiteStore.open(f"sqlite:///{tmp_path / 'ws.db'}", areas=areas)
    for org in orgs or (Organisation(id="publiacqua", name="Publiacqua", role=Role.UTILITY),):
        store.orgs.add(org)
    return store


def test_a_florence_worksite_is_accepted_when_the_florence_area_is_configured(tmp_path: Path) -> None:
    store = registry(tmp_path, ServiceAreas.load(METRO))

    created = store.create(Caller("publiacqua", Role.UTILITY), worksite("ws-sesto", FLORENCE), now=NOW)

    assert created.geometry == FLORENCE


def test_a_florence_worksite_is_refused_when_only_prato_is_configured_naming_the_areas(
    tmp_path: Path,
) -> None:
    store = registry(tmp_path, ServiceAreas.load())

    with pytest.raises(InvalidWorksiteError) as refused:
        store.create(Caller("publiacqua", Role.UTILITY), worksite("ws-sesto", FLORENCE), now=NOW)

    [problem] = refused.value.problems
    assert problem.field == "geometry"
    assert "outside every configured area (prato (Prato: lon 10.98..11.18" in problem.message
    assert store.search() == []


def test_a_worksite_across_the_border_of_two_configured_areas_is_accepted(tmp_path: Path) -> None:
    # From Prato's Interporto into Calenzano: roadworks do not stop at a municipal boundary.
    across = {"type": "LineString", "coordinates": [[11.150, 43.850], [11.175, 43.862]]}
    store = registry(tmp_path, ServiceAreas.load(METRO))

    store.create(Caller("publiacqua", Role.UTILITY), worksite("ws-border", across), now=NOW)

    assert [w.id for w in store.search()] == ["ws-border"]


def test_an_organisation_of_prato_alone_may_not_register_a_worksite_in_florence(tmp_path: Path) -> None:
    local = Organisation(id="consiag", name="Consiag", role=Role.UTILITY, areas=("prato",))
    store = registry(tmp_path, ServiceAreas.load(METRO), local)

    store.create(Caller("consiag", Role.UTILITY), worksite("ws-prato", PRATO, "consiag"), now=NOW)
    with pytest.raises(InvalidWorksiteError) as refused:
        store.create(Caller("consiag", Role.UTILITY), worksite("ws-sesto", FLORENCE, "consiag"), now=NOW)

    [problem] = refused.value.problems
    assert (problem.field, problem.message) == (
        "geometry",
        "lies in piana-fiorentina, outside the areas of consiag (prato)",
    )


def test_moving_a_worksite_out_of_its_owners_areas_is_refused(tmp_path: Path) -> None:
    local = Organisation(id="consiag", name="Consiag", role=Role.UTILITY, areas=("prato",))
    store = registry(tmp_path, ServiceAreas.load(METRO), local)
    created = store.create(Caller("consiag", Role.UTILITY), worksite("ws-prato", PRATO, "consiag"), now=NOW)

    with pytest.raises(InvalidWorksiteError, match="outside the areas of consiag"):
        store.update(Caller("consiag", Role.UTILITY), created.id, {"geometry": FLORENCE})

    assert store.get(created.id).geometry == PRATO


def test_the_organisation_registry_keeps_each_organisations_areas_home_area_first(tmp_path: Path) -> None:
    orgs = OrgStore.open(f"sqlite:///{tmp_path / 'orgs.db'}")
    orgs.add(
        Organisation(
            id="publiacqua", name="Publiacqua", role=Role.UTILITY, areas=("piana-fiorentina", "prato")
        )
    )
    orgs.add(
        Organisation(id="comune-prato", name="Comune di Prato", role=Role.MUNICIPALITY, areas=("prato",))
    )
    orgs.add(Organisation(id="open-fiber", name="Open Fiber", role=Role.UTILITY))

    assert orgs.organisation("publiacqua").areas == ("piana-fiorentina", "prato")
    assert {o.id: o.areas for o in orgs.organisations()}["open-fiber"] == ()
    assert orgs.in_areas(["prato"]) == ["comune-prato"]
    assert orgs.in_areas(["piana-fiorentina", "prato"]) == ["comune-prato", "publiacqua"]

    orgs.add(Organisation(id="publiacqua", name="Publiacqua", role=Role.UTILITY, areas=("prato",)))
    assert orgs.organisation("publiacqua").areas == ("prato",)


def test_a_registry_created_before_areas_migrates_and_keeps_its_organisations(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = OrgStore.open(url)
    old.add(Organisation(id="alia", name="Alia", role=Role.UTILITY))
    with old.engine.begin() as conn:  # as version 1 left it
        conn.execute(sa.text("DROP TABLE ws_organisation_areas"))
        conn.execute(sa.text(f"DELETE FROM {MIGRATIONS_TABLE} WHERE component = 'orgs' AND version = 2"))

    assert old.migrate() == [2]
    assert old.organisation("alia") == Organisation(id="alia", name="Alia", role=Role.UTILITY)
    old.add(Organisation(id="alia", name="Alia", role=Role.UTILITY, areas=("prato",)))
    assert old.organisation("alia").areas == ("prato",)
