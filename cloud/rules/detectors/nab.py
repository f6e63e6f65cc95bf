"""NAB scoring of a detector's scores against labelled anomaly windows (docs/detection.md).

Written from the published method of the Numenta Anomaly Benchmark (Lavin & Ahmad 2015, and
numenta/NAB's `nab/sweeper.py`): every row past a probationary period (15 % of the series,
at most 750 rows) whose score reaches the threshold is a detection. Inside an anomaly window
only a window's earliest detection counts, weighted by a scaled sigmoid of its position (1 at
the window's left edge, 0 at its right edge); outside, each detection costs the FP weight,
less when it follows a window closely. A window without detection costs the FN weight. One
threshold is swept over the whole corpus, and the raw total is normalised to 0 for the null
detector (no detection) and 100 for the perfect one (each window detected at its first row).

Here so that `bench/detection.py`, its tests and a backtest (`sitroom rules replay`) share it.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

PROBATION_FRACTION = 0.15
PROBATION_MAX_ROWS = 750  # NAB: min(15 % of the rows, 15 % of 5,000)


@dataclass(frozen=True, slots=True)
class Profile:
    """Weights of a true positive, a false positive and a false negative (NAB's cost matrix)."""

    name: str
    tp: float
    fp: float
    fn: float


STANDARD = Profile("standard", tp=1.0, fp=0.11, fn=1.0)
REWARD_LOW_FP = Profile("reward_low_FP_rate", tp=1.0, fp=0.22, fn=1.0)
REWARD_LOW_FN = Profile("reward_low_FN_rate", tp=1.0, fp=0.11, fn=2.0)
PROFILES = (STANDARD, REWARD_LOW_FP, REWARD_LOW_FN)


def scaled_sigmoid(position: float) -> float:
    """NAB's weight of a detection at `position` relative to a window: -1 is the window's left
    edge (0.987), 0 its right edge (0.0), positive values lie past it (towards -1)."""
    if position >= 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


@dataclass(frozen=True, slots=True)
class LabelledSeries:
    """One series with its anomaly windows as inclusive row ranges."""

    name: str  # "category/file.csv"
    ts: list[float]  # Unix seconds
    values: list[float]
    windows: list[tuple[int, int]]

    @property
    def category(self) -> str:
        return self.name.split("/", 1)[0]


def probation_rows(n: int) -> int:
    return int(min(math.floor(PROBATION_FRACTION * n), PROBATION_FRACTION * 5000))


def row_weights(
    n: int, windows: Sequence[tuple[int, int]], profile: Profile
) -> list[tuple[int | None, float]]:
    """For each row: (the index of its window or None, its weight if detected); the caller
    leaves out the probation rows."""
    max_tp = scaled_sigmoid(-1.0)
    out: list[tuple[int | None, float]] = []
    starts = {start: k for k, (start, _end) in enumerate(windows)}
    current: int | None = None
    previous: int | None = None
    for i in range(n):
        if current is None and i in starts:
            current = starts[i]
        if current is not None:
            start, end = windows[current]
            width = end - start + 1
            # NAB's position: -1 at the left edge, -1/width at the right edge.
            out.append((current, scaled_sigmoid(-(end - i + 1) / width) * profile.tp / max_tp))
            if i == end:
                previous, current = current, None
        elif previous is None:
            out.append((None, -profile.fp))
        else:
            start, end = windows[previous]
            position = (i - end) / max(end - start, 1)
            out.append((None, scaled_sigmoid(position) * profile.fp))
    return out


@dataclass(frozen=True, slots=True)
class Result:
    """The best single threshold over a corpus and what it scores."""

    threshold: float
    raw: float
    score: float  # normalised: null 0, perfect 100
    tp: int  # windows detected
    fn: int  # windows missed
    fp: int  # detections outside windows
    per_category: dict[str, float]  # normalised score of each category at that threshold
    per_file: dict[str, float]  # raw score of each file at that threshold


def scorable_windows(series: LabelledSeries) -> list[int]:
    """The windows that end after the probation period (NAB's labels put none inside it)."""
    first = probation_rows(len(series.ts))
    return [k for k, (_s, end) in enumerate(series.windows) if end >= first]


def normalise(raw: float, windows: int, profile: Profile = STANDARD) -> float:
    """NAB's normalisation: 100 (raw - null) / (perfect - null), null = -fn and perfect = +tp per window."""
    null, perfect = -profile.fn * windows, profile.tp * windows
    return 100.0 * (raw - null) / (perfect - null) if perfect > null else 0.0


def score_corpus(
    corpus: Sequence[LabelledSeries], scores: Sequence[Sequence[float]], profile: Profile = STANDARD
) -> Result:
    """Sweep one threshold over every distinct score of the corpus; keep the best raw total."""
    rows: list[tuple[float, int, int | None, float]] = []  # score, file, window id, weight
    window_base: list[int] = []
    scorable: set[int] = set()
    n_windows = 0
    for f, (series, file_scores) in enumerate(zip(corpus, scores, strict=True)):
        if len(file_scores) != len(series.ts):
            raise ValueError(f"{series.name}: {len(file_scores)} scores for {len(series.ts)} rows")
        window_base.append(n_windows)
        scorable.update(n_windows + k for k in scorable_windows(series))
        first = probation_rows(len(series.ts))
        for i, (window, weight) in enumerate(row_weights(len(series.ts), series.windows, profile)):
            if i < first:
                continue
            gid = None if window is None else n_windows + window
            rows.append((file_scores[i], f, gid, weight))
        n_windows += len(series.windows)
    rows.sort(key=lambda r: -r[0])

    # Start above every score: no detection, every scorable window a false negative.
    best_window: dict[int, float] = {}
    fp_total = 0.0
    fp_count = 0
    fn_total = -profile.fn * len(scorable)
    tp_total = 0.0
    best = (fn_total, math.inf, 0, 0)  # raw, threshold, tp windows, fp rows
    i = 0
    while i < len(rows):
        threshold = rows[i][0]
        while i < len(rows) and rows[i][0] == threshold:
            _s, _f, gid, weight = rows[i]
            if gid is None:
                fp_total += weight
                fp_count += 1
            else:
                was = best_window.get(gid)
                if was is None:
                    fn_total += profile.fn
                    best_window[gid] = weight
                    tp_total += weight
                elif weight > was:
                    best_window[gid] = weight
                    tp_total += weight - was
            i += 1
        raw = tp_total + fp_total + fn_total
        if raw > best[0]:
            best = (raw, threshold, len(best_window), fp_count)
    raw, threshold, tp, fp = best
    per_file, per_category = _breakdown(corpus, scores, threshold, profile)
    return Result(
        threshold=threshold,
        raw=raw,
        score=normalise(raw, len(scorable), profile),
        tp=tp,
        fn=len(scorable) - tp,
        fp=fp,
        per_category=per_category,
        per_file=per_file,
    )


def raw_score(series: LabelledSeries, scores: Sequence[float], threshold: float, profile: Profile) -> float:
    """One file's raw score at a fixed threshold (detections: scores >= threshold)."""
    first = probation_rows(len(series.ts))
    best: dict[int, float] = {}
    fp = 0.0
    for i, (window, weight) in enumerate(row_weights(len(series.ts), series.windows, profile)):
        if i < first or scores[i] < threshold:
            continue
        if window is None:
            fp += weight
        else:
            best[window] = max(best.get(window, -math.inf), weight)
    missed = len(scorable_windows(series)) - len(best)
    return sum(best.values()) + fp - profile.fn * missed


def _breakdown(
    corpus: Sequence[LabelledSeries], scores: Sequence[Sequence[float]], threshold: float, profile: Profile
) -> tuple[dict[str, float], dict[str, float]]:
    per_file: dict[str, float] = {}
    raw_by_cat: dict[str, float] = {}
    windows_by_cat: dict[str, int] = {}
    for series, file_scores in zip(corpus, scores, strict=True):
        raw = raw_score(series, file_scores, threshold, profile)
        per_file[series.name] = raw
        raw_by_cat[series.category] = raw_by_cat.get(series.category, 0.0) + raw
        windows_by_cat[series.category] = windows_by_cat.get(series.category, 0) + len(
            scorable_windows(series)
        )
    per_category = {c: normalise(raw_by_cat[c], windows_by_cat[c], profile) for c in sorted(raw_by_cat)}
    return per_file, per_category


def _parse_ts(text: str) -> float:
    # NAB's timestamps have no zone; they are read as UTC (only their order and spacing matter).
    return datetime.fromisoformat(text.strip()).replace(tzinfo=UTC).timestamp()


def load_series(path: Path, name: str, windows: Iterable[Sequence[str]]) -> LabelledSeries:
    ts: list[float] = []
    values: list[float] = []
    with path.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        if [h.strip() for h in header[:2]] != ["timestamp", "value"]:
            raise ValueError(f"{path}: expected the header timestamp,value, got {header!r}")
        for record in reader:
            ts.append(_parse_ts(record[0]))
            values.append(float(record[1]))
    rows: list[tuple[int, int]] = []
    for limits in windows:
        t1, t2 = _parse_ts(limits[0]), _parse_ts(limits[1])
        inside = [i for i, t in enumerate(ts) if t1 <= t <= t2]
        if not inside:
            raise ValueError(f"{name}: window {limits!r} holds no row")
        rows.append((inside[0], inside[-1]))
    return LabelledSeries(name=name, ts=ts, values=values, windows=sorted(rows))


def load_corpus(root: Path) -> list[LabelledSeries]:
    """Every series named in `root/windows.json`, read from `root/data/`, in name order."""
    labels: dict[str, list[list[str]]] = json.loads((root / "windows.json").read_text())
    return [load_series(root / "data" / name, name, labels[name]) for name in sorted(labels)]


__all__ = [
    "PROFILES",
    "STANDARD",
    "LabelledSeries",
    "Profile",
    "Result",
    "load_corpus",
    "normalise",
    "probation_rows",
    "raw_score",
    "row_weights",
    "scaled_sigmoid",
    "scorable_windows",
    "score_corpus",
]
