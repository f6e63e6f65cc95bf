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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    ValidationError,
)

from cloud.core.errors import FieldProblem, problems_from
from cloud.core.geo import GeometryError, ServiceAreas, parse_geojson
from cloud.core.orgs import Organisation
from cloud.core.worksites import WorkType
from cloud.worksites.models import (
    InvalidWorksiteError,
    Restriction,
    Status,
    Worksite,
    WorksiteImport,
)

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


# --- import ---------------------------------------------------------------------------------
#
# A feed is read in two steps, each naming any problem by its place in the feed
# (`features[2].properties.core_details.road_names.0`): first the members we read are checked
# for their JSON type (the models below; any other member is allowed, as WZDx allows them), then
# the worksite they make is validated by the same model as the API's (`WorksiteImport`), its
# problems traced back to the member each field came from.


class _Member(BaseModel):
    """A WZDx object as we read it: the members we use, typed; any other one allowed."""

    model_config = ConfigDict(extra="allow")


class _CoreDetails(_Member):
    event_type: StrictStr | None = None
    data_source_id: Any = None  # the owner: checked as the API checks an owner
    road_names: list[StrictStr] | None = Field(default=None, max_length=100)
    name: StrictStr | None = None
    description: StrictStr | None = None


class _Restriction(_Member):
    type: Any = None


class _TypeOfWork(_Member):
    type_name: Any = None


class _Extension(BaseModel):
    """Our own `sitroom` member: every value is checked by the worksite model."""

    model_config = ConfigDict(extra="forbid")

    status: Any = None
    approval: Any = None
    approved_by: Any = None  # the registry's record, never taken from a file
    work_type: Any = None
    permit_ref: Any = None
    planned_start: Any = None
    planned_end: Any = None
    actual_start: Any = None
    actual_end: Any = None
    impact: Any = None
    version: Any = None
    geometry: Any = None


def _text_only(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 date-time string")  # not a number of seconds
    return value


DateTimeText = Annotated[AwareDatetime, BeforeValidator(_text_only)]


class _Properties(_Member):
    core_details: _CoreDetails
    start_date: DateTimeText | None = None
    end_date: DateTimeText | None = None
    is_start_date_verified: StrictBool | None = None
    is_end_date_verified: StrictBool | None = None
    vehicle_impact: StrictStr | None = None
    restrictions: list[_Restriction] | None = Field(default=None, max_length=100)
    types_of_work: list[_TypeOfWork] | None = Field(default=None, max_length=100)
    sitroom: _Extension | None = None


class _Feature(_Member):
    id: Any = None
    properties: _Properties
    geometry: Any = None


def _at(prefix: str, loc: str) -> str:
    return f"{prefix}.{loc}" if loc else prefix


def _event_type(feat: Any) -> Any:
    props = feat.get("properties") if isinstance(feat, dict) else None
    core = props.get("core_details") if isinstance(props, dict) else None
    return core.get("event_type") if isinstance(core, dict) else None


def _work_type(props: _Properties) -> WorkType:
    for item in props.types_of_work or []:
        if isinstance(item.type_name, str) and item.type_name in _WORK_TYPE_BACK:
            return _WORK_TYPE_BACK[item.type_name]
    return WorkType.OTHER


_RESTRICTIONS = frozenset(Restriction)


def _impact(props: _Properties) -> dict[str, Any]:
    vehicle = props.vehicle_impact or ""
    return {
        "road_closed": vehicle == "all-lanes-closed",
        "lanes_closed": 1 if vehicle.startswith("some-lanes-closed") else 0,
        "restrictions": [
            r.type for r in props.restrictions or [] if isinstance(r.type, str) and r.type in _RESTRICTIONS
        ],
    }


def _one_point(geometry: Any) -> Any:
    """A one-point MultiPoint is how a Point travels in WZDx (`_wzdx_geometry`): back to a Point."""
    if isinstance(geometry, dict) and geometry.get("type") == "MultiPoint":
        coords = geometry.get("coordinates")
        if isinstance(coords, list) and len(coords) == 1:
            return {**geometry, "type": "Point", "coordinates": coords[0]}
    return geometry


@dataclass(slots=True)
class _Fields:
    """The worksite's fields read from one feature, and where in the feature each was read."""

    ext: _Extension
    data: dict[str, Any] = field(default_factory=dict)
    source: dict[str, str] = field(default_factory=dict)

    def take(self, name: str, value: Any, where: str) -> None:
        if value is not None:
            self.data[name] = value
            self.source[name] = where

    def take_ext(self, name: str, fallback: Any = None, where: str = "") -> None:
        """Our extension's value when it has one (exact), else what WZDx itself says."""
        value = getattr(self.ext, name)
        if value is not None:
            self.take(name, value, f"properties.{EXTENSION}.{name}")
        else:
            self.take(name, fallback, where)

    def traced(self, prefix: str, problems: list[FieldProblem]) -> InvalidWorksiteError:
        out = []
        for p in problems:
            top, _, rest = p.field.partition(".")
            where = self.source.get(top, top)
            out.append(FieldProblem(_at(prefix, f"{where}.{rest}" if rest else where), p.message, p.value))
        return InvalidWorksiteError(out)


def _fields(parsed: _Feature) -> _Fields:
    props, core = parsed.properties, parsed.properties.core_details
    f = _Fields(props.sitroom or _Extension())
    road_names = core.road_names or ["(unnamed road)"]
    f.take("id", parsed.id, "id")
    f.take("owner", core.data_source_id, "properties.core_details.data_source_id")
    if core.name:
        f.take("title", core.name, "properties.core_details.name")
    else:
        f.take("title", " / ".join(road_names), "properties.core_details.road_names")
    f.take("description", core.description, "properties.core_details.description")
    f.take("street", ", ".join(road_names), "properties.core_details.road_names")
    f.take_ext("work_type", _work_type(props), "properties.types_of_work")
    f.take_ext("permit_ref")
    f.take_ext("geometry", parsed.geometry, "geometry")
    if "geometry" in f.data:
        f.data["geometry"] = _one_point(f.data["geometry"])
    f.take_ext("planned_start", props.start_date, "properties.start_date")
    f.take_ext("planned_end", props.end_date, "properties.end_date")
    f.take_ext(
        "actual_start", props.start_date if props.is_start_date_verified else None, "properties.start_date"
    )
    f.take_ext("actual_end", props.end_date if props.is_end_date_verified else None, "properties.end_date")
    f.take_ext("status")
    f.take_ext("impact", _impact(props), "properties.vehicle_impact")
    f.take_ext("approval")
    f.take_ext("version")
    return f


def _import_feature(prefix: str, feat: Any, areas: ServiceAreas | None) -> WorksiteImport:
    try:
        parsed = _Feature.model_validate(feat)
    except ValidationError as exc:
        raise InvalidWorksiteError(
            [
                FieldProblem(_at(prefix, p.field.removeprefix("body")), p.message, p.value)
                for p in problems_from(exc)
            ]
        ) from None
    fields = _fields(parsed)
    try:
        item = WorksiteImport.model_validate(fields.data)
    except ValidationError as exc:
        raise fields.traced(prefix, problems_from(exc)) from None
    if areas is not None:
        try:
            areas.check(parse_geojson(item.geometry))
        except GeometryError as exc:
            raise fields.traced(prefix, [FieldProblem("geometry", exc.reason)]) from None
    return item


def import_feed(feed: Any, *, areas: ServiceAreas | None = None) -> list[WorksiteImport]:
    """The work zones of a WZDx 4.x WorkZoneFeed, validated as the API validates a worksite
    (and, given `areas`, inside one of them); every problem found is reported with its place in the feed.
    Detours and other road events are not worksites and are passed over."""
    if not isinstance(feed, dict) or feed.get("type") != "FeatureCollection":
        raise InvalidWorksiteError([FieldProblem("type", "a WZDx feed is a GeoJSON FeatureCollection")])
    features = feed.get("features")
    if not isinstance(features, list):
        raise InvalidWorksiteError([FieldProblem("features", "must be a list")])
    sites: list[WorksiteImport] = []
    problems: list[FieldProblem] = []
    for i, feat in enumerate(features):
        event_type = _event_type(feat)
        if isinstance(event_type, str) and event_type != "work-zone":
            continue  # detours and restrictions are not worksites
        try:
            sites.append(_import_feature(f"features[{i}]", feat, areas))
        except InvalidWorksiteError as exc:
            problems.extend(exc.problems)
    if problems:
        raise InvalidWorksiteError(problems)
    return sites
