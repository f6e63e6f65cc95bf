"""Ingest's decoding paths on one core: µs per reading from message bytes to line protocol.

- typed: `FastDecoder.decode` on whole well-formed messages (msgspec structs, typedpath.py);
- dicts: the same messages on the orjson/dict fast path (what a message with one odd reading
  takes, and what ingest did before the typed path);
- declared: the typed path again, its admission holding the gateway's installation record and
  its meta (every sensor's kind), as in production: the directory is asked once per series;
- contract: `reference_decode` (`Admission.judge`: pydantic per reading, then `reading_line`),
  the slow path every verdict is checked against.

Messages of every kind, 1,000 readings each, as `bench/ingest.py` publishes them.

    .venv/bin/python bench/ingest_decode.py [--messages 40] [--repeat 5]
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cloud.core.admission import Admission, TimeLimits
from cloud.core.directory import GatewayEntry, SensorDirectory, SensorEntry
from cloud.ingest.fastpath import FastDecoder, reference_decode
from edge.contract import SensorKind, format_ts, topics

NOW = datetime.now(UTC).replace(microsecond=0)
LIMITS = TimeLimits(max_future=timedelta(minutes=5), max_age=timedelta(days=30))
MAX_BYTES = 16 * 1_048_576


def fields(kind: SensorKind, i: int) -> dict[str, Any]:
    if kind is SensorKind.PARKING:
        occupied = (i * 7) % 400
        return {"occupied": occupied, "capacity": 400, "occupancy_pct": occupied / 4}
    if kind is SensorKind.PARKING_SPOT:
        return {"occupied": i % 3 == 0}
    if kind is SensorKind.TRAFFIC:
        v = i % 90
        return {
            "vehicles": v,
            "heavy": v // 9,
            "interval_s": 60,
            "speed_kmh": 31.5 + i % 20,
            "occupancy_pct": 12.5,
        }
    return {"lat": 43.88 + i * 1e-5, "lon": 11.09 + i * 1e-5, "speed_kmh": 27.0, "heading_deg": 181.5}


def message(kind: SensorKind, seq: int, n: int) -> bytes:
    ts = format_ts(NOW - timedelta(seconds=seq))
    tags = {SensorKind.PARKING: {"zone": "centro"}, SensorKind.TRAFFIC: {"site": "viale-montegrappa"}}
    readings = [
        {
            "sensor": f"s-{i}",
            "ts": ts,
            "fields": fields(kind, i),
            **({"tags": tags[kind]} if kind in tags else {}),
        }
        for i in range(n)
    ]
    env = {"v": 1, "org": "bench", "gateway": "gw-1", "kind": kind.value, "seq": seq,
           "sent_at": format_ts(NOW), "readings": readings}  # fmt: skip
    return orjson.dumps(env)


def declared(kind: SensorKind, n: int) -> Admission:
    """An admission that knows gw-1 and its n sensors, from its records and from its meta."""
    sensors = [f"s-{i}" for i in range(n)]
    record = GatewayEntry("bench", "gw-1", "bench", {s: SensorEntry("gw-1", s, "bench") for s in sensors})
    admission = Admission(LIMITS, max_payload_bytes=MAX_BYTES, directory=SensorDirectory([record]))
    meta = {"v": 1, "org": "bench", "gateway": "gw-1",
            "sensors": [{"id": s, "kind": kind.value, "driver": "bench"} for s in sensors]}  # fmt: skip
    admission.learn(topics.parse(topics.meta("bench", "gw-1")), orjson.dumps(meta))
    return admission


def best_us(run: Callable[[bytes], object], payloads: list[bytes], readings: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.process_time()
        for p in payloads:
            run(p)
        best = min(best, time.process_time() - t)
    return best / readings * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=40, help="messages per kind")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 1000)  # as ingest runs (consumer._tune_gc)
    print(
        f"ingest decode bench: python {platform.python_version()}, {os.cpu_count()} cores, "
        "one thread, CPU time"
    )
    print(f"load average at start: {os.getloadavg()}")
    print(
        f"{'kind':14} {'typed µs':>9} {'dicts µs':>9} {'declared µs':>12} {'contract µs':>12}  (per reading)"
    )
    for kind in SensorKind:
        payloads = [message(kind, s, 1000) for s in range(args.messages)]
        n = 1000 * len(payloads)
        # A fresh admission each, as a fresh ingest has: no records, nothing declared yet.
        typed = FastDecoder(Admission(LIMITS, max_payload_bytes=MAX_BYTES))
        dicts = FastDecoder(Admission(LIMITS, max_payload_bytes=MAX_BYTES))
        t_us = best_us(lambda p, d=typed: d.decode(p, NOW), payloads, n, args.repeat)  # type: ignore[misc]
        d_us = best_us(lambda p, d=dicts: d._decode_dicts(p, NOW), payloads, n, args.repeat)  # type: ignore[misc]
        known = FastDecoder(declared(kind, 1000))
        k_us = best_us(lambda p, d=known: d.decode(p, NOW), payloads, n, args.repeat)  # type: ignore[misc]
        contract = Admission(LIMITS, max_payload_bytes=MAX_BYTES)
        c_us = best_us(lambda p, a=contract: reference_decode(p, NOW, a), payloads[:4], 4000, 1)  # type: ignore[misc]
        if typed.typed_messages == 0 or known.typed_messages == 0:
            raise SystemExit(f"{kind.value}: the typed path took no message")
        print(f"{kind.value:14} {t_us:>9.2f} {d_us:>9.2f} {k_us:>12.2f} {c_us:>12.1f}")


if __name__ == "__main__":
    main()
