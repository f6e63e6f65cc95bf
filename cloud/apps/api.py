"""The API process's wiring: which routers, stores and error shapes `sitroom cloud api` serves.

Every refusal has one JSON shape: `{"detail": "...", "errors": [{"field", "message", "value"}]}`
for validation (422), `{"detail": "..."}` otherwise, so that a client can always point at the
field to fix.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from cloud.apps.console import influx_client, open_console, post_notifier, upload_limit
from cloud.console.api import mount_console
from cloud.console.app import Console
from cloud.core.errors import (
    ConflictError,
    FieldProblem,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from cloud.core.geo import ServiceAreas
from cloud.core.orgs import OrgDirectory
from cloud.core.settings import CloudSettings
from cloud.feeds.sites import sites_feed
from cloud.io.http import BodyLimit
from cloud.io.influx.policy import DataPolicy
from cloud.rules.api import router as alerts_router
from cloud.rules.store import AlertStore
from cloud.worksites.alerts import CoordinationAlerts
from cloud.worksites.api import feeds, router, validation_problems
from cloud.worksites.conflicts import CoordinationSettings
from cloud.worksites.store import WorksiteStore
from edge.contract import BrokerAddress

DEFAULT_MAX_BODY_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ApiOptions:
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    cors_origins: Sequence[str] = ("*",)
    coordination: CoordinationSettings = field(default_factory=CoordinationSettings)


def _problems(problems: list[FieldProblem]) -> list[dict[str, Any]]:
    return [{"field": p.field, "message": p.message, "value": p.value} for p in problems]


def _invalid(problems: list[FieldProblem]) -> JSONResponse:
    detail = "; ".join(f"{p.field}: {p.message}" for p in problems)
    return JSONResponse({"detail": detail, "errors": _problems(problems)}, status_code=422)


def create_app(
    worksites: WorksiteStore,
    options: ApiOptions | None = None,
    *,
    orgs: OrgDirectory | None = None,
    alerts: AlertStore | None = None,
    console: Console | None = None,
) -> FastAPI:
    """THE API app: worksites and their feeds, sensor sites, alerts (with an alert store),
    the operator console (when given). `sitroom cloud api`, the demo and the tests all build
    it here; organisations and tokens come from the registry beside the worksites by default."""
    opts = options or ApiOptions()
    app = FastAPI(
        title="Situation Room API",
        version="1",
        description=(
            "Road worksites, alerts and feeds of the Situation Room. Authenticate with an "
            "organisation's token (`Authorization: Bearer ...`). Feeds under /feeds are public."
        ),
    )
    app.state.worksite_store = worksites
    app.state.orgs = orgs or worksites.orgs
    app.state.coordination = opts.coordination
    app.include_router(router)
    app.include_router(feeds)
    app.include_router(sites_feed)
    if alerts is not None:
        app.state.alert_store = alerts
        app.include_router(alerts_router)
    if console is not None:
        mount_console(app, console)

    @app.exception_handler(RequestValidationError)
    async def _request_invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return _invalid(validation_problems(exc))

    @app.exception_handler(InvalidInputError)
    async def _input_invalid(_request: Request, exc: InvalidInputError) -> JSONResponse:
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


@dataclass(frozen=True, slots=True)
class ApiProcess:
    """What one `sitroom cloud api` process serves."""

    db_url: str
    alerts_db: str
    host: str = "127.0.0.1"
    port: int = 8080
    options: ApiOptions = field(default_factory=ApiOptions)
    token_orgs: Sequence[str] = ()
    coordination_broker: BrokerAddress | None = None  # publish conflict/synergy/redig alerts
    console_dir: Path | None = None
    areas: ServiceAreas | None = None  # where worksites may lie; None: the default areas (Prato)


# Puts demo data into the registry (and the console, when one is served); the demo's wiring
# has one (`cloud.apps.demo.seed`), production none.
Seed = Callable[[WorksiteStore, Console | None], str]


def run_api(process: ApiProcess, echo: Callable[[str], None], seed: Seed | None = None) -> None:
    """Open the stores, build the app, serve it with uvicorn until interrupted."""
    store = WorksiteStore.open(process.db_url, areas=process.areas or ServiceAreas.load())
    alerts = AlertStore(process.alerts_db)
    stop = threading.Event()
    if process.coordination_broker is not None:
        coordination = CoordinationAlerts(store, process.coordination_broker)
        threading.Thread(target=coordination.run, args=(stop,), name="worksite-alerts", daemon=True).start()
    console = None
    if process.console_dir is not None:
        settings = CloudSettings()
        url = f"http://{process.host}:{process.port}/console/"
        console = open_console(
            process.console_dir,
            worksites=store,
            alerts=alerts,
            influx=influx_client(settings),
            orgs=store.orgs,
            areas=store.areas,
            policy=DataPolicy.load(settings.data_policy, settings.influx_db),
            max_upload_bytes=upload_limit(process.options.max_body_bytes),
            notify_posts=post_notifier(settings, url),
        )
        console.start()
        echo(f"operator console: {url}")
    if seed is not None:
        echo(seed(store, console))
    for org in process.token_orgs:
        echo(f"token {org} {store.orgs.issue_token(org, 'cli')}")
    app = create_app(store, process.options, alerts=alerts, console=console)
    try:
        # Open console event streams never end by themselves: without a grace limit, Ctrl-C
        # would wait for every browser to leave.
        uvicorn.run(
            app,
            host=process.host,
            port=process.port,
            log_level="info",
            access_log=False,
            timeout_graceful_shutdown=5,
        )
    finally:
        stop.set()
        if console is not None:
            console.stop()
