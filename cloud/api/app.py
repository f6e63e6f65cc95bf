"""The FastAPI app factory: routers, error shapes, body-size limit, CORS.

Every refusal has one JSON shape: `{"detail": "...", "errors": [{"field", "message", "value"}]}`
for validation (422), `{"detail": "..."}` otherwise, so that a client can always point at the
field to fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cloud.api.sites import sites_feed
from cloud.worksites.api import feeds, router, validation_problems
from cloud.worksites.conflicts import CoordinationSettings
from cloud.worksites.store import (
    ConflictError,
    FieldProblem,
    InvalidWorksiteError,
    NotFoundError,
    PermissionDeniedError,
    WorksiteStore,
)

DEFAULT_MAX_BODY_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class WayIn:
    """A router that brings data in, and the service its routes find at `app.state.<state_name>`."""

    router: APIRouter
    state_name: str
    service: object


@dataclass(frozen=True, slots=True)
class ApiOptions:
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    cors_origins: Sequence[str] = ("*",)
    coordination: CoordinationSettings = field(default_factory=CoordinationSettings)


class BodyLimit:
    """Refuse request bodies over `limit` bytes with 413 before any of it is parsed.

    `Content-Length` is checked first; a chunked body is counted as it streams, so a client
    that lies about or omits the length is cut off too.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await self._refuse(send)
                return
        received = 0
        refused = False

        async def limited_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    # Answer now and tell the app the client left: it stops reading, and
                    # whatever it would still send is dropped below.
                    refused = True
                    await self._refuse(send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not refused:
                await send(message)

        await self.app(scope, limited_receive, guarded_send)

    async def _refuse(self, send: Send) -> None:
        body = f'{{"detail":"request body over {self.limit} bytes"}}'.encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _problems(problems: list[FieldProblem]) -> list[dict[str, Any]]:
    return [{"field": p.field, "message": p.message, "value": p.value} for p in problems]


def _invalid(problems: list[FieldProblem]) -> JSONResponse:
    detail = "; ".join(f"{p.field}: {p.message}" for p in problems)
    return JSONResponse({"detail": detail, "errors": _problems(problems)}, status_code=422)


def create_app(
    store: WorksiteStore, options: ApiOptions | None = None, *, ways_in: Sequence[WayIn] = ()
) -> FastAPI:
    """The API; `ways_in` adds the HTTP ways in to ingest (push API, NGSI-LD notifications)."""
    opts = options or ApiOptions()
    app = FastAPI(
        title="Situation Room API",
        version="1",
        description=(
            "Road worksites of Prato: plan, coordinate and publish. Authenticate with an "
            "organisation's token (`Authorization: Bearer ...`). Feeds under /feeds are public."
        ),
    )
    app.state.worksite_store = store
    app.state.coordination = opts.coordination
    app.include_router(router)
    app.include_router(feeds)
    app.include_router(sites_feed)
    for way in ways_in:
        setattr(app.state, way.state_name, way.service)
        app.include_router(way.router)

    @app.exception_handler(RequestValidationError)
    async def _request_invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return _invalid(validation_problems(exc))

    @app.exception_handler(InvalidWorksiteError)
    async def _worksite_invalid(_request: Request, exc: InvalidWorksiteError) -> JSONResponse:
        return _invalid(exc.problems)

    @app.exception_handler(NotFoundError)
    async def _not_found(_request: Request, exc: NotFoundError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(PermissionDeniedError)
    async def _forbidden(_request: Request, exc: PermissionDeniedError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=403)

    @app.exception_handler(ConflictError)
    async def _conflict(_request: Request, exc: ConflictError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(opts.cors_origins),
        allow_methods=["GET"],
        allow_headers=["Authorization"],
    )
    app.add_middleware(BodyLimit, limit=opts.max_body_bytes)
    return app
