"""WZDx 4.2 WorkZoneFeed export and import.

Each worksite is one `work-zone` RoadEventFeature. WZDx geometries are LineString or
MultiPoint only, so a Polygon travels as its exterior ring and a Point as a one-point
MultiPoint; the registry fields WZDx has no slot for (status, approval, permit, work type,
impact details, the original geometry) ride in a `sitroom` member of the feature's
properties, which the schema allows (no `additionalProperties: false`) and other consumers
ignore. Export is deterministic: features sorted by id, the feed's `update_date` is the newest
worksite change, so export → import → export gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import ValidationError

from cloud.core.errors import FieldProblem, problems_from
from cloud.core.geo import GeometryError, parse_geojson
from cloud.core.orgs import Organisation
from cloud.worksites.models import InvalidWorksiteError, Restriction, Status, Worksite, WorkType

VERSION = "4.2"
LICENSE = "https://creativecommons.org/publicdomain/zero/1.0/"
EXTENSION = "sitroom"

# WZDx 4.2 WorkTypeName for each of our work types.
_TYPE_OF_WORK = {
    WorkType.WATER: "below-road-work",
    WorkType.SEWER: "below-road-work",
    WorkType.GAS: "below-road-work",
    WorkType.ELECTRICITY: "below-road-work",
    WorkType.TELECOM: "below-road-work",
    WorkType.DISTRICT_HEATING: "below-road-work",
    WorkType.ROAD: "surface-work",
    WorkType.LIGHTING: "roadside-work",
    WorkType.WASTE: "roadside-work",
    WorkType.GREEN: "roadside-work",
    WorkType.OTHER: "maintenance",
}
_WORK_TYPE_BACK = {"below-road-work": WorkType.OTHER, "surface-work": WorkType.ROAD}


def format_date(value: datetime) -> str:
    """RFC 3339 section 5.6 UTC, as WZDx's examples (`2020-11-03T19:37:00Z`), milliseconds kept."""
    value = value.astimezone(UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond // 1000:03d}"
    return text + "Z"


def _parse_date(value: Any, field: str) -> datetime:
    if not isinstance(value, str):
        raise InvalidWorksiteError([FieldProblem(field, "must be an RFC 3339 date-time string", value)])
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidWorksiteError([FieldProblem(field, "not an RFC 3339 date-time", value)]) from None
    if parsed.tzinfo is None:
        raise InvalidWorksiteError([FieldProblem(field, "needs a UTC offset", value)])
    return parsed.astimezone(UTC)


def _vehicle_impact(ws: Worksite) -> str:
    if ws.impact.road_closed:
        return "all-lanes-closed"
    if ws.impact.lanes_closed > 0:
        return "some-lanes-closed"
    return "all-lanes-open"


def _wzdx_geometry(geometry: dict[str, Any]) -> dict[str, Any]:
    kind = geometry["type"]
    coords = geometry["coordinates"]
    if kind == "LineString":
        return geometry
    if kind == "Point":
        return {"type": "MultiPoint", "coordinates": [coords]}
    if kind == "MultiPoint":
        return geometry
    if kind == "Polygon":
        return {"type": "LineString", "coordinates": coords[0]}
    if kind == "MultiLineString":
        return {"type": "LineString", "coordinates": [p for line in coords for p in line]}
    # MultiPolygon: the convex hull's ring still marks where the works are.
    ring = parse_geojson(geometry).convex_hull.exterior  # type: ignore[attr-defined]
    return {"type": "LineString", "coordinates": [list(p) for p in ring.coords]}


def feature(ws: Worksite) -> dict[str, Any]:
    core: dict[str, Any] = {
        "event_type": "work-zone",
        "data_source_id": ws.owner,
        "road_names": [ws.street],
        "direction": "unknown",
        "name": ws.title,
        "description": ws.description,
        "creation_date": format_date(ws.created_at),
        "update_date": format_date(ws.updated_at),
    }
    wzdx_geometry = _wzdx_geometry(ws.geometry)
    extension: dict[str, Any] = {
        "status": ws.status.value,
        "approval": ws.approval.value,
        "approved_by": ws.approved_by,
        "work_type": ws.work_type.value,
        "permit_ref": ws.permit_ref,
        "planned_start": format_date(ws.planned_start),
        "planned_end": format_date(ws.planned_end),
        "actual_start": None if ws.actual_start is None else format_date(ws.actual_start),
        "actual_end": None if ws.actual_end is None else format_date(ws.actual_end),
        "impact": ws.impact.model_dump(mode="json"),
        "version": ws.version,
    }
    if wzdx_geometry != ws.geometry:
        extension["geometry"] = ws.geometry
    properties: dict[str, Any] = {
        "core_details": core,
        "start_date": format_date(ws.start),
        "end_date": format_date(ws.end),
        "is_start_date_verified": ws.actual_start is not None,
        "is_end_date_verified": ws.actual_end is not None,
        "is_start_position_verified": False,
        "is_end_position_verified": False,
        "location_method": "other",
        "vehicle_impact": _vehicle_impact(ws),
        "types_of_work": [
            {
                "type_name": _TYPE_OF_WORK[ws.work_type],
                "is_architectural_change": ws.work_type is WorkType.ROAD,
            }
        ],
        "restrictions": [{"type": r.value} for r in ws.impact.restrictions],
        "worker_presence": {"are_workers_present": ws.status is Status.ACTIVE, "method": "scheduled"},
        EXTENSION: extension,
    }
    return {"id": ws.id, "type": "Feature", "properties": properties, "geometry": wzdx_geometry}


def export_feed(
    sites: Sequence[Worksite], orgs: Sequence[Organisation], *, publisher: str = "Situation Room"
) -> dict[str, Any]:
    ordered = sorted(sites, key=lambda w: w.id)
    newest = max((w.updated_at for w in ordered), default=datetime(2020, 1, 1, tzinfo=UTC))
    used = {w.owner for w in ordered}
    sources = [
        {"data_source_id": o.id, "organization_name": o.name}
        for o in sorted(orgs, key=lambda o: o.id)
        if o.id in used
    ]
    if not sources:
        sources = [{"data_source_id": "sitroom", "organization_name": publisher}]
    return {
        "feed_info": {
            "publisher": publisher,
            "version": VERSION,
            "license": LICENSE,
            "update_date": format_date(newest),
            "update_frequency": 300,
            "data_sources": sources,
        },
        "type": "FeatureCollection",
        "features": [feature(w) for w in ordered],
    }


def dumps(feed: dict[str, Any]) -> bytes:
    return orjson.dumps(feed, option=orjson.OPT_INDENT_2)


def _field(obj: Any, path: str) -> Any:
    if not isinstance(obj, dict):
        raise InvalidWorksiteError([FieldProblem("", "must be a GeoJSON Feature object")])
    cur = obj
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            raise InvalidWorksiteError([FieldProblem(path, "missing")])
        cur = cur[part]
    return cur


def _work_type(props: dict[str, Any]) -> WorkType:
    for item in props.get("types_of_work") or []:
        if isinstance(item, dict) and item.get("type_name") in _WORK_TYPE_BACK:
            return _WORK_TYPE_BACK[item["type_name"]]
    return WorkType.OTHER


def _import_feature(index: int, feat: Any, now: datetime) -> Worksite:
    prefix = f"features[{index}]."
    try:
        props = _field(feat, "properties")
        core = _field(feat, "properties.core_details")
        ext = props.get(EXTENSION) if isinstance(props.get(EXTENSION), dict) else {}
        geometry = ext.get("geometry") or _field(feat, "geometry")
        if (
            isinstance(geometry, dict)
            and geometry.get("type") == "MultiPoint"
            and len(geometry["coordinates"]) == 1
        ):
            geometry = {"type": "Point", "coordinates": geometry["coordinates"][0]}
        try:
            parse_geojson(geometry)
        except GeometryError as exc:
            raise InvalidWorksiteError([FieldProblem("geometry", exc.reason)]) from None
        road_names = core.get("road_names") or ["(unnamed road)"]
        start = _parse_date(props.get("start_date"), "properties.start_date")
        end = _parse_date(props.get("end_date"), "properties.end_date")
        impact = ext.get("impact") or {
            "road_closed": props.get("vehicle_impact") == "all-lanes-closed",
            "lanes_closed": 1 if str(props.get("vehicle_impact", "")).startswith("some-lanes-closed") else 0,
            "restrictions": [
                r["type"]
                for r in props.get("restrictions") or []
                if isinstance(r, dict) and r.get("type") in set(Restriction)
            ],
        }
        data: dict[str, Any] = {
            "id": feat.get("id"),
            "owner": core.get("data_source_id"),
            "title": core.get("name") or " / ".join(road_names),
            "description": core.get("description", ""),
            "street": ", ".join(str(r) for r in road_names),
            "work_type": ext.get("work_type") or _work_type(props),
            "permit_ref": ext.get("permit_ref"),
            "geometry": geometry,
            "planned_start": ext.get("planned_start") or start,
            "planned_end": ext.get("planned_end") or end,
            "actual_start": ext.get("actual_start")
            or (start if props.get("is_start_date_verified") else None),
            "actual_end": ext.get("actual_end") or (end if props.get("is_end_date_verified") else None),
            "status": ext.get("status") or Status.PLANNED.value,
            "impact": impact,
            "approval": ext.get("approval") or "pending",
            "approved_by": ext.get("approved_by"),
            "created_at": core.get("creation_date") or now,
            "updated_at": core.get("update_date") or now,
            "version": ext.get("version") or 1,
        }
        try:
            return Worksite.model_validate(data)
        except ValidationError as exc:
            raise InvalidWorksiteError(problems_from(exc)) from None
    except InvalidWorksiteError as exc:
        raise InvalidWorksiteError(
            [FieldProblem(prefix + p.field, p.message, p.value) for p in exc.problems]
        ) from None


def import_feed(feed: Any, *, now: datetime | None = None) -> list[Worksite]:
    """Worksites from a WZDx 4.x WorkZoneFeed; every problem found is reported with its path."""
    now = now or datetime.now(UTC)
    if not isinstance(feed, dict) or feed.get("type") != "FeatureCollection":
        raise InvalidWorksiteError([FieldProblem("type", "a WZDx feed is a GeoJSON FeatureCollection")])
    features = feed.get("features")
    if not isinstance(features, list):
        raise InvalidWorksiteError([FieldProblem("features", "must be a list")])
    sites: list[Worksite] = []
    problems: list[FieldProblem] = []
    for i, feat in enumerate(features):
        if isinstance(feat, dict) and isinstance(feat.get("properties"), dict):
            event_type = feat["properties"].get("core_details", {}).get("event_type")
            if event_type not in (None, "work-zone"):
                continue  # detours and restrictions are not worksites
        try:
            sites.append(_import_feature(i, feat, now))
        except InvalidWorksiteError as exc:
            problems.extend(exc.problems)
    if problems:
        raise InvalidWorksiteError(problems)
    return sites
