"""`sitroom gateway run|check-config|meta|spool|schema`."""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from datetime import datetime
from pathlib import Path
from types import FrameType

import click

from edge.contract.areas import AREAS_ENV, Areas, AreasFileError, load_areas
from edge.simulators.clock import Clock, SimClock, WallClock
from gateway.agent import Agent
from gateway.config import ConfigError, json_schema, load
from gateway.meta import meta_payload
from gateway.remote_config import version_of
from gateway.spool import Spool

log = logging.getLogger(__name__)


@click.group()
def group() -> None:
    """The street gateway agent."""


def make_clock(speed: float, sim_start: datetime | None, duration_s: float | None) -> Clock:
    if speed == 1 and sim_start is None:
        return WallClock()
    if sim_start is not None:
        return SimClock(speed, sim_start)
    # Without a start, replay the past so that the run ends at the present (never in the future).
    return SimClock.replaying(speed, horizon_s=duration_s or 3600.0)


_areas_option = click.option(
    "--areas",
    "areas_file",
    envvar=AREAS_ENV,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The deployment's areas file: where gateways may stand (default: Prato alone).",
)


def _load_areas(path: Path | None) -> Areas:
    try:
        return load_areas(path)
    except AreasFileError as exc:
        raise click.ClickException(str(exc)) from None


@group.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--broker", "broker_url", help="Override the config's broker URL (mqtt://host:port).")
@click.option(
    "--speed", default=1.0, show_default=True, type=click.FloatRange(min=1), help="Simulation speed."
)
@click.option("--sim-start", type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z"]), help="Simulated start (aware).")
@click.option("--duration", "duration_s", type=click.FloatRange(min=0), help="Stop after this many seconds.")
@click.option(
    "--state-dir",
    default=Path(".sitroom/gateway"),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the gateway keeps its spool, sequence number and last remote config.",
)
@click.option("--seed", default=0, show_default=True, help="Seed of the simulated sensors.")
@_areas_option
def run(
    config_path: Path,
    broker_url: str | None,
    speed: float,
    sim_start: datetime | None,
    duration_s: float | None,
    state_dir: Path,
    seed: int,
    areas_file: Path | None,
) -> None:
    """Run a gateway: read its sensors and stream their readings to the broker."""
    try:
        config = load(config_path, _load_areas(areas_file))
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    agent = Agent(
        config,
        clock=make_clock(speed, sim_start, duration_s),
        state_dir=state_dir,
        broker_url=broker_url,
        seed=seed,
    )
    counters = agent.run(stop, duration_s)
    click.echo(
        f"gateway {config.id}: read {counters.readings_read}, "
        f"published {counters.readings_published} readings in {counters.batches_published} batches",
        err=True,
    )


@group.command("check-config")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@_areas_option
def check_config(files: tuple[Path, ...], areas_file: Path | None) -> None:
    """Validate gateway configs; print every problem with its file, field path and value."""
    areas = _load_areas(areas_file)
    failed = False
    for path in files:
        try:
            config = load(path, areas)
        except ConfigError as exc:
            failed = True
            click.echo(str(exc), err=True)
            continue
        click.echo(f"{path}: ok ({config.org}/{config.id}, {len(config.sensors)} sensors)")
    if failed:
        raise SystemExit(1)


@group.command("meta")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
def meta_command(files: tuple[Path, ...]) -> None:
    """Print what each config's gateway declares on its retained meta (one JSON per line).

    The same bytes `sitroom gateway run` publishes on sr/v1/{org}/{gateway}/meta: each sensor's
    id, kind and driver (a source's devices too). `sitroom exchange export` reads the kinds of
    configured sensors from it, as ingest learns them from the broker.
    """
    failed = False
    for path in files:
        try:
            config = load(path)
        except ConfigError as exc:
            failed = True
            click.echo(str(exc), err=True)
            continue
        click.echo(meta_payload(config, version_of(config)).decode())
    if failed:
        raise SystemExit(1)


@group.command("spool")
@click.option(
    "--state-dir",
    default=Path(".sitroom/gateway"),
    show_default=True,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
)
def spool_command(state_dir: Path) -> None:
    """Show what each gateway's spool in STATE_DIR holds (safe while the gateway runs)."""
    paths = sorted(state_dir.glob("*.spool.sqlite"))
    if not paths:
        raise click.ClickException(f"no spool in {state_dir}")
    for path in paths:
        spool = Spool(path)
        try:
            oldest = spool.oldest_created_s()
            age = "-" if oldest is None else f"{max(0.0, time.time() - oldest):.0f} s"
            queued = spool.message_readings + spool.staged_readings
            click.echo(
                f"{path.name.removesuffix('.spool.sqlite')}: {queued:,} "
                f"readings queued ({spool.messages:,} messages, {spool.staged_readings:,} staged), "
                f"oldest {age}, {spool.file_bytes() / 1_048_576:.1f} MB on disk, next seq {spool.next_seq}, "
                f"dropped {spool.dropped_readings:,} readings"
            )
        finally:
            spool.close()


@group.command()
def schema() -> None:
    """Print the JSON Schema of gateway config files (for editors: yaml-language-server)."""
    click.echo(json.dumps(json_schema(), indent=2))
