"""The `sitroom` command: its root, `sitroom edge ...`, and the groups other packages mount.

`gateway` and `cloud` add their command groups through the `sitroom.cli` entry-point group
(pyproject.toml), so this module never imports them: the arrows point `gateway → edge ← cloud`.

`sitroom edge decode DRIVER FILE|-` is the technician's tool: a raw capture in, canonical
readings out as JSON lines on stdout, rejects on stderr with line number and reason.
`sitroom edge tail DRIVER --port ...` does the same on a live device.
"""

from __future__ import annotations

import ast
import importlib.util
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, BinaryIO

import click
import orjson
import yaml
from pydantic import ValidationError

from edge.contract import ContractError, Reading, decode
from edge.drivers import (
    DecodingDriver,
    DriverConfig,
    NotADecoderError,
    SourceContext,
    UnknownDriverError,
    decoding_drivers,
    get_decoding,
    stats_of,
)
from edge.drivers import (
    get as get_driver,
)
from edge.drivers.framing import DecoderOutput, RejectedInput
from edge.drivers.vectors import sample_configs
from edge.simulators.clock import SimClock
from edge.simulators.devices import (
    ChirpStackUplinks,
    VirtualDevice,
    counter_record,
    gps_sentences,
    serial_sink,
)
from edge.transports.pty import VirtualSerialPort

_CHUNK = 65536


class _Root(click.Group):
    """The one lazy group: the other packages' command groups are imported only when run, so
    that `sitroom gateway run` on a street box loads none of the cloud and their modules keep
    their imports at the top. `sitroom --help` reads each group's help from its source."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *(ep.name for ep in entry_points(group="sitroom.cli"))})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = super().get_command(ctx, cmd_name)
        if found is not None:
            return found
        for ep in entry_points(group="sitroom.cli"):
            if ep.name == cmd_name:
                loaded = ep.load()
                if isinstance(loaded, click.Command):
                    return loaded
        return None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, cmd.get_short_help_str(limit=80)) for name, cmd in self.commands.items()]
        rows += [(ep.name, _short_help(ep.value)) for ep in entry_points(group="sitroom.cli")]
        with formatter.section("Commands"):
            formatter.write_dl(sorted(rows))


def _short_help(target: str) -> str:
    """The first sentence of the docstring of `module:function`, read from the source with `ast`
    (not imported: importing every package would make `sitroom --help` take seconds)."""
    module, _, attr = target.partition(":")
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return ""
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == attr:
            doc = ast.get_docstring(node) or ""
            first = " ".join(doc.split("\n\n")[0].split())
            return first.split(". ")[0].rstrip(".")
    return ""


@click.group(cls=_Root)
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def root(verbose: int) -> None:
    """Situation Room: mobility data of a city, from street sensors to the control room."""
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(
        level=max(level, logging.DEBUG),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@root.group()
def edge() -> None:
    """Tools for the wire contract and the device drivers."""


def _driver(name: str) -> type[DecodingDriver]:
    try:
        return get_decoding(name)
    except (UnknownDriverError, NotADecoderError) as exc:
        raise click.BadParameter(str(exc.args[0]) if exc.args else str(exc), param_hint="DRIVER") from None


def _config(name: str, config_file: Path | None, overrides: dict[str, Any]) -> DriverConfig:
    """The driver's config: `--config` (one sensor entry) or sample.yaml's first, plus options."""
    driver = _driver(name)
    if config_file is not None:
        raw = yaml.safe_load(config_file.read_text(encoding="utf-8"))
        if isinstance(raw, dict) and "sensors" in raw:
            raw = next((s for s in raw["sensors"] if s.get("driver") == name), None)
        if not isinstance(raw, dict):
            raise click.BadParameter(f"no {name} sensor entry in {config_file}", param_hint="--config")
        entry = raw
    else:
        # Only the required options of the sample entry: no tags or device names a capture
        # from elsewhere would wrongly inherit.
        sample = sample_configs(name)[0]
        required = [k for k, f in driver.Config.model_fields.items() if f.is_required()]
        entry = {**{k: getattr(sample, k) for k in required}, "id": "capture"}
    entry = {**entry, **{k: v for k, v in overrides.items() if v is not None}, "driver": name}
    try:
        return driver.Config.model_validate(entry)
    except ValidationError as exc:
        raise click.UsageError(f"{name} config: {exc}") from None


def _json_line(r: Reading) -> bytes:
    out: dict[str, Any] = {
        "ts": r.ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "kind": r.kind.value,
        "sensor": r.sensor,
        "fields": r.fields,
    }
    if r.tags:
        out["tags"] = r.tags
    return orjson.dumps(out) + b"\n"


def _report(decoded: DecoderOutput, out: BinaryIO, line: int | None = None) -> None:
    for r in decoded.readings:
        out.write(_json_line(r))
    out.flush()
    # Framing rejects are found before the sentences' own: report all in line order.
    for rej in sorted(decoded.rejects, key=lambda r: r.line or 0):
        _reject(rej, rej.line if rej.line is not None else line)


def _reject(rej: RejectedInput, line: int | None) -> None:
    where = f"line {line}: " if line is not None else ""
    raw = rej.raw.decode("latin-1")[:100]
    click.echo(f"{where}{rej.reason}: {rej.detail}  [{raw!r}]", err=True)


def _chunks(stream: BinaryIO) -> Iterator[bytes]:
    read = getattr(stream, "read1", stream.read)
    while chunk := read(_CHUNK):
        yield chunk


def _events(stream: BinaryIO) -> Iterator[tuple[int | None, bytes]]:
    """ChirpStack events: one per file (pretty-printed JSON) or one per line (JSON lines)."""
    data = stream.read()
    try:
        whole = orjson.loads(data)
    except orjson.JSONDecodeError:
        whole = None
    if isinstance(whole, dict):
        yield None, data
        return
    for n, line in enumerate(data.splitlines(), start=1):
        if line.strip():
            yield n, line


@edge.command("decode")
@click.argument("driver_name", metavar="DRIVER")
@click.argument("file", type=click.File("rb"))
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A YAML sensor entry (or gateway config) for the driver; default: its sample.yaml.",
)
@click.option("--sensor", help="Sensor id of the readings (default: the config's id).")
@click.option(
    "--stats", "show_stats", is_flag=True, help="Print the decoder's counters on stderr at the end."
)
def decode_command(
    driver_name: str, file: BinaryIO, config_file: Path | None, sensor: str | None, show_stats: bool
) -> None:
    """Decode a raw capture (FILE, or - for stdin) into readings, one JSON line each.

    DRIVER is nmea, traffic_counter (serial captures) or bosch_parking (ChirpStack uplink events,
    one JSON per line or one per file). Rejected input goes to stderr with its line number and
    reason; the exit status is 0 whenever the input could be read.
    """
    driver = _driver(driver_name)
    config = _config(driver_name, config_file, {"id": sensor})
    ctx = SourceContext(org="local", gateway="decode", seed=0, start=datetime.now(UTC))
    decoder = driver.decoder(config, ctx)
    out = sys.stdout.buffer
    if driver.framing == "stream":
        for chunk in _chunks(file):
            _report(decoder.feed(chunk), out)
        _report(decoder.feed(b"\n"), out)  # a last line without its line end
    else:
        for line, event in _events(file):
            _report(decoder.feed(event), out, line)
    if show_stats:
        click.echo(orjson.dumps(decoder.stats()).decode(), err=True)


@edge.command("tail")
@click.argument("driver_name", metavar="DRIVER")
@click.option("--port", help="Serial device (nmea, traffic_counter), e.g. /dev/ttyUSB0.")
@click.option("--baudrate", type=int, help="Serial speed (default: the driver's).")
@click.option("--parity", type=click.Choice(["N", "E", "O"]))
@click.option("--broker", help="ChirpStack's MQTT broker URL (bosch_parking).")
@click.option("--application-id", help="ChirpStack application id (bosch_parking).")
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A YAML sensor entry (or gateway config) for the driver.",
)
@click.option("--duration", type=float, help="Stop after this many seconds (default: until Ctrl-C).")
@click.option("--stats-every", type=float, default=0, help="Print the source's stats on stderr every N s.")
def tail_command(
    driver_name: str,
    port: str | None,
    baudrate: int | None,
    parity: str | None,
    broker: str | None,
    application_id: str | None,
    config_file: Path | None,
    duration: float | None,
    stats_every: float,
) -> None:
    """Read a live device and print its readings as JSON lines (rejects on stderr)."""
    driver = _driver(driver_name)
    overrides: dict[str, Any] = {"port": port, "baudrate": baudrate, "parity": parity}
    if driver.framing == "message":
        overrides = {"broker": broker, "application_id": application_id}
        if config_file is None and application_id is None:
            raise click.UsageError("give --application-id (and --broker), or --config")
    elif config_file is None and port is None:
        raise click.UsageError("give --port (e.g. /dev/ttyUSB0), or --config")
    config = _config(driver_name, config_file, overrides)
    ctx = SourceContext(org="local", gateway="tail", seed=0, start=datetime.now(UTC))
    source = driver.open(config, ctx)
    stop = threading.Event()
    deadline = None if duration is None else time.monotonic() + duration
    next_stats = time.monotonic() + stats_every if stats_every else None
    rejected_before: dict[str, int] = {}
    try:
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            for r in source.poll(datetime.now(UTC)):
                sys.stdout.buffer.write(_json_line(r))
            sys.stdout.buffer.flush()
            stats = stats_of(source) or {}
            rejected = stats.get("rejected", {})
            for reason, n in rejected.items():
                if n > rejected_before.get(reason, 0):
                    new = n - rejected_before.get(reason, 0)
                    click.echo(f"rejected {new} x {reason}: {stats.get('last_error')}", err=True)
            rejected_before = dict(rejected)
            if next_stats is not None and time.monotonic() >= next_stats:
                click.echo(orjson.dumps(stats).decode(), err=True)
                next_stats = time.monotonic() + stats_every
            stop.wait(0.1)
    except KeyboardInterrupt:
        pass
    finally:
        source.close()


@edge.command("simulate")
@click.argument("device", type=click.Choice(["gps", "counter", "parking", "gtfs-rt"]))
@click.option(
    "--link",
    type=click.Path(dir_okay=False, path_type=Path),
    help="gps, counter: the symlink to point at the virtual serial port (e.g. /tmp/gps0).",
)
@click.option("--broker", default="mqtt://127.0.0.1:1883", show_default=True, help="parking: MQTT broker.")
@click.option(
    "--application-id",
    default="5c3b0a8e-3f0e-4c1a-9d7e-2b7c1f0e9a11",
    show_default=True,
    help="parking: the ChirpStack application id in the uplink topics.",
)
@click.option(
    "--sim",
    "sim_entry",
    default=None,
    help="The simulated sensor as YAML flow, e.g. '{route: lam-blu}' (defaults per device).",
)
@click.option("--speed", type=float, default=1.0, show_default=True, help="Simulated seconds per second.")
@click.option("--duration", type=float, help="Stop after this many seconds (default: until Ctrl-C).")
@click.option(
    "--feed",
    type=click.Path(exists=True, path_type=Path),
    help="gtfs-rt: the GTFS feed (zip or folder) to play (default: the project's Prato network).",
)
@click.option(
    "--port",
    "http_port",
    type=click.IntRange(0, 65535),
    default=8088,
    show_default=True,
    help="gtfs-rt: HTTP port.",
)
@click.option("--cancel", "cancelled", multiple=True, help="gtfs-rt: a trip_id to cancel (repeatable).")
def simulate_command(
    device: str,
    link: Path | None,
    broker: str,
    application_id: str,
    sim_entry: str | None,
    speed: float,
    duration: float | None,
    feed: Path | None,
    http_port: int,
    cancelled: tuple[str, ...],
) -> None:
    """Run a virtual device that speaks the real bytes: a GPS receiver (NMEA) or a traffic
    counter ($TCR) on a pseudo-terminal behind --link, or Bosch parking sensors' ChirpStack
    uplinks on --broker. Point a gateway (or `sitroom edge tail`) at it. `gtfs-rt` serves a
    public-transport operator's GTFS-Realtime feed over HTTP, played from a GTFS feed on the
    clock (delays, cancelled trips, a detour); point `sitroom transit read` at it."""
    if device == "gtfs-rt":
        _simulate_gtfs_rt(feed, http_port, cancelled, speed, duration)
        return

    all_defaults: dict[str, dict[str, Any]] = {
        "gps": {"driver": "sim_fleet", "id": "v-bus-101", "route": "lam-blu", "interval_s": 1},
        "counter": {
            "driver": "sim_traffic",
            "id": "t-repubblica",
            "site": "repubblica",
            "direction": "inbound",
        },
        "parking": {
            "driver": "sim_parking_spot",
            "id": "s-mazzoni-01",
            "street": "via-mazzoni",
            "zone": "centro",
        },
    }
    defaults = all_defaults[device]
    entry: dict[str, Any] = {**defaults, **(yaml.safe_load(sim_entry) if sim_entry else {})}
    driver = get_driver(str(entry["driver"]))
    clock = (
        SimClock.replaying(speed, horizon_s=duration or 3600) if speed > 1 else SimClock(1, datetime.now(UTC))
    )
    ctx = SourceContext(org="sim", gateway="sim", seed=0, start=clock.now())
    source = driver.open(driver.Config.model_validate(entry), ctx)
    closers: list[Any] = []
    sink: Callable[[Reading], bool]
    if device == "parking":
        uplinks = ChirpStackUplinks(broker, application_id, {str(entry["id"]): "70b3d5e75e00a1f0"})
        closers.append(uplinks)
        sink = uplinks.send
        click.echo(f"publishing uplinks to {broker} application/{application_id}/device/+/event/up", err=True)
    else:
        if link is None:
            raise click.UsageError("--link PATH is needed for a serial device")
        port = VirtualSerialPort(link)
        closers.append(port)
        sink = serial_sink(port, gps_sentences if device == "gps" else counter_record)
        click.echo(f"{device} on {link} -> {port.slave_name}", err=True)
    virtual = VirtualDevice(source, clock, sink).start()
    try:
        threading.Event().wait(duration)
    except KeyboardInterrupt:
        pass
    finally:
        virtual.stop()
        for c in closers:
            c.close()
    click.echo(f"sent {len(virtual.sent)} readings", err=True)


def _simulate_gtfs_rt(
    feed: Path | None, port: int, cancelled: tuple[str, ...], speed: float, duration: float | None
) -> None:
    # Only this command loads protobuf and the GTFS codec: a street gateway's `sitroom` never
    # does (tests/edge/test_gtfs_codec.py), so these imports stay here, not at the top.
    from edge.contract.gtfs.static import FeedError  # noqa: PLC0415
    from edge.simulators.gtfs_rt import FeedGenerator, GtfsRtServer, Network, Scenario  # noqa: PLC0415
    from edge.simulators.transit import prato_feed_zip, zip_folder  # noqa: PLC0415

    static = prato_feed_zip() if feed is None else zip_folder(feed) if feed.is_dir() else feed.read_bytes()
    try:
        network = Network.load(static)
    except FeedError as exc:
        raise click.ClickException(f"{feed}: {exc}") from None
    clock = (
        SimClock.replaying(speed, horizon_s=duration or 3600) if speed > 1 else SimClock(1, datetime.now(UTC))
    )
    generator = FeedGenerator(network, clock, Scenario(cancelled=cancelled))
    server = GtfsRtServer(
        generator, host="127.0.0.1", port=port, refresh_s=max(1.0, 10.0 / speed), static_zip=static
    )
    server.start()
    click.echo(f"GTFS-Realtime on {server.url}/gtfs-rt (static feed: {server.url}/gtfs.zip)", err=True)
    try:
        threading.Event().wait(duration)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    click.echo(f"served {server.requests} requests", err=True)


@edge.command("check-batch")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def check_batch_command(file: Path) -> None:
    """Validate a data message (the JSON batch a gateway publishes) and print its readings."""
    try:
        decoded = decode(file.read_bytes())
    except ContractError as exc:
        raise click.ClickException(str(exc)) from None
    for r in decoded.readings:
        click.echo(f"ok      {r.kind.value} {r.org}/{r.gateway}/{r.sensor} {r.ts.isoformat()} {r.fields}")
    for rej in decoded.rejects:
        click.echo(f"reject  {rej.error}")
    if decoded.rejects:
        sys.exit(1)


@edge.command("drivers")
def drivers_command() -> None:
    """List the device drivers that decode bytes, with their framing."""
    for name, driver in decoding_drivers().items():
        click.echo(f"{name:16} {driver.framing}")


def main() -> None:
    root()


if __name__ == "__main__":
    main()
