"""`sitroom exchange export|publish|subscribe`: our entities out as NGSI-LD, a partner's in."""

from __future__ import annotations

import hashlib
import logging
import signal
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import click

from cloud.apps.exchange import DeclarationsError, ExportSources, exporter
from cloud.exchange.broker import BrokerError, ContextBroker, RetryableBrokerError, subscription
from cloud.exchange.export import Export, Form
from cloud.exchange.publisher import Publisher
from cloud.exchange.readings import MAPPINGS
from cloud.io.influx.client import InfluxClient

log = logging.getLogger(__name__)


def _catalogue_options(f: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--configs",
            type=click.Path(file_okay=False, path_type=Path),
            default=Path("firmware_configs"),
            show_default=True,
            help="Folder of gateway configs: which sensors exist, of which kind, where.",
        ),
        click.option(
            "--influx-url",
            envvar="SITROOM_INFLUX_URL",
            help="InfluxDB with the readings (their latest values); none: no measured values.",
        ),
        click.option("--influx-db", envvar="SITROOM_INFLUX_DB", default="sitroom", show_default=True),
        click.option("--influx-username", envvar="SITROOM_INFLUX_USERNAME"),
        click.option("--influx-password", envvar="SITROOM_INFLUX_PASSWORD"),
        click.option(
            "--worksites-db",
            envvar="SITROOM_WORKSITES_DB",
            help="The worksite registry (sqlite:///PATH or postgresql://...); none: Prato's demo worksites.",
        ),
        click.option(
            "--since-days", default=7.0, show_default=True, help="Readings older than this are stale."
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@contextmanager
def _export(opts: dict[str, Any]) -> Iterator[Callable[[], Export]]:
    """The export of the sources the options name, computed afresh on each call."""
    influx = None
    if opts["influx_url"]:
        influx = InfluxClient(
            opts["influx_url"],
            opts["influx_db"],
            username=opts["influx_username"],
            password=opts["influx_password"],
        )
    sources = ExportSources(
        config_dir=opts["configs"],
        influx=influx,
        worksites_db=opts["worksites_db"],
        since=timedelta(days=opts["since_days"]),
    )
    try:
        with exporter(sources) as compute:
            yield compute
    except DeclarationsError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        if influx is not None:
            influx.close()


@click.group()
def group() -> None:
    """Exchange data with partners in their standards: NGSI-LD, FIWARE Smart Data Models."""


@group.command("export")
@click.option("--format", "format_", type=click.Choice(["ngsi-ld"]), default="ngsi-ld", show_default=True)
@click.option(
    "--form", type=click.Choice(["keyvalues", "normalized"]), default="keyvalues", show_default=True
)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Default: stdout.")
@_catalogue_options
def export_command(format_: str, form: str, output: Path | None, **opts: Any) -> None:
    """Every entity the Situation Room knows, as a JSON array of NGSI-LD entities.

    Car parks (OffStreetParking), bays (ParkingSpot), counters (TrafficFlowObserved), vehicles
    (Vehicle, FleetVehicleStatus) and worksites (CityWork); with nothing configured, the demo's.
    """
    with _export(opts) as compute:
        result = compute()
    data = result.to_json(Form(form))
    if output is None:
        sys.stdout.buffer.write(data)
    else:
        output.write_bytes(data)
    types = Counter(e.type for e in result.entities)
    summary = ", ".join(f"{n} {t}" for t, n in sorted(types.items()))
    click.echo(f"exported {len(result.entities)} entities ({summary})", err=True)
    if result.skipped:
        reasons = Counter(s.reason for s in result.skipped)
        for reason, n in reasons.most_common():
            click.echo(f"  not exported: {n} x {reason}", err=True)


def _token(path: Path | None) -> str | None:
    return path.read_text(encoding="utf-8").strip() if path else None


@group.command("publish")
@click.option("--broker", "broker_url", required=True, help="The context broker, e.g. http://orion-ld:1026")
@click.option("--broker-token-file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--tenant", help="NGSI-LD tenant at the broker (NGSILD-Tenant).")
@click.option("--interval-s", default=10.0, show_default=True)
@click.option("--batch-size", default=100, show_default=True, type=click.IntRange(1, 1000))
@click.option(
    "--once", is_flag=True, help="Send what changed once, then exit (non-zero if the broker failed)."
)
@_catalogue_options
def publish_command(
    broker_url: str,
    broker_token_file: Path | None,
    tenant: str | None,
    interval_s: float,
    batch_size: int,
    once: bool,
    **opts: Any,
) -> None:
    """Keep a context broker up to date with our entities (NGSI-LD batch upsert of what changed)."""
    with _export(opts) as compute:
        _publish(compute, broker_url, broker_token_file, tenant, interval_s, batch_size, once=once)


def _publish(
    compute: Callable[[], Export],
    broker_url: str,
    broker_token_file: Path | None,
    tenant: str | None,
    interval_s: float,
    batch_size: int,
    *,
    once: bool,
) -> None:
    broker = ContextBroker(broker_url, tenant=tenant, token=_token(broker_token_file))
    publisher = Publisher(broker, lambda: compute().entities, interval_s=interval_s, batch_size=batch_size)
    try:
        if once:
            pending = publisher.refresh()
            try:
                publisher.flush()
            except RetryableBrokerError as exc:
                raise click.ClickException(f"{exc}; {len(publisher.pending)} entities not sent") from None
            s = publisher.stats
            click.echo(
                f"{pending} changed: {s.upserted} upserted, {s.refused} refused by the broker", err=True
            )
            return
        stop = threading.Event()

        def handler(_signum: int, _frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)
        publisher.run(stop)
    finally:
        broker.close()


@group.command("subscribe")
@click.option("--broker", "broker_url", required=True, help="The partner's context broker.")
@click.option("--broker-token-file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--tenant", help="NGSI-LD tenant at the partner's broker.")
@click.option(
    "--notify-url",
    required=True,
    help="Our notification endpoint as the partner's broker reaches it, e.g. "
    "https://sitroom.example.org/exchange/ngsi-ld/notify",
)
@click.option(
    "--token-file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The partner organisation's API token (ours, issued to them): the broker sends it back.",
)
@click.option(
    "--type", "types", multiple=True, help="Entity type to receive (repeatable); default: all we read."
)
@click.option("--id", "sub_id", help="Subscription id; default: derived from the URL and types (idempotent).")
@click.option("--throttling-s", type=click.IntRange(min=1), help="At most one notification per this many s.")
def subscribe_command(
    broker_url: str,
    broker_token_file: Path | None,
    tenant: str | None,
    notify_url: str,
    token_file: Path,
    types: tuple[str, ...],
    sub_id: str | None,
    throttling_s: int | None,
) -> None:
    """Register our subscription on a partner's context broker (again: brought up to date)."""
    chosen = sorted(types or MAPPINGS)
    unknown = [t for t in chosen if t not in MAPPINGS]
    if unknown:
        raise click.BadParameter(
            f"{', '.join(unknown)}; known: {', '.join(sorted(MAPPINGS))}", param_hint="--type"
        )
    digest = hashlib.sha256(f"{notify_url}\n{','.join(chosen)}".encode()).hexdigest()[:16]
    sub = subscription(
        sub_id=sub_id or f"urn:ngsi-ld:Subscription:sitroom:{digest}",
        types=chosen,
        notify_url=notify_url,
        token=_token(token_file) or "",
        throttling_s=throttling_s,
    )
    broker = ContextBroker(broker_url, tenant=tenant, token=_token(broker_token_file))
    try:
        made = broker.subscribe(sub)
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        broker.close()
    click.echo(f"subscribed {made}: {', '.join(chosen)} -> {notify_url}")


__all__ = ["group"]
