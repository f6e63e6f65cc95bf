"""`sitroom cloud api`: serve the HTTP API with uvicorn."""

from __future__ import annotations

from pathlib import Path

import click
from pydantic import ValidationError

from cloud.apps import demo
from cloud.apps.api import ApiOptions, ApiProcess, run_api
from cloud.core.errors import NotFoundError
from cloud.core.geo import ServiceAreas
from cloud.core.settings import broker_address, default_db_url
from cloud.ingest.push import PushOptions
from cloud.io.db import DatabaseURLError
from edge.contract.areas import AreasFileError


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
    "--areas",
    "areas_file",
    envvar="SITROOM_AREAS",
    type=click.Path(exists=True, dir_okay=False),
    help="The areas file (default: Prato alone): where worksites may lie, the console's map.",
)
@click.option(
    "--cookie-secure/--no-cookie-secure",
    "cookie_secure",
    envvar="SITROOM_CONSOLE_COOKIE_SECURE",
    default=False,
    show_default=True,
    help="Mark the console's session cookie Secure: on whenever browsers reach it over HTTPS.",
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
    envvar="SITROOM_API_PUSH",
    help="Also take data in: the push API (/push/v1) and NGSI-LD notifications "
    "(/exchange/ngsi-ld/notify), written to the InfluxDB of the SITROOM_INFLUX_* settings (a user "
    "that may write) with ingest's verdict (SITROOM_SENSOR_DIRECTORY, time limits).",
)
@click.option(
    "--push-rate",
    default=50_000.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Readings/s per organisation.",
)
@click.option(
    "--push-burst",
    default=100_000.0,
    show_default=True,
    type=click.FloatRange(min=1),
    help="Readings one organisation may send at once.",
)
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
    cookie_secure: bool,
    alerts_db: str,
    areas_file: str | None,
    serve_push: bool,
    push_rate: float,
    push_burst: float,
) -> None:
    """Serve the HTTP API: worksites, alerts, feeds (OpenAPI at /docs), the console with --console,
    the push API and NGSI-LD notifications with --push."""
    try:
        areas = ServiceAreas.load(areas_file)
    except AreasFileError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        run_api(
            ApiProcess(
                db_url=db or default_db_url(),
                alerts_db=alerts_db,
                host=host,
                port=port,
                options=ApiOptions(max_body_bytes=max_body_bytes, cors_origins=cors_origins or ("*",)),
                token_orgs=token_orgs,
                coordination_broker=(
                    broker_address(mqtt_url, mqtt_username, mqtt_password_file) if mqtt_url else None
                ),
                console_dir=console_dir,
                areas=areas,
                push=PushOptions(max_body_bytes, push_rate, push_burst) if serve_push else None,
                cookie_secure=cookie_secure,
            ),
            echo=lambda text: click.echo(text, err=True),
            seed=demo.seed if demo_data else None,
        )
    except (NotFoundError, DatabaseURLError, ValidationError) as exc:
        raise click.ClickException(str(exc)) from None
