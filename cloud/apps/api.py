"""The API process's wiring: which routers, stores and error shapes `sitroom cloud api` serves.

With `--push` (`ApiProcess.push`) it also takes data in: the push API (`cloud.ingest.push`) and
the NGSI-LD notification receiver (`cloud.exchange.receiver`), which share one `DirectIngest`
(ingest's admission and storage, from the same `SITROOM_*` settings as `sitroom cloud ingest`)
and one batch ledger beside the registry. The receiver reaches ingest only through
`core.intake.Intake`: the two features never import each other.

Every refusal has one JSON shape: `{"detail": "...", "errors": [{"field", "message", "value"}]}`
for validation (422), `{"detail": "..."}` otherwise, so that a client can always point at the
field to fix.
"""

from __future__ import annotations

import logging
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
from cloud.core.admission import Admission
from cloud.core.errors import (
    ConflictError,
    FieldProblem,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from cloud.core.geo import FixedSites, ServiceAreas, SiteSource
from cloud.core.orgs import OrgDirectory, Role
from cloud.core.settings import CloudSettings
from cloud.core.transit import TransitNetwork
from cloud.core.worksites import WorksiteShelf
from cloud.exchange.api import router as exchange_router
from cloud.exchange.receiver import NotificationReceiver
from cloud.exchange.receiver import router as notification_router
from cloud.feeds.sites import sites_feed
from cloud.ingest.direct import DirectIngest
from cloud.ingest.push import PushOptions, PushService
from cloud.ingest.push import router as push_router
from cloud.io.http import BodyLimit, document_refusals
from cloud.io.influx.client import InfluxClient
from cloud.io.influx.policy import DataPolicy
from cloud.io.ledger import BatchLedger
from cloud.io.mqtt import BrokerConnection, Outbound
from cloud.rules.api import router as alerts_router
from cloud.rules.store import AlertStore
from cloud.transit.api import transit_feeds
from cloud.transit.intermodality import intermodality_router
from cloud.transit.lookup import StoreNetwork
from cloud.transit.store import TransitStore
from cloud.worksites.alerts import CoordinationAlerts
from cloud.worksites.api import feeds, router, validation_problems
from cloud.worksites.conflicts import CoordinationSettings
from cloud.worksites.store import WorksiteStore
from edge.contract import BrokerAddress

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ApiOptions:
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    cors_origins: Sequence[str] = ("*",)
    coordination: CoordinationSettings = field(default_factory=CoordinationSettings)


@dataclass(frozen=True, slots=True)
class WaysIn:
    """Data in over HTTP: the push API and the NGSI-LD notification receiver."""

    push: PushService
    notifications: NotificationReceiver

    @classmethod
    def over(cls, direct: DirectIngest, ledger: BatchLedger, options: PushOptions | None = None) -> WaysIn:
        """Both on one ingest path and one ledger (the receiver sees the ingest as an `Intake`)."""
        return cls(PushService(direct, ledger, options), NotificationReceiver(direct, ledger))


def direct_ingest(settings: CloudSettings, *, max_body_bytes: int, orgs: OrgDirectory) -> DirectIngest:
    """Ingest's admission and storage for the HTTP ways in, from the process's settings.

    A pushed batch may be as large as the API takes a body (a technician's file of 10,000
    readings), above the MQTT payload cap; everything else is `sitroom cloud ingest`'s verdict.
    With installation records, the utilities that may feed their fleet (`fleet` pseudo-gateway)
    are the registry's organisations of role utility when the process starts.
    """
    cap = max(settings.max_payload_bytes, max_body_bytes)
    utilities = [o.id for o in orgs.organisations() if o.role is Role.UTILITY]
    admission = Admission.from_settings(
        settings.model_copy(update={"max_payload_bytes": cap}), utilities=utilities
    )
    return DirectIngest(influx_client(settings), admission, instance=f"http-{settings.instance}")


def _shelf(worksites: WorksiteStore) -> WorksiteShelf:
    """The registry as the exchange reads it (a type check that it is one)."""
    return worksites


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
    ways_in: WaysIn | None = None,
    sites: SiteSource | None = None,
    transit: TransitNetwork | None = None,
    influx: InfluxClient | None = None,
) -> FastAPI:
    """THE API app: worksites and their feeds (a worksite as NGSI-LD too), sensor sites,
    alerts (with an alert store), the operator console (when given), the push API and the
    NGSI-LD receiver (with `ways_in`). `sitroom cloud api`, the demo and the tests all build it
    here; organisations and tokens come from the registry beside the worksites by default, the
    sensor sites from `sites`, else the console's, else the installation file; the bus network
    (routes on worksites, park-and-ride departures) from the transit tables beside the registry;
    with `influx`, the park-and-ride route reads free spaces and bus delays."""
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
    app.state.worksite_shelf = _shelf(worksites)
    app.state.orgs = orgs or worksites.orgs
    app.state.coordination = opts.coordination
    app.state.sites = sites or (console.sources.sites if console is not None else FixedSites.from_file())
    app.state.transit = transit or bus_network(worksites)
    app.include_router(router)
    app.include_router(feeds)
    app.include_router(sites_feed)
    app.include_router(transit_feeds(worksites.engine))
    app.include_router(intermodality_router(app.state.transit, influx))
    app.include_router(exchange_router)
    if ways_in is not None:
        app.state.push = ways_in.push
        app.state.ngsi_ld = ways_in.notifications
        app.include_router(push_router)
        app.include_router(notification_router)
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
    generated = app.openapi

    def openapi() -> dict[str, Any]:
        # The document says what the handlers above and the middlewares answer (issue 18 point 13).
        if app.openapi_schema is None:
            app.openapi_schema = document_refusals(generated())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def bus_network(worksites: WorksiteStore) -> TransitNetwork:
    """The network imported into the API's database (`sitroom transit import`'s default)."""
    return StoreNetwork(TransitStore(worksites.engine))


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
    push: PushOptions | None = None  # take data in (push API, NGSI-LD notifications): needs write access
    cookie_secure: bool = False  # the console's session cookie only over HTTPS


# Puts demo data into the registry (and the console, when one is served); the demo's wiring
# has one (`cloud.apps.demo.seed`), production none.
Seed = Callable[[WorksiteStore, Console | None], str]


def run_api(process: ApiProcess, echo: Callable[[str], None], seed: Seed | None = None) -> None:
    """Open the stores, build the app, serve it with uvicorn until interrupted."""
    store = WorksiteStore.open(process.db_url, areas=process.areas or ServiceAreas.load())
    alerts = AlertStore(process.alerts_db)
    stop = threading.Event()
    # One broker connection for the whole process (client ids are bound to usernames: a second
    # one under the API's identity would take the first one's place): the coordination findings
    # and the console's notifications publish on it.
    outbound: Outbound | None = None
    connection: BrokerConnection | None = None
    if process.coordination_broker is not None:
        connection = BrokerConnection(process.coordination_broker, client_id="sitroom-api", persistent=False)
        outbound = Outbound()
        outbound.attach(connection.start(wait_s=None))
        shared = outbound
        coordination = CoordinationAlerts(
            store, lambda alerts: shared.publish([(a.topic, a.to_json()) for a in alerts])
        )
        threading.Thread(target=coordination.run, args=(stop,), name="worksite-alerts", daemon=True).start()
    console = None
    transit = bus_network(store)
    settings = CloudSettings()
    influx = influx_client(settings)
    if process.console_dir is not None:
        url = f"http://{process.host}:{process.port}/console/"
        console = open_console(
            process.console_dir,
            worksites=store,
            alerts=alerts,
            influx=influx,
            orgs=store.orgs,
            areas=store.areas,
            policy=DataPolicy.load(settings.data_policy, settings.influx_db),
            max_upload_bytes=upload_limit(process.options.max_body_bytes),
            notify_posts=post_notifier(settings, url, outbound),
            cookie_secure=process.cookie_secure,
            transit=transit,
        )
        console.start()
        echo(f"operator console: {url}")
    if seed is not None:
        echo(seed(store, console))
    for org in process.token_orgs:
        echo(f"token {org} {store.orgs.issue_token(org, 'cli')}")
    ways_in = None
    if process.push is not None:
        direct = direct_ingest(settings, max_body_bytes=process.options.max_body_bytes, orgs=store.orgs)
        ways_in = WaysIn.over(direct, BatchLedger(store.engine), process.push)
        report = threading.Thread(
            target=_report, args=(direct, stop, settings.stats_interval_s), name="push-stats", daemon=True
        )
        report.start()
        url = f"http://{process.host}:{process.port}"
        echo(f"push API: {url}/push/v1, NGSI-LD notifications: {url}/exchange/ngsi-ld/notify")
    app = create_app(
        store,
        process.options,
        alerts=alerts,
        console=console,
        ways_in=ways_in,
        transit=transit,
        influx=influx,
    )
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
        if connection is not None:
            connection.stop()


def _report(direct: DirectIngest, stop: threading.Event, interval_s: float = 10.0) -> None:
    """The HTTP ways in's counters to InfluxDB (`sitroom_ingest`, instance `http-...`), as
    `sitroom cloud ingest` reports its own; and once more on the way out."""
    while not stop.wait(interval_s):
        direct.report()
    direct.report()
