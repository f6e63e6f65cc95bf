"""`sitroom cloud ingest|rules` and `sitroom demo`."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType

import click
from pydantic import ValidationError

from cloud.settings import CloudSettings


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
    """Cloud services: ingest and rules. Settings come from SITROOM_* environment variables."""


@group.command()
def ingest() -> None:
    """Consume gateway data from MQTT, validate it, write it to InfluxDB; bad input to dead-letter."""
    from cloud.ingest.consumer import Ingest  # noqa: PLC0415  (keeps `sitroom --help` fast)

    settings = _settings()
    stop = _stop_on_signals()
    Ingest(settings).run(stop)


@group.command()
@click.option("--rules", "rules_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def rules(rules_file: Path | None) -> None:
    """Evaluate the rules on the live stream; publish alerts and write them to InfluxDB."""
    from cloud.rules.engine import DEFAULT_RULES, Engine, RulesFileError, load_rules  # noqa: PLC0415
    from cloud.rules.service import RulesService  # noqa: PLC0415

    settings = _settings()
    path = rules_file or (Path(settings.rules_file) if settings.rules_file else DEFAULT_RULES)
    try:
        engine = Engine(load_rules(path))
    except RulesFileError as exc:
        raise click.ClickException(str(exc)) from None
    stop = _stop_on_signals()
    RulesService(settings, engine).run(stop)


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
def demo_command(
    duration_s: float | None,
    speed: float,
    summary: Path | None,
    picture: Path | None,
    data_dir: Path | None,
    configs: Path,
    seed: int,
) -> None:
    """Run a simulated Prato end to end on servers of its own, with live progress."""
    from cloud.demo import DemoOptions, default_data_dir, run_demo  # noqa: PLC0415

    files = sorted(configs.glob("*.yaml"))
    if not files:
        raise click.ClickException(f"no gateway configs (*.yaml) in {configs}")
    result = run_demo(
        DemoOptions(
            configs=files,
            data_dir=(data_dir or default_data_dir()).resolve(),
            duration_s=duration_s,
            speed=speed,
            seed=seed,
            summary=summary,
            picture=picture or (summary.with_suffix(".png") if summary else None),
        )
    )
    if not result or result["readings_stored"] < result["readings_published"]:
        raise SystemExit(1)
