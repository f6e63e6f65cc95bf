"""The `sitroom` command: its root, `sitroom edge ...`, and the groups other packages mount.

`gateway` and `cloud` add their command groups through the `sitroom.cli` entry-point group
(pyproject.toml), so this module never imports them: the arrows point `gateway → edge ← cloud`.

`sitroom edge decode DRIVER FILE|-` is the technician's tool: a raw capture in, canonical
readings out as JSON lines on stdout, rejects on stderr with line number and reason.
`sitroom edge tail DRIVER --port ...` does the same on a live device.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Iterator
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
from edge.drivers.framing import Decoded, Rejected
from edge.drivers.vectors import sample_configs

_CHUNK = 65536


class _Root(click.Group):
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


def _report(decoded: Decoded, out: BinaryIO, line: int | None = None) -> None:
    for r in decoded.readings:
        out.write(_json_line(r))
    out.flush()
    for rej in decoded.rejects:
        _reject(rej, rej.line if rej.line is not None else line)


def _reject(rej: Rejected, line: int | None) -> None:
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
