"""`/feeds/transit/stops.geojson` and `/feeds/transit/routes.geojson`: the network for map layers.

Public, like the other feeds under `/feeds`. A feed changes when an operator's GTFS is
re-imported, so responses carry an ETag of the current feed versions and are rebuilt only then.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from sqlalchemy.engine import Engine

from cloud.io.http import refusals
from cloud.transit import network
from cloud.transit.store import TransitStore, UnknownError

Builder = Callable[[TransitStore, str | None], dict[str, Any]]
OperatorQuery = Annotated[str | None, Query(description="One operator's network (default: all)")]


class _Cached:
    """Each document, built once per set of current feed versions."""

    def __init__(self, store: TransitStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._docs: dict[tuple[str, str | None], tuple[str, dict[str, Any]]] = {}

    def get(self, name: str, build: Builder, operator: str | None) -> tuple[str, dict[str, Any]]:
        feeds = self.store.current_feeds()
        version = ",".join(f"{op}:{f.version}:{f.sha256[:12]}" for op, f in sorted(feeds.items()))
        etag = '"' + hashlib.sha256(f"{name}|{operator}|{version}".encode()).hexdigest()[:32] + '"'
        key = (name, operator)
        with self._lock:
            hit = self._docs.get(key)
            if hit is not None and hit[0] == etag:
                return hit
        try:
            doc = build(self.store, operator)
        except UnknownError as exc:
            raise HTTPException(status_code=404, detail=str(exc)) from None
        with self._lock:
            self._docs[key] = (etag, doc)
        return etag, doc


def transit_feeds(engine: Engine) -> APIRouter:
    """The router, reading the transit tables in `engine`'s database (created when missing)."""
    store = TransitStore(engine)
    store.migrate()
    cache = _Cached(store)
    router = APIRouter(prefix="/feeds/transit", tags=["feeds"])

    def answer(name: str, build: Builder, operator: str | None, request: Request, response: Response) -> Any:
        etag, doc = cache.get(name, build, operator)
        response.headers["ETag"] = etag
        response.headers["Cache-Control"] = "public, max-age=300"
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers={"ETag": etag})
        return doc

    # 404: an operator with no imported feed; 304: the client's copy (If-None-Match) is current.
    answers = refusals(404) | {304: {"description": "Not modified: the feed version is the one you have"}}

    @router.get(
        "/stops.geojson",
        summary="Public-transport stops (GeoJSON points; id = the stop's sensor id)",
        responses=answers,
    )
    def get_stops(request: Request, response: Response, operator: OperatorQuery = None) -> Any:
        return answer("stops", network.stops_geojson, operator, request, response)

    @router.get(
        "/routes.geojson",
        summary="Public-transport routes (GeoJSON multi-lines of their shapes)",
        responses=answers,
    )
    def get_routes(request: Request, response: Response, operator: OperatorQuery = None) -> Any:
        return answer("routes", network.routes_geojson, operator, request, response)

    return router
