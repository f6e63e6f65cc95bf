"""Scoring one series from CSV (`timestamp,value`) to CSV (`timestamp,value,anomaly_score`).

Rows that cannot be parsed are reported (line number and reason) and left out of the output:
the output has one scored row per parsable input row, in input order.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

from cloud.rules.detectors.calibration import score_from_p
from cloud.rules.detectors.registry import get


@dataclass(frozen=True, slots=True)
class BadRow:
    line: int
    reason: str


class CsvHeaderError(ValueError):
    def __init__(self, header: list[str]) -> None:
        self.header = header
        super().__init__(f"line 1: expected the header `timestamp,value`, got {','.join(header)!r}")


def parse_ts(text: str) -> datetime:
    """ISO 8601 (`2026-11-24T08:00:00Z`, with or without offset) or `YYYY-MM-DD HH:MM:SS`;
    a timestamp without offset is UTC. Unix seconds (or milliseconds) are accepted too."""
    text = text.strip()
    try:
        # Leniency beyond the contract: Unix time in seconds (or milliseconds, if that large).
        number = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(number):
            raise ValueError(f"{text!r} is not a time")
        return datetime.fromtimestamp(number / 1000 if abs(number) > 1e11 else number, UTC)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    ts = datetime.fromisoformat(text)
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def score_rows(
    detector_name: str, rows: Iterable[tuple[str, str]]
) -> Iterator[tuple[str, str, float] | BadRow]:
    """Scores of (timestamp, value) text rows, numbered from line 2; bad rows become `BadRow`."""
    detector = get(detector_name)()
    for line, (ts_text, value_text) in enumerate(rows, start=2):
        try:
            ts = parse_ts(ts_text)
        except ValueError:
            yield BadRow(line, f"timestamp {ts_text!r} is neither ISO 8601 nor YYYY-MM-DD HH:MM:SS")
            continue
        try:
            value = float(value_text)
        except ValueError:
            yield BadRow(line, f"value {value_text!r} is not a number")
            continue
        if not math.isfinite(value):
            yield BadRow(line, f"value {value_text!r} is not finite")
            continue
        yield ts_text, value_text, score_from_p(detector.pvalue(ts.timestamp(), value))


def replay_csv(detector_name: str, src: TextIO, dst: TextIO, report: Callable[[BadRow], None]) -> int:
    """Score `src` into `dst`; returns the number of rows scored."""
    reader = csv.reader(src)
    header = next(reader, None)
    if header is None or [h.strip().lower() for h in header[:2]] != ["timestamp", "value"]:
        raise CsvHeaderError(header or [])

    def pairs() -> Iterator[tuple[str, str]]:
        for record in reader:
            if len(record) < 2:
                yield (record[0] if record else ""), ""
            else:
                yield record[0], record[1]

    writer = csv.writer(dst, lineterminator="\n")
    writer.writerow(["timestamp", "value", "anomaly_score"])
    scored = 0
    for out in score_rows(detector_name, pairs()):
        if isinstance(out, BadRow):
            report(out)
            continue
        writer.writerow([out[0], out[1], f"{out[2]:.6f}"])
        scored += 1
    return scored
