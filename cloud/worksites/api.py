"""The worksite registry's HTTP API (FastAPI router): CRUD, approval, history, coordination, feeds.

Authenticated routes take an organisation's bearer token. Every authenticated organisation
reads every worksite (coordination needs it); a utility writes only its own; the
municipality's operators write and approve all. The feeds under `/feeds` are public and
CORS-enabled, for Grafana's Geomap and for the open-data portal.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Path, Response, status
from fastapi import Query as QueryParam
from pydantic import BaseModel, ValidationError

from cloud.core.errors import FieldProblem, message_of, printable, problems_from
from cloud.core.orgs import ID_PATTERN, Organisation
from cloud.core.transit import DEFAULT_WITHIN_M
from cloud.io.http import CallerDep, refusals
from cloud.worksites import conflicts, wzdx
from cloud.worksites.deps import CoordinationDep, QueryDep, StoreDep, TransitDep
from cloud.worksites.geojson import feature_collection
from cloud.worksites.models import (
    HistoryEntry,
    InvalidWorksiteError,
    Status,
    Worksite,
    WorksiteCreate,
    WorksitePatch,
)
from cloud.worksites.store import Query

router = APIRouter(tags=["worksites"])
feeds = APIRouter(prefix="/feeds", tags=["feeds"])

WorksiteId = Annotated[str, Path(pattern=ID_PATTERN, description="Worksite id")]
PLANNED_HORIZON = timedelta(days=30)
FEED_LIMIT = 100_000  # a city's feed is every worksite that matches, not a first page
LIVE_STATUSES = (Status.ACTIVE, Status.PLANNED)


class WorksiteList(BaseModel):
    count: int
    items: list[Worksite]


class ImportResult(BaseModel):
    created: int
    updated: int


def _patch_values(patch: WorksitePatch) -> dict[str, Any]:
    return {name: getattr(patch, name) for name in patch.model_fields_set}


@router.get("/worksites", response_model=WorksiteList, summary="List worksites, filtered")
def list_worksites(store: StoreDep, _caller: CallerDep, query: QueryDep) -> WorksiteList:
    items = store.search(query)
    return WorksiteList(count=len(items), items=items)


@router.post(
    "/worksites", status_code=status.HTTP_201_CREATED, response_model=Worksite, responses=refusals(403, 409)
)
def create_worksite(store: StoreDep, caller: CallerDep, body: WorksiteCreate, response: Response) -> Worksite:
    created = store.create(caller, body)
    response.headers["Location"] = f"/worksites/{created.id}"
    response.headers["ETag"] = str(created.version)
    return created


@router.get("/worksites/{worksite_id}", response_model=Worksite, responses=refusals(404))
def get_worksite(
    store: StoreDep, _caller: CallerDep, worksite_id: WorksiteId, response: Response
) -> Worksite:
    found = store.get(worksite_id)
    response.headers["ETag"] = str(found.version)
    return found


@router.patch(
    "/worksites/{worksite_id}",
    response_model=Worksite,
    summary="Change some fields",
    responses=refusals(403, 404, 409),
)
def update_worksite(
    store: StoreDep,
    caller: CallerDep,
    worksite_id: WorksiteId,
    body: WorksitePatch,
    response: Response,
    if_match: Annotated[
        int | None, Header(description="Version the change was made on (optimistic lock)")
    ] = None,
) -> Worksite:
    updated = store.update(caller, worksite_id, _patch_values(body), expected_version=if_match)
    response.headers["ETag"] = str(updated.version)
    return updated


@router.post(
    "/worksites/{worksite_id}/approve",
    response_model=Worksite,
    summary="Approve (municipality)",
    responses=refusals(403, 404),
)
def approve_worksite(store: StoreDep, caller: CallerDep, worksite_id: WorksiteId) -> Worksite:
    return store.decide(caller, worksite_id, approve=True)


@router.post(
    "/worksites/{worksite_id}/reject",
    response_model=Worksite,
    summary="Reject (municipality)",
    responses=refusals(403, 404),
)
def reject_worksite(store: StoreDep, caller: CallerDep, worksite_id: WorksiteId) -> Worksite:
    return store.decide(caller, worksite_id, approve=False)


@router.get("/worksites/{worksite_id}/history", response_model=list[HistoryEntry], responses=refusals(404))
def worksite_history(store: StoreDep, _caller: CallerDep, worksite_id: WorksiteId) -> list[HistoryEntry]:
    return store.history(worksite_id)


class RouteOut(BaseModel):
    operator: str
    route_id: str
    name: str
    distance_m: float


class StopOut(BaseModel):
    operator: str
    stop_id: str
    name: str
    lat: float
    lon: float
    distance_m: float
    routes: list[str]


class WorksiteTransit(BaseModel):
    worksite: str
    within_m: float
    routes: list[RouteOut]
    stops: list[StopOut]


@router.get(
    "/worksites/{worksite_id}/transit",
    response_model=WorksiteTransit,
    summary="Bus routes passing the worksite and stops inside it (from the imported GTFS)",
    responses=refusals(404),
)
def worksite_transit(
    store: StoreDep,
    _caller: CallerDep,
    transit: TransitDep,
    worksite_id: WorksiteId,
    within_m: Annotated[
        float, QueryParam(ge=0, le=500, description="A route is affected within this many metres")
    ] = DEFAULT_WITHIN_M,
) -> WorksiteTransit:
    found = transit.impact(store.get(worksite_id).geometry, within_m).to_dict()
    return WorksiteTransit(worksite=worksite_id, within_m=within_m, **found)


def _coordination_scope(store: StoreDep, settings: conflicts.CoordinationSettings) -> list[Worksite]:
    # Completed worksites matter only while a redig could still be flagged against them.
    since = datetime.now(UTC) - timedelta(days=settings.redig_days)
    return [w for w in store.search(Query(start=since, limit=10**9)) if w.status is not Status.CANCELLED]


@router.get(
    "/worksites/{worksite_id}/conflicts",
    summary="Conflicts, synergies and redigs of one worksite",
    responses=refusals(404),
)
def worksite_conflicts(
    store: StoreDep, _caller: CallerDep, settings: CoordinationDep, worksite_id: WorksiteId
) -> list[dict[str, Any]]:
    store.get(worksite_id)
    found = conflicts.detect(_coordination_scope(store, settings), settings, projection=store.projection)
    return [c.as_dict() for c in conflicts.involving(found, worksite_id)]


@router.get("/conflicts", summary="All conflicts, synergies and redigs")
def all_conflicts(store: StoreDep, caller: CallerDep, settings: CoordinationDep) -> list[dict[str, Any]]:
    found = conflicts.detect(_coordination_scope(store, settings), settings, projection=store.projection)
    return [c.as_dict() for c in found]


@router.get("/organisations", response_model=list[Organisation])
def list_organisations(store: StoreDep, _caller: CallerDep) -> list[Organisation]:
    return store.organisations()


@router.post(
    "/import/wzdx",
    response_model=ImportResult,
    summary="Import a WZDx 4.x WorkZoneFeed",
    responses=refusals(403, 409),
)
def import_wzdx(
    store: StoreDep, caller: CallerDep, feed: Annotated[dict[str, Any], Body(description="WZDx WorkZoneFeed")]
) -> ImportResult:
    """Create or change the feed's work zones with the API's own rules, all or nothing: a utility
    writes only its own, a new or re-planned worksite is pending approval, a `sitroom.version`
    older than the stored one is a conflict (409)."""
    sites = wzdx.import_feed(feed, areas=store.areas)
    created, updated = store.import_many(caller, sites)
    return ImportResult(created=created, updated=updated)


def live_now(store: StoreDep, now: datetime) -> list[Worksite]:
    """Active worksites, and planned ones whose window contains now (not yet marked active)."""
    return store.search(
        Query(start=now, end=now + timedelta(microseconds=1), statuses=LIVE_STATUSES, limit=FEED_LIMIT)
    )


def planned_next(store: StoreDep, now: datetime) -> list[Worksite]:
    window = Query(start=now, end=now + PLANNED_HORIZON, statuses=(Status.PLANNED,), limit=FEED_LIMIT)
    return [w for w in store.search(window) if w.start >= now]


@feeds.get("/live.geojson", summary="Worksites live now (GeoJSON FeatureCollection)")
def feed_live(store: StoreDep, transit: TransitDep) -> dict[str, Any]:
    now = datetime.now(UTC)
    return feature_collection(live_now(store, now), transit, generated_at=wzdx.format_date(now))


@feeds.get("/planned.geojson", summary="Worksites planned to start in the next 30 days (GeoJSON)")
def feed_planned(store: StoreDep, transit: TransitDep) -> dict[str, Any]:
    now = datetime.now(UTC)
    return feature_collection(planned_next(store, now), transit, generated_at=wzdx.format_date(now))


@feeds.get("/wzdx.json", summary="WZDx 4.2 WorkZoneFeed of current and upcoming worksites")
def feed_wzdx(store: StoreDep) -> dict[str, Any]:
    now = datetime.now(UTC)
    sites = [
        w
        for w in store.search(Query(start=now, limit=FEED_LIMIT))
        if w.status not in (Status.CANCELLED, Status.COMPLETED)
    ]
    return wzdx.export_feed(sites, store.organisations(), publisher=store.publisher())


def validation_problems(exc: ValidationError | Any) -> list[FieldProblem]:
    """FastAPI's request errors as field problems: body fields by name, query/path by parameter."""
    out: list[FieldProblem] = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        if (loc and loc[0] == "body") or (loc and loc[0] in ("query", "path", "header")):
            loc = loc[1:]
        value = printable(err.get("input"))
        message = message_of(err)
        if err.get("type") == "json_invalid":
            out.append(FieldProblem("body", f"not valid JSON: {err.get('ctx', {}).get('error', message)}"))
            continue
        out.append(FieldProblem(".".join(loc) or "body", message, value))
    return out


__all__ = ["InvalidWorksiteError", "feeds", "problems_from", "router"]
