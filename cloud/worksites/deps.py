"""FastAPI dependencies: the store, the calling organisation (from its bearer token), filters."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Query, Request

from cloud.core.errors import FieldProblem
from cloud.core.geo import BBox
from cloud.core.orgs import ID_PATTERN
from cloud.worksites.conflicts import CoordinationSettings
from cloud.worksites.models import InvalidWorksiteError, Status
from cloud.worksites.store import Query as StoreQuery
from cloud.worksites.store import WorksiteStore


def get_store(request: Request) -> WorksiteStore:
    store: WorksiteStore = request.app.state.worksite_store
    return store


def get_coordination(request: Request) -> CoordinationSettings:
    settings: CoordinationSettings = request.app.state.coordination
    return settings


StoreDep = Annotated[WorksiteStore, Depends(get_store)]
CoordinationDep = Annotated[CoordinationSettings, Depends(get_coordination)]


def get_query(
    start: Annotated[
        datetime | None, Query(description="Window start (RFC 3339); keeps worksites ending after it")
    ] = None,
    end: Annotated[
        datetime | None, Query(description="Window end (RFC 3339); keeps worksites starting before it")
    ] = None,
    status_: Annotated[list[Status] | None, Query(alias="status", description="Repeatable")] = None,
    owner: Annotated[
        list[Annotated[str, Query(pattern=ID_PATTERN)]] | None, Query(description="Repeatable")
    ] = None,
    bbox: Annotated[
        str | None, Query(description="min_lon,min_lat,max_lon,max_lat (WGS84)", max_length=200)
    ] = None,
    street: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> StoreQuery:
    problems: list[FieldProblem] = []
    window: dict[str, datetime | None] = {"start": start, "end": end}
    for name, value in window.items():
        if value is None:
            continue
        if value.tzinfo is None:
            problems.append(
                FieldProblem(name, "needs a UTC offset, e.g. 2026-11-24T10:00:00Z", value.isoformat())
            )
            window[name] = None
            continue
        try:
            window[name] = value.astimezone(UTC)  # the store compares in UTC
        except OverflowError:  # 0001-01-01T00:00:00+01:00 is before year 1 in UTC
            problems.append(
                FieldProblem(name, "out of the range of dates (years 1 to 9999 in UTC)", value.isoformat())
            )
            window[name] = None
    start, end = window["start"], window["end"]
    if start and end and end <= start:
        problems.append(FieldProblem("end", "must be after start", end.isoformat()))
    box = None
    if bbox is not None:
        try:
            box = BBox.parse(bbox)
        except ValueError as exc:
            problems.append(FieldProblem("bbox", str(exc), bbox))
    if problems:
        raise InvalidWorksiteError(problems)
    return StoreQuery(
        start=start,
        end=end,
        statuses=tuple(status_ or ()),
        owners=tuple(owner or ()),
        bbox=box,
        street=street,
        limit=limit,
        offset=offset,
    )


QueryDep = Annotated[StoreQuery, Depends(get_query)]
