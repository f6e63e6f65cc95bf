"""WZDx 4.2: the demo export validates against the official WZDx 4.2 schema; export → import → export."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from cloud.core.geo import ServiceAreas
from cloud.core.orgs import Caller, Role
from cloud.dev.demo_data import MUNICIPALITY, demo_worksites, load_demo
from cloud.worksites import wzdx
from cloud.worksites.models import InvalidWorksiteError
from cloud.worksites.store import Query, WorksiteStore

from support import REPO

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
OPERATOR = Caller(MUNICIPALITY, Role.MUNICIPALITY)
WORK_ZONE_FEED = "https://raw.githubusercontent.com/usdot-jpo-ode/wzdx/main/schemas/4.2/WorkZoneFeed.json"


def _standards() -> Path:
    """`../shared/standards` beside the repository (README there); from a git worktree
    (/work/wt/<name>) the same folder is one level further up."""
    for parent in REPO.parents:
        candidate = parent / "shared" / "standards"
        if (candidate / "wzdx-4.2" / "WorkZoneFeed.json").is_file():
            return candidate
    raise AssertionError(f"no shared/standards/wzdx-4.2 above {REPO}: the official WZDx 4.2 schemas")


def _validator() -> jsonschema.Draft7Validator:
    """The official WZDx 4.2 WorkZoneFeed schema. Every file (WZDx's and the GeoJSON schemas
    it refers to) is registered by its `$id`, so no `$ref` is ever fetched."""
    standards = _standards()
    files = sorted((standards / "wzdx-4.2").glob("*.json")) + sorted((standards / "geojson").glob("*.json"))
    schemas = [json.loads(f.read_text(encoding="utf-8")) for f in files]
    registry: Registry = Registry().with_resources(
        (s["$id"], Resource.from_contents(s, default_specification=DRAFT7)) for s in schemas
    )
    root = registry.contents(WORK_ZONE_FEED)
    jsonschema.Draft7Validator.check_schema(root)
    return jsonschema.Draft7Validator(
        root, registry=registry, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER
    )


VALIDATOR = _validator()


def _errors(feed: dict[str, Any]) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in VALIDATOR.iter_errors(feed)]


def _leaf_paths(errors: Iterable[jsonschema.ValidationError]) -> set[str]:
    """Where the errors are, looking inside `oneOf`/`anyOf` (the official schema's work zone
    or detour), whose own error only says that no branch matched."""
    out: set[str] = set()
    for e in errors:
        if e.context:
            out |= _leaf_paths(e.context)
        else:
            out.add("/".join(map(str, e.absolute_path)))
    return out


@pytest.fixture
def demo_store(store: WorksiteStore) -> WorksiteStore:
    load_demo(store, NOW)
    return store


def _export(store: WorksiteStore) -> dict[str, Any]:
    return wzdx.export_feed(store.search(Query(limit=10**6)), store.organisations())


def test_the_schema_is_the_official_wzdx_one_and_the_tests_keep_no_copy_of_it() -> None:
    assert VALIDATOR.schema["$id"] == WORK_ZONE_FEED
    assert VALIDATOR.schema["title"] == "WZDx v4.2 Work Zone Feed"
    assert not (REPO / "tests" / "data" / "wzdx").exists()


def test_date_format_checking_is_switched_on_in_the_schema_check() -> None:
    assert "date-time" in VALIDATOR.format_checker.checkers  # type: ignore[union-attr]
    assert not VALIDATOR.format_checker.conforms("2026-13-45T25:00:00Z", "date-time")  # type: ignore[union-attr]
    assert not VALIDATOR.format_checker.conforms("2026-12-01 07:00", "date-time")  # type: ignore[union-attr]


def test_the_wzdx_export_of_the_demo_data_validates_against_the_wzdx_schema(
    demo_store: WorksiteStore,
) -> None:
    feed = _export(demo_store)
    assert len(feed["features"]) == len(demo_worksites(NOW))
    assert _errors(feed) == []
    geometries = {f["geometry"]["type"] for f in feed["features"]}
    assert geometries == {"LineString", "MultiPoint"}


def test_the_schema_check_catches_a_broken_feed() -> None:
    feed = {
        "feed_info": {
            "publisher": "x",
            "version": "4.2",
            "update_date": "2026-11-24T12:00:00Z",
            "data_sources": [],
        },
        "type": "FeatureCollection",
        "features": [],
    }
    assert any("data_sources" in e for e in _errors(feed))
    feed["feed_info"] = {
        **feed["feed_info"],
        "data_sources": [{"data_source_id": "a", "organization_name": "A"}],
    }
    assert _errors(feed) == []
    feed["feed_info"]["update_date"] = "24/11/2026"
    assert any("date-time" in e for e in _errors(feed))


def _small_feed() -> dict[str, Any]:
    """A minimal valid WZDx 4.2 feed with one work zone, for breaking one thing at a time."""
    return {
        "feed_info": {
            "publisher": "Comune di Prato",
            "version": "4.2",
            "update_date": "2026-11-24T12:00:00Z",
            "data_sources": [{"data_source_id": "prato", "organization_name": "Comune di Prato"}],
        },
        "type": "FeatureCollection",
        "features": [
            {
                "id": "wz-1",
                "type": "Feature",
                "properties": {
                    "core_details": {
                        "event_type": "work-zone",
                        "data_source_id": "prato",
                        "road_names": ["Via Roma"],
                        "direction": "unknown",
                        "update_date": "2026-11-24T11:00:00Z",
                    },
                    "start_date": "2026-12-01T07:00:00Z",
                    "end_date": "2026-12-05T17:00:00Z",
                    "is_start_date_verified": False,
                    "is_end_date_verified": False,
                    "is_start_position_verified": False,
                    "is_end_position_verified": False,
                    "location_method": "other",
                    "vehicle_impact": "all-lanes-open",
                },
                "geometry": {"type": "MultiPoint", "coordinates": [[11.0958, 43.8885]]},
            }
        ],
    }


def _props(feed: dict[str, Any]) -> dict[str, Any]:
    props: dict[str, Any] = feed["features"][0]["properties"]
    return props


def _core(feed: dict[str, Any]) -> dict[str, Any]:
    core: dict[str, Any] = _props(feed)["core_details"]
    return core


CORE = "features/0/properties/core_details"
POLYGON = {"type": "Polygon", "coordinates": [[[11.09, 43.88], [11.1, 43.88], [11.1, 43.89], [11.09, 43.88]]]}
# Each: how to break the small feed, and where (JSON path of the error) the schema must object.
WRONG_FEEDS: dict[str, tuple[Callable[[dict[str, Any]], object], str]] = {
    "no feed_info": (lambda f: f.pop("feed_info"), ""),
    "event_type not a WorkZoneFeed type": (
        lambda f: _core(f).update(event_type="restriction"),
        f"{CORE}/event_type",
    ),
    "event_type made up": (lambda f: _core(f).update(event_type="roadworks"), f"{CORE}/event_type"),
    "direction not in the enum": (lambda f: _core(f).update(direction="north"), f"{CORE}/direction"),
    "feed update_date not a date-time": (
        lambda f: f["feed_info"].update(update_date="24/11/2026 12:00"),
        "feed_info/update_date",
    ),
    "event update_date not a date-time": (
        lambda f: _core(f).update(update_date="2026-11-24"),
        f"{CORE}/update_date",
    ),
    "start_date impossible": (
        lambda f: _props(f).update(start_date="2026-13-01T07:00:00Z"),
        "features/0/properties/start_date",
    ),
    "vehicle_impact missing": (lambda f: _props(f).pop("vehicle_impact"), "features/0/properties"),
    "start position not marked verified or not": (
        lambda f: _props(f).pop("is_start_position_verified"),
        "features/0/properties",
    ),
    "license not CC0": (lambda f: f["feed_info"].update(license="MIT"), "feed_info/license"),
    "Polygon geometry": (lambda f: f["features"][0].update(geometry=POLYGON), "features/0/geometry/type"),
}


def test_the_small_feed_is_valid_so_each_wrong_feed_fails_for_its_own_reason() -> None:
    assert _errors(_small_feed()) == []


@pytest.mark.parametrize(("break_it", "where"), WRONG_FEEDS.values(), ids=WRONG_FEEDS.keys())
def test_the_schema_rejects_a_wrong_feed(break_it: Callable[[dict[str, Any]], object], where: str) -> None:
    feed = _small_feed()
    break_it(feed)
    assert _errors(feed), "the schema accepted a wrong feed"
    assert where in _leaf_paths(VALIDATOR.iter_errors(feed))


def _registry_stamps_removed(feed: dict[str, Any]) -> dict[str, Any]:
    """The feed without what each registry stamps itself: versions and change dates."""
    out = copy.deepcopy(feed)
    del out["feed_info"]["update_date"]
    for f in out["features"]:
        del f["properties"]["sitroom"]["version"]
        for stamp in ("creation_date", "update_date"):
            del f["properties"]["core_details"][stamp]
    return out


def test_an_export_imported_into_another_registry_keeps_every_worksite_and_importing_again_changes_nothing(
    demo_store: WorksiteStore, tmp_path: Path
) -> None:
    first = _export(demo_store)
    other = WorksiteStore.open(f"sqlite:///{tmp_path / 'other.db'}", areas=ServiceAreas.load())
    try:
        for org in demo_store.organisations():
            other.orgs.add(org)
        created, updated = other.import_many(
            OPERATOR, wzdx.import_feed(copy.deepcopy(first), areas=ServiceAreas.load())
        )
        assert (created, updated) == (len(demo_worksites(NOW)), 0)
        second = _export(other)
        # Every field, the municipality's approvals included; versions and dates are the new
        # registry's own (issue 18 point 1: an import follows the API's version rules).
        assert _registry_stamps_removed(second) == _registry_stamps_removed(first)
        assert other.import_many(OPERATOR, wzdx.import_feed(copy.deepcopy(second))) == (0, 0)
        assert wzdx.dumps(_export(other)) == wzdx.dumps(second)
    finally:
        other.close()


def test_a_foreign_wzdx_feed_without_our_extension_imports(store: WorksiteStore) -> None:
    feed = {
        "feed_info": {"publisher": "Other", "version": "4.2", "update_date": "2026-11-24T12:00:00Z",
                      "data_sources": [{"data_source_id": "publiacqua", "organization_name": "Publiacqua"}]},
        "type": "FeatureCollection",
        "features": [
            {
                "id": "ext-1",
                "type": "Feature",
                "properties": {
                    "core_details": {"event_type": "work-zone", "data_source_id": "publiacqua",
                                     "road_names": ["Via Bologna"], "direction": "northbound"},
                    "start_date": "2026-12-01T07:00:00Z",
                    "end_date": "2026-12-05T17:00:00Z",
                    "is_start_date_verified": False,
                    "is_end_date_verified": False,
                    "is_start_position_verified": False,
                    "is_end_position_verified": False,
                    "vehicle_impact": "all-lanes-closed",
                    "location_method": "other",
                    "types_of_work": [{"type_name": "below-road-work"}],
                },
                "geometry": {"type": "LineString", "coordinates": [[11.0958, 43.8885], [11.0962, 43.8910]]},
            },
            {
                "id": "det-1",
                "type": "Feature",
                "properties": {"core_details": {"event_type": "detour"}},
                "geometry": {"type": "LineString", "coordinates": [[11.0958, 43.8885], [11.0962, 43.8910]]},
            },
        ],
    }  # fmt: skip
    assert _errors({**feed, "features": feed["features"][:1]}) == []  # the work zone is valid WZDx
    sites = wzdx.import_feed(feed)
    assert [(w.id, w.owner, w.street, w.impact.road_closed, w.status.value) for w in sites] == [
        ("ext-1", "publiacqua", "Via Bologna", True, "planned")
    ]
    assert store.import_many(OPERATOR, sites) == (1, 0)


def test_an_import_with_bad_features_names_each_path_and_changes_nothing(demo_store: WorksiteStore) -> None:
    feed = _export(demo_store)
    before = wzdx.dumps(_export(demo_store))
    feed["features"][0]["properties"]["start_date"] = "yesterday"
    feed["features"][0]["properties"]["sitroom"]["planned_start"] = "yesterday"
    swapped = {"type": "Point", "coordinates": [43.88, 11.09]}  # [lat, lon]: valid, but not Prato
    feed["features"][2]["properties"]["sitroom"]["geometry"] = swapped
    feed["features"][3]["properties"]["sitroom"]["planned_end"] = "2020-01-01T00:00:00Z"
    with pytest.raises(InvalidWorksiteError) as caught:
        demo_store.import_many(OPERATOR, wzdx.import_feed(feed, areas=ServiceAreas.load()))
    assert [p.field for p in caught.value.problems] == [
        "features[0].properties.start_date",
        "features[2].properties.sitroom.geometry",
        "features[3].properties.sitroom.planned_end",
    ]
    assert "outside every configured area" in caught.value.problems[1].message
    # Read without the area, the store itself still refuses the batch whole.
    feed2 = _export(demo_store)
    feed2["features"][5]["properties"]["sitroom"]["geometry"] = swapped
    with pytest.raises(InvalidWorksiteError) as caught2:
        demo_store.import_many(OPERATOR, wzdx.import_feed(feed2))
    assert caught2.value.problems[0].field == "geometry"
    assert wzdx.dumps(_export(demo_store)) == before
