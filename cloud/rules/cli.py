"""`sitroom rules replay`: backtesting detectors and rules over history."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.group()
def group() -> None:
    """Rules and detectors: replay them over history (backtesting)."""


@group.command()
@click.option(
    "--detector",
    default="ensemble",
    show_default=True,
    help="Detector to score a single series with (level, robust-zscore, seasonal, flatline, ensemble).",
)
@click.option(
    "--input",
    "input_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path),
    help="CSV with header `timestamp,value` (`-` for stdin).",
)
@click.option(
    "--output",
    "output_path",
    required=True,
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="CSV written with header `timestamp,value,anomaly_score` (`-` for stdout).",
)
def replay(detector: str, input_path: Path, output_path: Path) -> None:
    """Score every row of a series, streaming: each score uses only the rows before it.

    Scores are calibrated tail probabilities: 0.5 means "as rare as 1 in 1,000 readings of this
    series", 1.0 "1 in a million or rarer". Unparsable rows are reported on stderr (line and
    reason) and left out of the output.
    """
    from cloud.detectors import UnknownDetectorError, get  # noqa: PLC0415  (keeps --help fast)
    from cloud.detectors.replay import BadRow, CsvHeaderError, replay_csv  # noqa: PLC0415

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
    click.echo(f"{scored} rows scored with {detector}, {bad} skipped", err=True)
