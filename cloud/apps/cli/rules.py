"""`sitroom rules replay`: backtesting detectors and rules over history."""

from __future__ import annotations

import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import click

from cloud.core.settings import CloudSettings
from cloud.io.influx.client import InfluxClient
from cloud.rules.backtest import (
    Skipped,
    backtest,
    readings_from_csv,
    readings_from_influx,
)
from cloud.rules.detectors import ALIAS, DEFAULT, UnknownDetectorError, get, names
from cloud.rules.detectors.replay import BadRow, CsvHeaderError, replay_csv
from cloud.rules.engine import RulesFileError, load_rules


@click.group()
def group() -> None:
    """Rules and detectors: replay them over history (backtesting)."""


@group.command()
@click.option(
    "--detector",
    default=ALIAS,
    show_default=True,
    help=f"Score a single series with this detector: {ALIAS} (what the default rules use, now "
    f"{DEFAULT}), {', '.join(names())}.",
)
@click.option(
    "--input",
    "input_path",
    type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path),
    help="Single series: CSV with header `timestamp,value` (`-` for stdin).",
)
@click.option(
    "--output",
    "output_path",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="Single series: CSV written with header `timestamp,value,anomaly_score` (`-` for stdout).",
)
@click.option(
    "--rules",
    "rules_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Rules mode: replay this rules file over history and list what would have fired.",
)
@click.option(
    "--readings",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Rules mode: readings from a CSV (`timestamp,kind,org,gateway,sensor,<field>...`).",
)
@click.option("--since", type=click.DateTime(["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"]))
@click.option("--until", type=click.DateTime(["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"]))
@click.option("--org", help="Rules mode from InfluxDB: only this organisation.")
@click.option("--json", "as_json", is_flag=True, help="Rules mode: one JSON alert per line.")
def replay(
    detector: str,
    input_path: Path | None,
    output_path: Path | None,
    rules_file: Path | None,
    readings: Path | None,
    since: datetime | None,
    until: datetime | None,
    org: str | None,
    as_json: bool,
) -> None:
    """Backtest: score one series with a detector, or replay rules over history.

    \b
    Single series:  sitroom rules replay --detector default --input in.csv --output out.csv
    Rules:          sitroom rules replay --rules FILE --readings readings.csv
                    sitroom rules replay --rules FILE --since 2026-11-01 --until 2026-11-08

    `--detector default` is whatever the default rules use; the scores come from the same
    detector code as the rules service's (one registry, cloud/rules/detectors/).
    Detector scores are computed streaming (each uses only the rows before it) and calibrated:
    0.5 means "as rare as 1 in 1,000 readings of this series", 1.0 "1 in a million or rarer".
    Unparsable rows are reported on stderr (line and reason) and left out of the output.
    In rules mode, readings come from the CSV or from InfluxDB (SITROOM_INFLUX_* settings).
    """
    if rules_file is not None:
        _replay_rules(rules_file, readings, since, until, org, as_json)
        return
    if input_path is None or output_path is None:
        raise click.UsageError("give --input and --output (single series), or --rules (rules mode)")
    _replay_series(detector, input_path, output_path)


def _replay_series(detector: str, input_path: Path, output_path: Path) -> None:
    try:
        get(detector)
    except UnknownDetectorError as exc:
        raise click.BadParameter(str(exc.args[0]), param_hint="--detector") from None
    bad = 0

    def report(row: BadRow) -> None:
        nonlocal bad
        bad += 1
        click.echo(f"{input_path}:{row.line}: skipped: {row.reason}", err=True)

    src = sys.stdin if str(input_path) == "-" else input_path.open(newline="", encoding="utf-8-sig")
    dst = sys.stdout if str(output_path) == "-" else output_path.open("w", newline="", encoding="utf-8")
    try:
        scored = replay_csv(detector, src, dst, report)
    except CsvHeaderError as exc:
        raise click.ClickException(f"{input_path}: {exc}") from None
    finally:
        if src is not sys.stdin:
            src.close()
        if dst is not sys.stdout:
            dst.close()
    name = get(detector).name
    shown = f"{detector} ({name})" if name != detector else detector
    click.echo(f"{scored} rows scored with {shown}, {bad} skipped", err=True)


def _replay_rules(
    rules_file: Path,
    readings_csv: Path | None,
    since: datetime | None,
    until: datetime | None,
    org: str | None,
    as_json: bool,
) -> None:

    try:
        rules = load_rules(rules_file)
    except RulesFileError as exc:
        raise click.ClickException(str(exc)) from None
    skipped = 0

    def report(s: Skipped) -> None:
        nonlocal skipped
        skipped += 1
        click.echo(f"{s.where}: skipped: {s.reason}", err=True)

    if readings_csv is not None:
        history = readings_from_csv(readings_csv, report)
    else:
        if since is None or until is None:
            raise click.UsageError("rules mode needs --readings CSV, or --since and --until (InfluxDB)")
        settings = CloudSettings()
        client = InfluxClient(
            settings.influx_url,
            settings.influx_db,
            username=settings.influx_username,
            password=settings.influx_password,
        )
        try:
            history = readings_from_influx(
                client, since.replace(tzinfo=UTC), until.replace(tzinfo=UTC), report, org
            )
        finally:
            client.close()
    alerts = backtest(rules, history)
    for a in alerts:
        if as_json:
            click.echo(a.to_json().decode())
        else:
            click.echo(
                f"{a.ts.isoformat()} {a.state:<8} {a.severity:<8} {a.rule} {a.org}/{a.entity}: {a.message}"
            )
    fired = Counter(a.rule for a in alerts if a.state == "firing")
    summary = ", ".join(f"{rule} {n}" for rule, n in sorted(fired.items())) or "nothing"
    click.echo(f"{len(history)} readings, {skipped} skipped; would have fired: {summary}", err=True)
