"""`sitroom cloud api`: serve the HTTP API with uvicorn."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from cloud.ingest.direct import DirectIngest


@click.command("api")
@click.option("--db", envvar="SITROOM_WORKSITES_DB", help="sqlite:///PATH or postgresql://user@host/db")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option("--demo-data", is_flag=True, help="Load the Prato demo organisations and worksites first.")
@click.option("--cors-origin", "cors_origins", multiple=True, help="Allowed browser origin (default: any).")
@click.option("--max-body-bytes", default=2 * 1024 * 1024, show_default=True, type=click.IntRange(min=1024))
@click.option(
    "--token-for", "token_orgs", multiple=True, help="Print a fresh API token for this organisation."
)
@click.option(
    "--mqtt-url", help="Publish conflict/synergy/redig alerts (retained) to this broker every minute."
)
@click.option(
    "--mqtt-username", envvar="SITROOM_MQTT_USERNAME", help="The API's broker identity (e.g. svc.api)."
)
@click.option(
    "--mqtt-password-file",
    envvar="SITROOM_MQTT_PASSWORD_FILE",
    type=click.Path(exists=True, dir_okay=False),
    help="The file holding that identity's password.",
)
@click.option(
    "--console",
    "console_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Serve the operator console at /console/; its posts, uploads and audit in this folder.",
)
@click.option(
    "--alerts-db",
    envvar="SITROOM_ALERTS_DB",
    default="sqlite:///.sitroom/alerts.db",
    show_default=True,
    help="The rules service's alert store, shown and handled in the console.",
)
@click.option(
    "--push",
    "serve_push",
    is_flag=True,
    help="Also take data in: the push API (/push/v1) and NGSI-LD notifications; they write to the "
    "InfluxDB of the SITROOM_INFLUX_* settings with ingest's checks (SITROOM_SENSOR_DIRECTORY).",
)
@click.option("--push-rate", default=50_000.0, show_default=True, help="Readings/s per organisation.")
@click.option("--push-burst", default=100_000.0, show_default=True, help="Readings one may send at once.")
def api_command(
    db: str | None,
    host: str,
    port: int,
    demo_data: bool,
    cors_origins: tuple[str, ...],
    max_body_bytes: int,
    token_orgs: tuple[str, ...],
    mqtt_url: str | None,
    mqtt_username: str | None,
    mqtt_password_file: str | None,
    console_dir: Path | None,
    alerts_db: str,
    serve_push: bool,
    push_rate: float,
    push_burst: float,
) -> None:
    """Serve the HTTP API (worksites; OpenAPI at /docs)."""
    import uvicorn  # noqa: PLC0415  (keeps `sitroom --help` fast)

    from cloud.api.app import ApiOptions, create_app  # noqa: PLC0415
    from cloud.worksites.cli import default_db_url  # noqa: PLC0415
    from cloud.worksites.demo_data import load_demo  # noqa: PLC0415
    from cloud.worksites.geo import PRATO_AREA  # noqa: PLC0415
    from cloud.worksites.store import NotFoundError, WorksiteStore  # noqa: PLC0415

    store = WorksiteStore.open(db or default_db_url(), area=PRATO_AREA)
    if demo_data:
        click.echo(f"demo worksites loaded: {load_demo(store, datetime.now(UTC))} new", err=True)
    for org in token_orgs:
        try:
            click.echo(f"token {org} {store.issue_token(org, 'cli')}", err=True)
        except NotFoundError as exc:
            raise click.ClickException(str(exc)) from None
    ways = []
    stop = threading.Event()
    if serve_push:
        from pydantic import ValidationError  # noqa: PLC0415

        from cloud.api.ways_in import direct_ingest, ways_in  # noqa: PLC0415
        from cloud.ingest.ledger import BatchLedger  # noqa: PLC0415
        from cloud.ingest.push import PushOptions  # noqa: PLC0415
        from cloud.settings import CloudSettings  # noqa: PLC0415

        try:
            settings = CloudSettings()
        except ValidationError as exc:
            raise click.ClickException(f"invalid SITROOM_* setting: {exc}") from None
        direct = direct_ingest(settings, max_bytes=max_body_bytes)
        options = PushOptions(max_body_bytes, rate_readings_per_s=push_rate, burst_readings=push_burst)
        ways = ways_in(direct, store, BatchLedger(store.engine), options)
        threading.Thread(target=_report, args=(direct, stop), name="push-stats", daemon=True).start()
        click.echo(f"push API: http://{host}:{port}/push/v1 (OpenAPI at /docs)", err=True)
    options_ = ApiOptions(max_body_bytes=max_body_bytes, cors_origins=cors_origins or ("*",))
    app = create_app(store, options_, ways_in=ways)
    if mqtt_url:
        from cloud.settings import broker_address  # noqa: PLC0415
        from cloud.worksites.alerts import CoordinationAlerts  # noqa: PLC0415

        alerts = CoordinationAlerts(store, broker_address(mqtt_url, mqtt_username, mqtt_password_file))
        threading.Thread(target=alerts.run, args=(stop,), name="worksite-alerts", daemon=True).start()
    console = None
    if console_dir is not None:
        from cloud.console.demo import attach_for_api  # noqa: PLC0415

        console = attach_for_api(
            app,
            store,
            console_dir,
            alerts_db=alerts_db,
            demo_operators=demo_data,
            max_body_bytes=max_body_bytes,
        ).start()
        click.echo(f"operator console: http://{host}:{port}/console/", err=True)
    try:
        # Open console event streams never end by themselves: without a grace limit, Ctrl-C
        # would wait for every browser to leave.
        uvicorn.run(
            app, host=host, port=port, log_level="info", access_log=False, timeout_graceful_shutdown=5
        )
    finally:
        stop.set()
        if console is not None:
            console.stop()


def _report(direct: DirectIngest, stop: threading.Event, interval_s: float = 10.0) -> None:
    """The HTTP ways in's counters to InfluxDB (`sitroom_ingest`, instance `http-...`)."""
    while not stop.wait(interval_s):
        direct.report()
