"""Detection benchmark: every registered detector on real labelled series, NAB standard profile.

    .venv/bin/python bench/detection.py [--data DIR] [--detector NAME ...] [--json FILE]
                                        [--skip-synthetic]

Each detector scores each series of the labelled set (NAB's realKnownCause and realTraffic,
`../shared/anomaly/labelled-dev/` beside the checkout, or `--data`, or $SITROOM_LABELLED_DEV)
row by row, as the rules engine would; one threshold is swept over the whole set and the NAB
standard score (null detector 0, perfect 100) is printed overall and per category, with the
windows found and the false positives at that threshold, and the held-out score: each file
scored at the threshold chosen on the other 13 (one its own labels did not help choose). Beside
it, the synthetic F1 of `bench/anomaly.py` (the rules engine over simulated Prato with injected
anomalies) with that detector, and the detector's CPU time per row. Progress goes to stderr.
The method is described in docs/detection.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from cloud.rules.detectors import DEFAULT, get, names, score_from_p
from cloud.rules.detectors.nab import (
    STANDARD,
    LabelledSeries,
    load_corpus,
    normalise,
    raw_score,
    scorable_windows,
    score_corpus,
)

REPO = Path(__file__).resolve().parent.parent
LABELLED = Path("shared/anomaly/labelled-dev")


def default_data_dir() -> Path | None:
    """$SITROOM_LABELLED_DEV, else `shared/anomaly/labelled-dev` beside the checkout or beside
    one of its parents (a worktree nested deeper than CI's checkout finds it too)."""
    env = os.environ.get("SITROOM_LABELLED_DEV")
    if env:
        return Path(env)
    for parent in REPO.parents:
        if (parent / LABELLED / "windows.json").is_file():
            return parent / LABELLED
    return None


def run_detector(name: str, series: LabelledSeries) -> tuple[list[float], float]:
    """Scores of every row, and the CPU seconds the detector took."""
    detector = get(name)()
    pvalue = detector.pvalue
    t0 = time.process_time()
    scores = [score_from_p(pvalue(ts, v)) for ts, v in zip(series.ts, series.values, strict=True)]
    return scores, time.process_time() - t0


def held_out(corpus: list[LabelledSeries], scores: list[list[float]]) -> float:
    """Leave one file out: each file scored at the threshold chosen on the other files."""
    raw = 0.0
    for k, series in enumerate(corpus):
        rest = score_corpus(corpus[:k] + corpus[k + 1 :], scores[:k] + scores[k + 1 :])
        raw += raw_score(series, scores[k], rest.threshold, STANDARD)
    return normalise(raw, sum(len(scorable_windows(s)) for s in corpus))


def synthetic_f1(name: str) -> float:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import anomaly  # noqa: PLC0415  (bench/anomaly.py, a script beside this one)

    q = anomaly.quality(28, 7, detector=name)
    return anomaly.prf(*q["overall"])[2]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=default_data_dir())
    parser.add_argument(
        "--detector", action="extend", nargs="+", choices=names(), help="default: every registered one"
    )
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    parser.add_argument("--skip-synthetic", action="store_true", help="leave out the synthetic F1")
    args = parser.parse_args()
    if args.data is None or not (args.data / "windows.json").is_file():
        parser.error(f"no labelled set at {args.data}: pass --data DIR or set SITROOM_LABELLED_DEV")
    corpus = load_corpus(args.data)
    rows = sum(len(s.ts) for s in corpus)
    detectors = args.detector or names()
    windows = sum(len(s.windows) for s in corpus)
    print(f"# {len(corpus)} series, {rows:,} rows, {windows} windows from {args.data}")
    print(f"# NAB standard profile (TP {STANDARD.tp}, FP {STANDARD.fp}, FN {STANDARD.fn}), one threshold")
    print(f"# default detector: {DEFAULT}\n")

    out: dict[str, Any] = {}
    for name in detectors:
        scores: list[list[float]] = []
        cpu_s = 0.0
        for k, series in enumerate(corpus, start=1):
            print(f"\r{name}: {k}/{len(corpus)} {series.name:<60}", end="", file=sys.stderr, flush=True)
            file_scores, s = run_detector(name, series)
            scores.append(file_scores)
            cpu_s += s
        print("\r" + " " * 80 + "\r", end="", file=sys.stderr, flush=True)
        result = score_corpus(corpus, scores)
        out[name] = {
            "score": result.score,
            "held_out": held_out(corpus, scores),
            "threshold": None if math.isinf(result.threshold) else result.threshold,
            "tp": result.tp,
            "fn": result.fn,
            "fp": result.fp,
            "per_category": result.per_category,
            "per_file": result.per_file,
            "us_per_row": 1e6 * cpu_s / rows,
        }
        if not args.skip_synthetic:
            print(f"{name}: synthetic F1 (bench/anomaly.py)...", end="\r", file=sys.stderr, flush=True)
            out[name]["synthetic_f1"] = synthetic_f1(name)
        print_row(name, out[name], first=name == detectors[0])
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
        print(f"\nfigures written to {args.json}")


def print_row(name: str, r: dict[str, Any], *, first: bool) -> None:
    cats = list(r["per_category"])
    if first:
        head = ["detector", "NAB", "held-out", *cats, "windows", "FP", "threshold", "syn F1", "µs/row"]
        print("{:<16} {:>6} {:>8} {:>14} {:>11} {:>7} {:>5} {:>9} {:>6} {:>6}".format(*head))
    cat_cells = " ".join(f"{r['per_category'][c]:>{max(len(c), 11)}.1f}" for c in cats)
    f1 = f"{r['synthetic_f1']:.3f}" if "synthetic_f1" in r else "-"
    threshold = "-" if r["threshold"] is None else f"{r['threshold']:.4f}"  # none beats no detection
    print(
        f"{name:<16} {r['score']:>6.1f} {r['held_out']:>8.1f} {cat_cells} "
        f"{r['tp']:>4}/{r['tp'] + r['fn']:<2} {r['fp']:>5} {threshold:>9} {f1:>6} "
        f"{r['us_per_row']:>6.1f}"
    )


if __name__ == "__main__":
    main()
