"""`sitroom cloud ingest|rules` and `sitroom demo`."""

from __future__ import annotations

import signal
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

import click
import orjson
from pydantic import ValidationError

from cloud.apps.cli.api import api_command
from cloud.apps.demo import DemoError, DemoOptions, default_data_dir, gateways_in, run_demo
from cloud.apps.ingest import build_ingest
from cloud.apps.rules import RulesSetupError, build_rules_service
from cloud.core.alerts import AlertNotFoundError
from cloud.core.lifecycle import InvalidTransitionError
from cloud.core.settings import CloudSettings
from cloud.rules.store import AlertStore
from edge.contract.areas import AreasFileError, load_areas


def _settings() -> CloudSettings:
    try:
        return CloudSettings()
    except ValidationError as exc:
        raise click.ClickException(f"invalid SITROOM_* setting: {exc}") from None


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop


@click.group()
def group() -> None:
    """Cloud services: ingest, rules, the API and its alert store. Settings: SITROOM_* variables."""


@group.command()
def ingest() -> None:
    """Consume gateway data from MQTT, validate it, write it to InfluxDB; bad input to dead-letter."""
    settings = _settings()
    stop = _stop_on_signals()
    build_ingest(settings).run(stop)


ALERTS_DB_HELP = "Alert store: sqlite:///PATH or postgresql://user@host/db."
DEFAULT_ALERTS_DB = "sqlite:///.sitroom/alerts.db"


@group.command()
@click.option("--rules", "rules_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--alerts-db",
    envvar="SITROOM_ALERTS_DB",
    default=DEFAULT_ALERTS_DB,
    show_default=True,
    help=ALERTS_DB_HELP,
)
@click.option(
    "--reload/--no-reload", default=True, show_default=True, help="Reload the rules file when it changes."
)
def rules(rules_file: Path | None, alerts_db: str, reload: bool) -> None:
    """Evaluate the rules on the live stream; store, publish and notify alerts."""
    settings = _settings()
    try:
        service = build_rules_service(settings, rules_file=rules_file, alerts_db=alerts_db, reload=reload)
    except RulesSetupError as exc:
        raise click.ClickException(str(exc)) from None
    service.run(_stop_on_signals())


@group.group()
def alerts() -> None:
    """Alerts in the alert store: list, acknowledge, resolve, silence."""


def _store(url: str) -> AlertStore:
    return AlertStore(url)


@alerts.command("list")
@click.option("--alerts-db", envvar="SITROOM_ALERTS_DB", default=DEFAULT_ALERTS_DB, show_default=True)
@click.option("--org", help="Only this organisation's alerts.")
@click.option("--all", "show_all", is_flag=True, help="History too, not only active alerts.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def alerts_list(alerts_db: str, org: str | None, show_all: bool, as_json: bool) -> None:
    """Active alerts (or the history with --all), newest last."""
    store = _store(alerts_db)
    found = store.history(org, limit=1000)[::-1] if show_all else store.active(org)
    for a in found:
        if as_json:
            click.echo(orjson.dumps(a.to_dict()).decode())
        else:
            head = f"{a.id:>6} {a.state:<12} {a.severity:<8} {a.rule} {a.org}/{a.entity}"
            click.echo(f"{head} since {a.since:%Y-%m-%d %H:%M}Z: {a.message}")


def _move(alerts_db: str, alert_id: int, verb: str, by: str, note: str) -> None:

    store = _store(alerts_db)
    try:
        t = (store.acknowledge if verb == "ack" else store.resolve)(alert_id, by=by, note=note)
    except (AlertNotFoundError, InvalidTransitionError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"alert {alert_id}: {t.alert.state}" + (" (already)" if t.outcome == "unchanged" else ""))


@alerts.command("ack")
@click.argument("alert_id", type=int)
@click.option("--by", required=True, help="Who acknowledges (recorded in the history).")
@click.option("--note", default="")
@click.option("--alerts-db", envvar="SITROOM_ALERTS_DB", default=DEFAULT_ALERTS_DB, show_default=True)
def alerts_ack(alert_id: int, by: str, note: str, alerts_db: str) -> None:
    """Acknowledge an active alert: someone is on it."""
    _move(alerts_db, alert_id, "ack", by, note)


@alerts.command("resolve")
@click.argument("alert_id", type=int)
@click.option("--by", required=True, help="Who resolves (recorded in the history).")
@click.option("--note", default="")
@click.option("--alerts-db", envvar="SITROOM_ALERTS_DB", default=DEFAULT_ALERTS_DB, show_default=True)
def alerts_resolve(alert_id: int, by: str, note: str, alerts_db: str) -> None:
    """Resolve an alert by hand; the same condition firing later opens a new alert."""
    _move(alerts_db, alert_id, "resolve", by, note)


@alerts.command("silence")
@click.option(
    "--hours", type=click.FloatRange(min=0, min_open=True), required=True, help="From now, for this long."
)
@click.option("--reason", required=True)
@click.option("--by", required=True)
@click.option("--maintenance", is_flag=True, help="Record it as a maintenance window.")
@click.option("--org")
@click.option("--rule")
@click.option("--entity")
@click.option("--gateway")
@click.option("--alerts-db", envvar="SITROOM_ALERTS_DB", default=DEFAULT_ALERTS_DB, show_default=True)
def alerts_silence(
    hours: float,
    reason: str,
    by: str,
    maintenance: bool,
    org: str | None,
    rule: str | None,
    entity: str | None,
    gateway: str | None,
    alerts_db: str,
) -> None:
    """Silence matching alerts (stored, not notified) for a while, or declare maintenance."""
    now = datetime.now(UTC)
    s = _store(alerts_db).add_silence(
        starts_at=now,
        ends_at=now + timedelta(hours=hours),
        reason=reason,
        created_by=by,
        kind="maintenance" if maintenance else "silence",
        org=org,
        rule=rule,
        entity=entity,
        gateway=gateway,
    )
    click.echo(f"{s.kind} {s.id} until {s.ends_at:%Y-%m-%d %H:%M}Z")


@click.command("demo")
@click.option("--duration", "duration_s", type=click.FloatRange(min=1), help="Stop after this many seconds.")
@click.option(
    "--speed",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=1),
    help="Simulated seconds per second.",
)
@click.option("--summary", type=click.Path(dir_okay=False, path_type=Path), help="Write a JSON summary here.")
@click.option(
    "--picture",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Draw the run (PNG). Default: beside --summary, with .png.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Default: ~/.local/share/sitroom/demo",
)
@click.option(
    "--configs",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=Path("firmware_configs"),
    show_default=True,
    help="Folder of gateway configs to run.",
)
@click.option("--seed", default=0, show_default=True)
@click.option(
    "--transit-feed",
    type=click.Path(exists=True, path_type=Path),
    help="A GTFS feed (zip or folder) for the bus operator's simulated feeds (default: the Prato network).",
)
@click.option(
    "--areas",
    "areas_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The areas served (default: Prato alone; deploy/areas/prato-florence.yaml adds the Florence plain).",
)
@click.option(
    "--fresh",
    is_flag=True,
    help="Start from an empty data folder. Default: keep the worksites, console and alert history "
    "of earlier runs, recovering what a crash damaged and moving the rest aside.",
)
def demo_command(
    duration_s: float | None,
    speed: float,
    summary: Path | None,
    picture: Path | None,
    data_dir: Path | None,
    configs: Path,
    seed: int,
    transit_feed: Path | None,
    areas_file: Path | None,
    fresh: bool,
) -> None:
    """Run a simulated Prato (and Florence plain, with --areas) end to end on servers of its own."""
    files = sorted(configs.glob("*.yaml"))
    if not files:
        raise click.ClickException(f"no gateway configs (*.yaml) in {configs}")
    try:
        areas = load_areas(areas_file)
    except AreasFileError as exc:
        raise click.ClickException(str(exc)) from None
    files, outside = gateways_in(files, areas)
    for path, why in outside:
        click.echo(f"skipping {path}: {why}", err=True)
    if not files:
        raise click.ClickException(f"no gateway config of {configs} stands in the areas of {areas.source}")
    try:
        result = run_demo(
            DemoOptions(
                configs=files,
                data_dir=(data_dir or default_data_dir()).resolve(),
                duration_s=duration_s,
                speed=speed,
                seed=seed,
                summary=summary,
                picture=picture or (summary.with_suffix(".png") if summary else None),
                areas_file=areas_file.resolve() if areas_file else None,
                fresh=fresh,
                transit_feed=transit_feed.resolve() if transit_feed is not None else None,
            )
        )
    except DemoError as exc:
        raise click.ClickException(str(exc)) from None
    if not result or result["readings_stored"] < result["readings_published"]:
        raise SystemExit(1)


group.add_command(api_command)  # `sitroom cloud api` (cloud/apps/api_cli.py)
