"""The rules engine's own cost: `observe` per reading and one `tick`, with the default rules.

Readings from `--gateways` gateways and `--sensors` sensors, in event-time order, go through
`Engine.observe` in messages of `--per-message` (the arrival time read once per message, as the
rules service does; the watermarks of cloud/rules/watermark.py are kept per reading); then one
`Engine.tick` (each gateway's watermark and the overall one, and every time-driven rule).
Best of --repeat runs, single thread.

    .venv/bin/python bench/rules_engine.py [--readings 100000] [--gateways 50] [--sensors 2000]
        [--per-message 100] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, datetime, timedelta

from cloud.rules.engine import Engine, load_rules
from edge.contract import Reading, SensorKind

T0 = datetime(2026, 11, 24, 8, tzinfo=UTC)


def readings(n: int, gateways: int, sensors: int) -> list[Reading]:
    return [
        Reading(
            kind=SensorKind.PARKING,
            org="comune-prato",
            gateway=f"gw-{i % gateways}",
            sensor=f"p-{i % sensors}",
            ts=T0 + timedelta(milliseconds=100 * i),
            fields={"occupied": 500, "capacity": 1000, "occupancy_pct": 50.0},
        )
        for i in range(n)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--readings", type=int, default=100_000)
    parser.add_argument("--gateways", type=int, default=50)
    parser.add_argument("--sensors", type=int, default=2_000)
    parser.add_argument("--per-message", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    data = readings(args.readings, args.gateways, args.sensors)
    best_observe, best_tick = float("inf"), float("inf")
    for _ in range(args.repeat):
        engine = Engine(load_rules())
        t0 = time.perf_counter()
        for start in range(0, len(data), args.per_message):
            arrived = engine.wall_clock()
            for r in data[start : start + args.per_message]:
                engine.observe(r, arrived)
        best_observe = min(best_observe, (time.perf_counter() - t0) / len(data))
        t0 = time.perf_counter()
        engine.tick()
        best_tick = min(best_tick, time.perf_counter() - t0)
    print(f"load average {os.getloadavg()[0]:.1f}")
    print(f"observe: {best_observe * 1e6:.2f} µs/reading ({args.readings:,} readings, default rules)")
    print(f"tick: {best_tick * 1e3:.1f} ms ({args.gateways} gateways, {args.sensors:,} sensors)")


if __name__ == "__main__":
    main()
