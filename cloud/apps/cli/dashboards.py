"""`sitroom dashboards check|push`."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from cloud.apps.demo import DemoOptions, run_demo
from cloud.dashboards.build import write_all
from cloud.dashboards.check import (
    DEFAULT_RANGE_S,
    Report,
    check_live,
    check_offline,
    load_dashboards,
    provisioned_uids,
)
from cloud.dashboards.push import connect, push_dashboards
from cloud.dashboards.queries import seconds
from cloud.io.influx.client import InfluxClient

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
def push(
    directory: Path,
    url: str,
    token: str | None,
    user: str | None,
    password: str | None,
    folder_uid: str | None,
) -> None:
    """Import every dashboard into Grafana through its HTTP API (overwriting by uid)."""

    dashboards = load_dashboards(directory / "json")
    uids = push_dashboards(
        connect(url, token=token, user=user, password=password), dashboards, folder_uid=folder_uid
    )
    click.echo(f"pushed {len(uids)} dashboards: {', '.join(uids)}")


@group.command()
@click.option(
    "--dir",
    "directory",
    default=DASHBOARDS / "json",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
)
def build(directory: Path) -> None:
    """Write the generated per-theme dashboards (Parking, Traffic, Fleets, Worksites, Alerts, Pipeline)."""

    for path in write_all(directory):
        click.echo(f"wrote {path}")
