"""The exchange's reading route: one worksite as an NGSI-LD `CityWork` entity.

`GET /worksites/{id}/ngsi-ld` answers with the same entity `sitroom exchange export` writes for
it (`entities.city_work`), normalized by default, keyValues with `?options=keyValues` (the
NGSI-LD API's own option). The worksite comes from the registry the API serves, through
`core.worksites.WorksiteShelf`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request

from cloud.core.orgs import ID_PATTERN
from cloud.core.worksites import WorksiteShelf
from cloud.exchange.entities import city_work
from cloud.io.http import CallerDep, refusals

router = APIRouter(tags=["exchange"])


def _shelf(request: Request) -> WorksiteShelf:
    shelf: WorksiteShelf = request.app.state.worksite_shelf
    return shelf


@router.get(
    "/worksites/{worksite_id}/ngsi-ld",
    summary="The worksite as an NGSI-LD CityWork entity (FIWARE Smart Data Models)",
    responses=refusals(404),
)
def worksite_ngsi_ld(
    request: Request,
    _caller: CallerDep,
    worksite_id: Annotated[str, Path(pattern=ID_PATTERN, description="Worksite id")],
    options: Annotated[
        Literal["normalized", "keyValues"] | None,
        Query(description="`keyValues` for plain values; the normalized form by default"),
    ] = None,
) -> dict[str, Any]:
    entity = city_work(_shelf(request).get(worksite_id))
    return entity.key_values() if options == "keyValues" else entity.normalized()


__all__ = ["router"]
