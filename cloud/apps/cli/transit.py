"""`sitroom transit import|feeds|routes|stops|show|read`: GTFS feeds and the GTFS-Realtime reader.

The commands work on the relational store directly (`--db`, or `SITROOM_TRANSIT_DB`); the API
serves `/feeds/transit/...` from its own database (`sitroom cloud api --db`), so import into
that one. Imports are lazy: `sitroom --help` must not load SQLAlchemy or protobuf.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import httpx
import sqlalchemy as sa
from pydantic import ValidationError

from cloud.core.settings import CloudSettings, default_db_url
from cloud.io.db import DatabaseURLError
from cloud.transit import network, schema
from cloud.transit.realtime.config import ReaderConfigError, load_config
from cloud.transit.realtime.publisher import Publisher
from cloud.transit.realtime.reader import TransitReader
from cloud.transit.realtime.rtstore import RealtimeStore
from cloud.transit.store import TransitStore, UnknownError
from edge.contract.gtfs.static import Area, FeedError

if TYPE_CHECKING:
    from cloud.transit.store import TransitStore

DB_HELP = "The relational store: sqlite:///PATH or postgresql://user@host/db (default: the API's)."
# Tuscany with a margin: the regional operator's feeds cover it all. A stop outside is a typo
# (swapped latitude and longitude, a lost minus sign, another region's feed).
DEFAULT_AREA = "9.6,42.2,12.5,44.6"


def _open(db: str | None) -> TransitStore:
    try:
        return TransitStore.open(db or default_db_url())
    except DatabaseURLError as exc:
        raise click.ClickException(str(exc)) from None


def _fail(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc))


db_option = click.option("--db", envvar="SITROOM_TRANSIT_DB", help=DB_HELP)
operator_option = click.option("--operator", help="The operator (default: the only one imported).")


@click.group()
def group() -> None:
    """Public transport: GTFS feeds per operator, and the GTFS-Realtime feed reader."""


@group.command("import")
@click.argument("feed")
@click.option("--operator", help="The operator's id, e.g. autolinee-toscane (default: the feed's agency_id).")
@click.option("--area", default=DEFAULT_AREA, show_default=True, help="min_lon,min_lat,max_lon,max_lat.")
@click.option("--timeout", "timeout_s", default=120.0, show_default=True, help="For an http(s) FEED.")
@db_option
def import_command(feed: str, operator: str | None, area: str, timeout_s: float, db: str | None) -> None:
    """Import a GTFS feed (a zip file, a folder of .txt files or an http(s) URL) as the operator's
    new version. A new version replaces the old one at once; a feed with problems is refused
    with each one's file, line and column, and the old version stays."""

    try:
        box = Area(*(float(v) for v in area.split(",")))
    except (TypeError, ValueError):
        raise click.BadParameter(
            f"{area!r} is not min_lon,min_lat,max_lon,max_lat", param_hint="--area"
        ) from None
    source = _fetch(feed, timeout_s) if feed.startswith(("http://", "https://")) else Path(feed)
    if isinstance(source, Path) and not source.exists():
        raise click.BadParameter(f"{feed}: no such file or folder", param_hint="FEED")
    store = _open(db)
    last = [time.monotonic()]

    def progress(table: str, rows: int) -> None:
        if time.monotonic() - last[0] >= 1.0:
            click.echo(f"  {table}: {rows:,} rows", err=True)
            last[0] = time.monotonic()

    try:
        result = store.import_feed(source, operator=operator, area=box, source_name=feed, progress=progress)
    except FeedError as exc:
        click.echo(f"{feed}: refused, the current version (if any) is unchanged:", err=True)
        for problem in exc.problems:
            click.echo(f"  {problem}", err=True)
        if exc.truncated:
            click.echo(f"  ... and more (stopped after {len(exc.problems)})", err=True)
        sys.exit(1)
    except ValueError as exc:
        raise _fail(exc) from None
    finally:
        store.close()
    f = result.feed
    if result.is_unchanged:
        click.echo(
            f"{f.operator}: unchanged, version {f.version} (imported {f.imported_at:%Y-%m-%d %H:%M} UTC)"
        )
        return
    counts = ", ".join(f"{n:,} {table}" for table, n in f.counts.items())
    replaced = f" (replaces version {result.replaced.version})" if result.replaced else ""
    click.echo(f"{f.operator}: version {f.version}{replaced} in {result.seconds:.1f} s: {counts}")


def _fetch(url: str, timeout_s: float) -> bytes:
    try:
        response = httpx.get(url, timeout=timeout_s, follow_redirects=True)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise click.ClickException(f"cannot fetch {url}: {exc}") from None
    return response.content


@group.command("feeds")
@click.option("--operator", help="One operator's versions.")
@db_option
def feeds_command(operator: str | None, db: str | None) -> None:
    """List the imported feed versions (the current one per operator, and the replaced ones)."""
    store = _open(db)
    try:
        for f in store.feeds(operator):
            total = sum(f.counts.values())
            click.echo(
                f"{f.operator:24} v{f.version:<4} {f.status:9} {f.imported_at:%Y-%m-%d %H:%M} "
                f"{total:>9,} rows  {f.source}"
            )
    finally:
        store.close()


@group.command("routes")
@operator_option
@db_option
def routes_command(operator: str | None, db: str | None) -> None:
    """List the routes of the current feeds."""

    store = _open(db)
    try:
        for r in network.routes(store, operator):
            click.echo(f"{r.operator:20} {r.route_id:16} {r.name:12} {r.trips:6} trips  {r.long_name}")
    except UnknownError as exc:
        raise _fail(exc) from None
    finally:
        store.close()


@group.command("stops")
@operator_option
@click.option("--route", help="Only the stops this route serves.")
@db_option
def stops_command(operator: str | None, route: str | None, db: str | None) -> None:
    """List the stops of the current feeds, with the routes serving each."""

    store = _open(db)
    try:
        for s in network.stops(store, operator):
            if route is None or route in s.routes:
                where = f"{s.lat:.5f},{s.lon:.5f}" if s.lat is not None and s.lon is not None else "-"
                click.echo(f"{s.stop_id:18} {s.name:36} {where:20} {' '.join(s.routes)}")
    except UnknownError as exc:
        raise _fail(exc) from None
    finally:
        store.close()


@group.command("show")
@click.argument("what")
@operator_option
@db_option
def show_command(what: str, operator: str | None, db: str | None) -> None:
    """Show a route (its stops by direction), a stop (its routes) or a trip (its timetable)."""

    store = _open(db)
    try:
        feed = store.current_feed(operator)
        routes = {r.route_id: r for r in network.routes(store, feed.operator)}
        stops = {s.stop_id: s for s in network.stops(store, feed.operator)}
        if what in routes:
            _show_route(store, feed.operator, routes[what], stops)
        elif what in stops:
            s = stops[what]
            click.echo(f"stop {s.stop_id}: {s.name} at {s.lat}, {s.lon}")
            for route_id in s.routes:
                click.echo(f"  route {route_id:16} {routes[route_id].name} {routes[route_id].long_name}")
        else:
            _show_trip(store, feed.operator, what, sorted(routes))
    except UnknownError as exc:
        raise _fail(exc) from None
    finally:
        store.close()


def _show_route(store: TransitStore, operator: str, route: Any, stops: dict[str, Any]) -> None:
    click.echo(f"route {route.route_id}: {route.name} {route.long_name} ({route.trips} trips)")
    feed = store.current_feed(operator)
    t = schema.trips
    q = (
        sa.select(t.c.direction_id, sa.func.min(t.c.trip_id), sa.func.count())
        .where(t.c.feed_id == feed.id, t.c.route_id == route.route_id)
        .group_by(t.c.direction_id)
        .order_by(t.c.direction_id)
    )
    with store.engine.connect() as conn:
        directions = list(conn.execute(q))
    for direction, trip_id, n in directions:
        click.echo(f"  direction {direction if direction is not None else '-'} ({n} trips), e.g. {trip_id}:")
        for ts in network.trip_stops(store, operator, trip_id):
            click.echo(f"    {ts.stop_sequence:4} {ts.stop_id:18} {stops[ts.stop_id].name}")


def _show_trip(store: TransitStore, operator: str, trip_id: str, routes: list[str]) -> None:
    trip = network.trip_stops(store, operator, trip_id)
    if not trip:
        raise UnknownError("route, stop or trip", trip_id, routes)
    click.echo(f"trip {trip_id}:")
    for ts in trip:
        times = f"{ts.arrival:>8} {ts.departure:>8}"
        click.echo(f"  {ts.stop_sequence:4} {times}  {ts.stop_id:18} {ts.stop_name}")


@group.command("read")
@click.argument("config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@db_option
def read_command(config_file: Path, db: str | None) -> None:
    """Run the GTFS-Realtime reader of CONFIG_FILE (see cloud/transit/sample-reader.yaml):
    poll the operator's feeds and publish their readings to the broker of the SITROOM_MQTT_*
    settings, as a gateway does."""

    try:
        config = load_config(config_file)
        settings = CloudSettings()
    except (ReaderConfigError, ValidationError) as exc:
        raise _fail(exc) from None
    store = _open(db)
    try:
        reader = TransitReader(config, store, Publisher(settings.broker, config.operator, config.source))
    except UnknownError as exc:
        store.close()
        raise click.ClickException(
            f"{exc}: import the operator's static GTFS first (sitroom transit import FEED --operator "
            f"{config.operator})"
        ) from None
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    click.echo(
        f"reading {len(config.feeds)} feed(s) of {config.operator} every {config.interval_s:g} s", err=True
    )
    try:
        reader.run(stop)
    finally:
        store.close()


@group.command("alerts")
@click.option("--source", default="gtfs-rt", show_default=True, help="The reader's source id.")
@click.option("--all", "show_all", is_flag=True, help="Also the alerts that ended.")
@db_option
def alerts_command(source: str, show_all: bool, db: str | None) -> None:
    """List the service alerts a reader keeps, with what they inform about."""

    store = _open(db)
    try:
        for a in RealtimeStore(store.engine, source, "").alerts(active_only=not show_all):
            about = ", ".join(f"{k}={v}" for ie in a["informed"] for k, v in ie.items())
            state = "ended" if a["ended_ms"] else "active"
            click.echo(f"{a['alert_id']:24} {state:6} {a['effect'] or '-':18} {a['header_text']}  [{about}]")
    finally:
        store.close()
