"""`sitroom dashboards check|push`."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import click

from cloud.apps.demo import DemoOptions, run_demo
from cloud.core.geo import ServiceAreas
from cloud.core.orgs import Role
from cloud.dashboards.audience import Audience
from cloud.dashboards.build import write_all
from cloud.dashboards.check import (
    DEFAULT_RANGE_S,
    Report,
    check_live,
    check_offline,
    load_dashboards,
    provisioned_uids,
)
from cloud.dashboards.push import OrgTarget, connect, push_dashboards, push_organisations
from cloud.dashboards.queries import seconds
from cloud.io.db import DatabaseURLError
from cloud.io.influx.client import InfluxClient
from cloud.io.influx.policy import DataPolicy, DataPolicyError
from cloud.io.orgstore import OrgStore
from edge.contract.areas import AreasFileError

DASHBOARDS = Path("dashboards")


@click.group()
def group() -> None:
    """Grafana dashboards as code: check them against real data, push them to Grafana."""


def _run_checks(
    directory: Path, influx: InfluxClient | None, report: Report, range_s: int = DEFAULT_RANGE_S
) -> None:
    dashboards = load_dashboards(directory / "json")
    uids = provisioned_uids(directory / "provisioning" / "datasources")
    report.dashboards = len(dashboards)
    for d in dashboards:
        report.problems.extend(check_offline(d, uids))
        if influx is not None:
            check_live(d, influx, range_s=range_s, report=report)


@group.command()
@click.option(
    "--dir",
    "directory",
    default=DASHBOARDS,
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
)
@click.option("--influx", "influx_url", help="Run every panel's query on this InfluxDB (http://host:8086).")
@click.option("--db", "database", default="sitroom", show_default=True, help="Database of --influx.")
@click.option(
    "--demo", is_flag=True, help="Run a short demo on its own servers first and check against its data."
)
@click.option(
    "--range",
    "range_text",
    default="6h",
    show_default=True,
    help="The time range the queries run over (6h, 24h, 7d, 30d: beyond 2 days they read the rollups).",
)
def check(directory: Path, influx_url: str | None, database: str, demo: bool, range_text: str) -> None:
    """Check every dashboard offline, and with --influx or --demo run every query on real data."""
    try:
        range_s = seconds(range_text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--range") from None
    report = Report()
    if demo:
        configs = sorted(Path("firmware_configs").glob("*.yaml"))
        if not configs:
            raise click.ClickException("--demo needs gateway configs in ./firmware_configs")
        with tempfile.TemporaryDirectory(prefix="sitroom-dashboards-") as tmp:
            run_demo(
                DemoOptions(
                    configs=configs,
                    data_dir=Path(tmp),
                    duration_s=25,
                    speed=300,
                    mqtt_port=None,
                    influx_port=None,
                    on_finished=lambda influx: _run_checks(directory, influx, report, range_s),
                )
            )
    elif influx_url:
        influx = InfluxClient(influx_url, database)
        try:
            _run_checks(directory, influx, report, range_s)
        finally:
            influx.close()
    else:
        _run_checks(directory, None, report)
    for problem in report.problems:
        click.echo(problem, err=True)
    click.echo(f"dashboards: {report.dashboards}, problems: {len(report.problems)}")
    click.echo(f"panels: {report.checked} checked, {report.with_data} returned data")
    if not report.ok:
        raise SystemExit(1)


@group.command()
@click.option(
    "--dir",
    "directory",
    default=DASHBOARDS,
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
)
@click.option("--grafana", "url", required=True, help="Grafana's URL, e.g. http://127.0.0.1:3000")
@click.option("--token", envvar="SITROOM_GRAFANA_TOKEN", help="API token (or SITROOM_GRAFANA_TOKEN).")
@click.option("--user", help="Basic-auth user, instead of a token.")
@click.option("--password", envvar="SITROOM_GRAFANA_PASSWORD", help="Basic-auth password.")
@click.option("--folder", "folder_uid", help="Folder uid to put the dashboards in.")
@click.option(
    "--policy",
    "policy_file",
    envvar="SITROOM_DATA_POLICY",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The data policy: push to one Grafana organisation per organisation of --registry.",
)
@click.option("--database", default="sitroom", show_default=True, help="The shared InfluxDB database.")
@click.option("--registry", envvar="SITROOM_WORKSITES_DB", help="The organisation registry (with --policy).")
@click.option(
    "--readers",
    "readers_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The readers' passwords `sitroom provision apply` kept (DIR/influx/readers.json).",
)
@click.option(
    "--influx-url", default="http://influxdb:8086", show_default=True, help="InfluxDB as Grafana reaches it."
)
@click.option(
    "--areas",
    "areas_file",
    envvar="SITROOM_AREAS",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The areas file: each organisation's maps open on its areas (default: Prato alone).",
)
def push(
    directory: Path,
    url: str,
    token: str | None,
    user: str | None,
    password: str | None,
    folder_uid: str | None,
    policy_file: Path | None,
    database: str,
    registry: str | None,
    readers_file: Path | None,
    influx_url: str,
    areas_file: Path | None,
) -> None:
    """Import every dashboard into Grafana through its HTTP API (overwriting by uid); with
    --policy, into each organisation's own Grafana organisation, as it may see them."""

    dashboards = load_dashboards(directory / "json")
    api = connect(url, token=token, user=user, password=password)
    if policy_file is None:
        uids = push_dashboards(api, dashboards, folder_uid=folder_uid)
        click.echo(f"pushed {len(uids)} dashboards: {', '.join(uids)}")
        return
    if registry is None or readers_file is None:
        raise click.UsageError("--policy needs --registry (the organisations) and --readers (passwords)")
    try:
        policy = DataPolicy.load(policy_file, database)
        targets = org_targets(registry, readers_file, ServiceAreas.load(areas_file))
    except (DataPolicyError, AreasFileError, DatabaseURLError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    for line in push_organisations(api, dashboards, policy=policy, targets=targets, influx_url=influx_url):
        click.echo(line)


def org_targets(registry: str, readers_file: Path, areas: ServiceAreas) -> list[OrgTarget]:
    """Each registered organisation with its reader and the view and time zone of its areas."""
    readers = json.loads(readers_file.read_text(encoding="utf-8"))
    store = OrgStore.open(registry)
    try:
        orgs = store.organisations()
    finally:
        store.close()
    targets = []
    for org in orgs:
        if org.id not in readers:
            raise ValueError(f"{readers_file}: no reader for {org.id!r}: run `sitroom provision apply` first")
        home = next((a for a in areas if a.id in org.areas[:1]), next(iter(areas)))
        audience = Audience(org.id, org.role is Role.MUNICIPALITY, areas.view(list(org.areas)), home.timezone)
        targets.append(OrgTarget(audience, readers[org.id]["username"], readers[org.id]["password"]))
    return targets


@group.command()
@click.option(
    "--dir",
    "directory",
    default=DASHBOARDS / "json",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
)
def build(directory: Path) -> None:
    """Write the generated per-theme dashboards (Parking, Traffic, Fleets, Public transport,
    Worksites, Alerts, Pipeline)."""

    for path in write_all(directory):
        click.echo(f"wrote {path}")
