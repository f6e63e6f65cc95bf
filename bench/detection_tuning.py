"""How much of `onset`'s NAB score is tuning: its tuned parameters cross-validated.

    .venv/bin/python bench/detection_tuning.py [--data DIR] [--json FILE]

The parameters chosen by measurement on the labelled set (docs/detection.md) are swept over a
grid around their defaults. Two held-out scores, each of a choice made without the files it
is scored on:
- leave one file out: for each file, the configuration and threshold that score best on the
  other 13 files, applied to that file; the held-out raw scores summed and normalised;
- by category: chosen on realTraffic, scored on realKnownCause, and the other way round.
Beside them, the defaults' score, and the best configuration of the grid on the whole set (the
optimistic figure, for comparison only). Last, what each of onset's parts brings: the score
with one of them switched off (by its constants, nothing else changed).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from detection import default_data_dir

from cloud.rules.detectors import score_from_p, tail
from cloud.rules.detectors.nab import (
    STANDARD,
    LabelledSeries,
    load_corpus,
    normalise,
    raw_score,
    scorable_windows,
    score_corpus,
)
from cloud.rules.detectors.onset import OnsetDetector

GRID: dict[str, list[float]] = {
    "SLOT_ALPHA": [0.1, 0.2],
    "CALM_READINGS": [10, 20, 40],
    "ALARM_P": [2e-3, 3e-3, 5e-3],
    "WINSOR": [math.log(10.0), math.log(100.0)],  # tail.WINSOR: p = 1e-3 or 1e-4
}
DEFAULTS = {
    "SLOT_ALPHA": OnsetDetector.SLOT_ALPHA,
    "CALM_READINGS": OnsetDetector.CALM_READINGS,
    "ALARM_P": OnsetDetector.ALARM_P,
    "WINSOR": tail.WINSOR,
}


def configurations() -> Iterator[dict[str, float]]:
    keys = list(GRID)
    for values in itertools.product(*(GRID[k] for k in keys)):
        yield dict(zip(keys, values, strict=True))


def run(config: dict[str, float], corpus: list[LabelledSeries]) -> list[list[float]]:
    attrs = {k: (int(v) if k == "CALM_READINGS" else v) for k, v in config.items() if k != "WINSOR"}
    cls = type("Tuned", (OnsetDetector,), {"__slots__": (), **attrs})
    tail.WINSOR = config["WINSOR"]  # read by QuantileTail.add at every call
    try:
        out = []
        for series in corpus:
            detector = cls()
            out.append(
                [score_from_p(detector.pvalue(t, v)) for t, v in zip(series.ts, series.values, strict=True)]
            )
        return out
    finally:
        tail.WINSOR = DEFAULTS["WINSOR"]


ABLATIONS: dict[str, dict[str, float]] = {
    "without level": {"LEVEL_READINGS": 1},  # the level test needs two readings
    "without profile": {"MIN_CYCLES": 256},  # a slot counts at most 255 cycles
    "without extremes": {"EXTREMES_AFTER": 10**12},
    "without runs": {"HABIT": 10**9},
    "without episodes": {"ALARM_P": 0.0},
}


def ablated(corpus: list[LabelledSeries], attrs: dict[str, float]) -> float:
    cls = type("Ablated", (OnsetDetector,), {"__slots__": (), **attrs})
    scores = []
    for series in corpus:
        detector = cls()
        scores.append(
            [score_from_p(detector.pvalue(t, v)) for t, v in zip(series.ts, series.values, strict=True)]
        )
    return score_corpus(corpus, scores).score


def best_on(
    files: list[int], corpus: list[LabelledSeries], scores: list[list[list[float]]]
) -> tuple[int, float, float]:
    """The configuration (index) and threshold scoring best on `files`, and that raw score."""
    best = (-1, math.inf, -math.inf)
    for c, config_scores in enumerate(scores):
        result = score_corpus([corpus[i] for i in files], [config_scores[i] for i in files])
        if result.raw > best[2]:
            best = (c, result.threshold, result.raw)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=default_data_dir())
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.data is None or not (args.data / "windows.json").is_file():
        parser.error(f"no labelled set at {args.data}: pass --data DIR or set SITROOM_LABELLED_DEV")
    corpus = load_corpus(args.data)
    configs = list(configurations())
    scores: list[list[list[float]]] = []
    t0 = time.monotonic()
    for i, config in enumerate(configs, start=1):
        print(f"\rrunning configuration {i}/{len(configs)}", end="", file=sys.stderr, flush=True)
        scores.append(run(config, corpus))
    print(f"\r{len(configs)} configurations run in {time.monotonic() - t0:.0f} s", file=sys.stderr)

    everything = list(range(len(corpus)))
    windows = sum(len(scorable_windows(s)) for s in corpus)
    default_index = next(c for c, config in enumerate(configs) if all(config[k] == DEFAULTS[k] for k in GRID))
    default = score_corpus(corpus, scores[default_index])
    best_c, _thr, best_raw = best_on(everything, corpus, scores)

    held_raw = 0.0
    chosen: list[dict[str, float]] = []
    for k in everything:
        print(f"\rleave one out: {k + 1}/{len(corpus)}", end="", file=sys.stderr, flush=True)
        c, threshold, _raw = best_on([i for i in everything if i != k], corpus, scores)
        held_raw += raw_score(corpus[k], scores[c][k], threshold, STANDARD)
        chosen.append(configs[c])
    print(file=sys.stderr)
    held_out = normalise(held_raw, windows)

    by_category: dict[str, float] = {}
    categories = sorted({s.category for s in corpus})
    for test in categories:
        train = [i for i, s in enumerate(corpus) if s.category != test]
        held = [i for i, s in enumerate(corpus) if s.category == test]
        c, threshold, _raw = best_on(train, corpus, scores)
        raw = sum(raw_score(corpus[i], scores[c][i], threshold, STANDARD) for i in held)
        test_windows = sum(len(scorable_windows(corpus[i])) for i in held)
        by_category[test] = normalise(raw, test_windows)

    print(f"grid: {', '.join(f'{k} in {v}' for k, v in GRID.items())} ({len(configs)} configurations)")
    print(f"defaults {DEFAULTS}: NAB {default.score:.1f} on the whole set (threshold chosen on it)")
    print(f"best of the grid on the whole set: {normalise(best_raw, windows):.1f} with {configs[best_c]}")
    print(
        f"held out, leave one file out (configuration and threshold chosen on the other 13): {held_out:.1f}"
    )
    for test, score in by_category.items():
        print(f"held out, chosen on the other category, scored on {test}: {score:.1f}")
    times = {json.dumps(c, sort_keys=True): chosen.count(c) for c in chosen}
    print("configurations chosen by the 14 folds:")
    for chosen_config, count in sorted(times.items(), key=lambda kv: -kv[1]):
        print(f"  {count:>2} x {chosen_config}")
    print("what each part brings (NAB standard, threshold chosen on the whole set):")
    print(f"  {'onset':<18} {default.score:5.1f}")
    ablations = {}
    for label, attrs in ABLATIONS.items():
        ablations[label] = ablated(corpus, attrs)
        print(f"  {label:<18} {ablations[label]:5.1f}")
    if args.json:
        out: dict[str, Any] = {
            "ablations": ablations,
            "grid": GRID,
            "defaults": DEFAULTS,
            "default_score": default.score,
            "best_of_grid": {"score": normalise(best_raw, windows), "config": configs[best_c]},
            "held_out_leave_one_file_out": held_out,
            "held_out_by_category": by_category,
            "chosen_by_folds": chosen,
        }
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
