"""The console for `sitroom demo` and for tests: demo operators, and a server in a thread.

Demo log-ins (password `demo` for all — a demo on loopback, never a deployment):

| user     | organisation     | role                   |
|----------|------------------|------------------------|
| `anna`   | comune-prato     | municipality operator  |
| `marco`  | publiacqua       | utility operator       |
| `giulia` | toscana-energia  | utility operator       |
| `luca`   | alia             | technician             |
| `parete` | comune-prato     | read-only (the wall)   |
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from fastapi import FastAPI
from sqlalchemy.exc import IntegrityError, OperationalError

from cloud.console.app import Console, mount_console
from cloud.console.auth import ConsoleRole
from cloud.console.live import Sources
from cloud.console.store import ConsoleStore
from cloud.io.influx.client import InfluxClient
from cloud.rules.store import AlertStore
from cloud.worksites.store import WorksiteStore

_S = TypeVar("_S")
DEMO_PASSWORD = "demo"  # noqa: S105  (documented demo credential, loopback only)
DEMO_OPERATORS: tuple[tuple[str, str, ConsoleRole, str], ...] = (
    ("anna", "comune-prato", ConsoleRole.MUNICIPALITY_OPERATOR, "Anna Bini (Comune di Prato)"),
    ("marco", "publiacqua", ConsoleRole.UTILITY_OPERATOR, "Marco Lenzi (Publiacqua)"),
    ("giulia", "toscana-energia", ConsoleRole.UTILITY_OPERATOR, "Giulia Fabbri (Toscana Energia)"),
    ("luca", "alia", ConsoleRole.TECHNICIAN, "Luca Mori (Alia)"),
    ("parete", "comune-prato", ConsoleRole.READ_ONLY, "Parete sala operativa"),
)
# The demo's uploads may be phone photos; the API's default 2 MB body limit is raised to fit.
DEMO_MAX_BODY_BYTES = 10 * 1024 * 1024


def add_demo_operators(store: ConsoleStore) -> None:
    for username, org, role, name in DEMO_OPERATORS:
        store.add_operator(username, DEMO_PASSWORD, org, role, name)


def demo_credentials() -> str:
    users = ", ".join(f"{u} ({org}, {role.value.replace('_', ' ')})" for u, org, role, _ in DEMO_OPERATORS)
    return f"log in as {users}; password {DEMO_PASSWORD!r}"


def build_app(
    data_dir: Path,
    *,
    worksites: WorksiteStore,
    alerts: AlertStore | None,
    influx: InfluxClient | None,
    refresh_s: float = 2.0,
    max_upload_bytes: int = 8 * 1024 * 1024,
) -> tuple[FastAPI, Console]:
    """The API app (worksites, feeds) with the console mounted; the console is not started."""
    from cloud.apps.api import ApiOptions, create_app  # noqa: PLC0415  (the API app mounts the console too)

    app = create_app(worksites, ApiOptions(max_body_bytes=max(DEMO_MAX_BODY_BYTES, max_upload_bytes + 65536)))
    if alerts is not None:
        # The rules engine's own alert API (issue 7) beside the console's.
        from cloud.rules.api import router as alerts_router  # noqa: PLC0415

        app.state.alert_store = alerts
        app.include_router(alerts_router)
    console = Console.open(
        data_dir,
        Sources(worksites=worksites, alerts=alerts, influx=influx),
        refresh_s=refresh_s,
        max_upload_bytes=max_upload_bytes,
    )
    add_demo_operators(console.store)
    mount_console(app, console)
    return app, console


def attach(
    app: FastAPI,
    worksites: WorksiteStore,
    data_dir: Path,
    *,
    alerts_db: str | None,
    influx: InfluxClient | None,
    demo_operators: bool = False,
    max_upload_bytes: int = 8 * 1024 * 1024,
) -> Console:
    """Mount the console on an existing API app (`sitroom cloud api --console DIR`); not started."""
    alerts = AlertStore(alerts_db) if alerts_db else None
    console = Console.open(
        data_dir,
        Sources(worksites=worksites, alerts=alerts, influx=influx),
        max_upload_bytes=max_upload_bytes,
    )
    if demo_operators:
        add_demo_operators(console.store)
    mount_console(app, console)
    return console


def attach_for_api(
    app: FastAPI,
    worksites: WorksiteStore,
    data_dir: Path,
    *,
    alerts_db: str | None,
    demo_operators: bool,
    max_body_bytes: int,
) -> Console:
    """`sitroom cloud api --console DIR`: InfluxDB from the process's CloudSettings (SITROOM_*)."""
    from cloud.core.settings import CloudSettings  # noqa: PLC0415

    settings = CloudSettings()
    influx = InfluxClient(
        settings.influx_url,
        settings.influx_db,
        username=settings.influx_username,
        password=settings.influx_password,
    )
    # The upload limit stays under the API's body limit, or the middleware answers first.
    limit = max(1024, min(8 * 1024 * 1024, max_body_bytes - 65536))
    console = attach(
        app,
        worksites,
        data_dir,
        alerts_db=alerts_db,
        influx=influx,
        demo_operators=demo_operators,
        max_upload_bytes=limit,
    )
    # Mentions of organisations that are not watching go out as the rules engine's do.
    from cloud.console.notify import notifier_from_rules_file, notifier_hook  # noqa: PLC0415
    from cloud.rules.engine import DEFAULT_RULES  # noqa: PLC0415

    rules = Path(settings.rules_file) if settings.rules_file else DEFAULT_RULES
    notifier = notifier_from_rules_file(rules, settings.broker)
    if notifier is not None:
        console.notify_posts = notifier_hook(notifier)
    return console


@contextmanager
def running_console(
    data_dir: Path,
    *,
    worksites: WorksiteStore,
    alerts: AlertStore | None,
    influx: InfluxClient | None,
    refresh_s: float = 2.0,
    max_upload_bytes: int = 8 * 1024 * 1024,
    port: int | None = None,
) -> Iterator[tuple[str, Console]]:
    """`with running_console(...) as (base_url, console):` the API and console served in a thread."""
    from cloud.dev.apiserver import ThreadedApiServer  # noqa: PLC0415

    app, console = build_app(
        data_dir, worksites=worksites, alerts=alerts, influx=influx, refresh_s=refresh_s,
        max_upload_bytes=max_upload_bytes,
    )  # fmt: skip
    console.start()
    try:
        with ThreadedApiServer(app, port=port) as server:
            try:
                yield server.url, console
            finally:
                console.stop()  # ends the open event streams, which the server would wait for
    finally:
        console.stop()


def _opened(open_store: Callable[[], _S], timeout_s: float = 30.0) -> _S:
    """Open a store, waiting while another process (the demo's API or rules service) creates
    its tables: two first migrations racing on one SQLite file make one of them fail once."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return open_store()
        except (OperationalError, IntegrityError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def start_console(
    data_dir: Path,
    influx_url: str | None,
    *,
    alerts_db: str | None = None,
    worksites_db: str | None = None,
    influx_db: str = "sitroom",
    port: int | None = None,
    influx_username: str | None = None,
    influx_password: str | None = None,
) -> tuple[str, Callable[[], None]]:
    """Serve the console (uvicorn in a thread) with the demo operators; return (URL, stop).

    `alerts_db` is the rules service's alert store (`SITROOM_ALERTS_DB`), `worksites_db` the
    worksite registry; each defaults to a SQLite file under `data_dir` (demo worksites loaded).
    """
    from cloud.worksites.demo_data import load_demo  # noqa: PLC0415

    data_dir.mkdir(parents=True, exist_ok=True)
    from cloud.core.geometry import PRATO_AREA  # noqa: PLC0415

    ws_url = worksites_db or f"sqlite:///{data_dir / 'worksites.db'}"
    ws = _opened(lambda: WorksiteStore.open(ws_url, area=PRATO_AREA))
    if worksites_db is None:
        load_demo(ws, datetime.now(UTC))
    alerts_url = alerts_db or f"sqlite:///{data_dir / 'alerts.db'}"
    alerts = _opened(lambda: AlertStore(alerts_url))
    influx = (
        InfluxClient(influx_url, influx_db, username=influx_username, password=influx_password)
        if influx_url
        else None
    )
    stack = ExitStack()
    if influx is not None:
        stack.callback(influx.close)
    base_url, _console = stack.enter_context(
        running_console(data_dir / "console", worksites=ws, alerts=alerts, influx=influx, port=port)
    )
    return f"{base_url}/console/", stack.close
