"""Decoder throughput on one core: sentences (frames) and readings per second, per driver.

Builds a realistic capture for each driver with its own encoder, then times `decoder.feed`
over it (best of --repeat runs, single thread, CPU time of this process):
- nmea: a receiver's 1 Hz output, RMC + VTG + GGA + GSA + 3 x GSV per epoch (7 sentences, one
  reading), and an RMC-only stream (every sentence a reading);
- traffic_counter: `$TCR` records (every record a reading);
- bosch_parking: ChirpStack v4 uplink events (every event a reading).

    .venv/bin/python bench/decode.py [--fixes 40000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from edge.drivers.bosch_parking import encoder as bosch
from edge.drivers.bosch_parking.decoder import BoschParkingDecoder
from edge.drivers.nmea import encoder as nmea
from edge.drivers.nmea.decoder import NmeaDecoder
from edge.drivers.traffic_counter import encoder as tcr
from edge.drivers.traffic_counter.decoder import TrafficCounterDecoder

T0 = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
GSA = nmea.sentence("GNGSA,A,3,05,07,13,15,18,20,24,29,,,,,1.62,0.91,1.34,1")
GSV = [
    nmea.sentence("GPGSV,3,1,11,05,32,301,41,07,21,047,37,13,64,067,44,15,44,213,42,1"),
    nmea.sentence("GPGSV,3,2,11,18,12,322,33,20,09,107,31,24,35,164,40,29,51,258,45,1"),
    nmea.sentence("GPGSV,3,3,11,30,05,035,,36,33,147,39,49,35,189,40,1"),
]


def receiver_output(n: int) -> bytes:
    out = []
    for i in range(n):
        ts = T0 + timedelta(seconds=i)
        lat, lon = 43.8777 + i * 1.3e-6, 11.1021 + i * 0.9e-6
        out.append(nmea.epoch(ts, lat, lon, 27.5 + i % 10, (i * 7) % 360) + GSA + b"".join(GSV))
    return b"".join(out)


def rmc_only(n: int) -> bytes:
    return b"".join(
        nmea.rmc(T0 + timedelta(seconds=i), 43.8777 + i * 1.3e-6, 11.1021, 30.0, 90.0) for i in range(n)
    )


def counter_export(n: int) -> bytes:
    return b"".join(
        tcr.record(
            site="repubblica", lane=1 + i % 3, direction="inbound", end=T0 + timedelta(minutes=i),
            interval_s=60, counts=tcr.split_classes(20 + i % 40, i % 5), speed_kmh=40.5, occupancy_pct=7.2,
        )
        for i in range(n)
    )  # fmt: skip


def uplinks(n: int) -> list[bytes]:
    return [
        bosch.uplink_json(
            dev_eui=f"70b3d5e75e00{i % 500:04x}", application_id="5c3b0a8e-3f0e-4c1a-9d7e-2b7c1f0e9a11",
            f_port=1, payload=bosch.status(i % 3 == 0), f_cnt=i // 500, ts=T0 + timedelta(seconds=i),
        )
        for i in range(n)
    ]  # fmt: skip


def best_cpu_s(run: Callable[[], int], repeat: int) -> tuple[float, int]:
    best, produced = float("inf"), 0
    for _ in range(repeat):
        t = time.process_time()
        produced = run()
        best = min(best, time.process_time() - t)
    return best, produced


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixes", type=int, default=40_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    n = args.fixes
    print(f"decode bench: python {platform.python_version()}, {os.cpu_count()} cores, one thread, CPU time")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average at start: {load} (a shared machine skews figures)")

    def nmea_run(data: bytes) -> Callable[[], int]:
        return lambda: len(NmeaDecoder(org="o", gateway="g", sensor="s").feed(data).readings)

    mixed = receiver_output(n // 7)
    cases: list[tuple[str, Callable[[], int], int]] = [
        ("nmea (receiver output, 7 sentences/fix)", nmea_run(mixed), mixed.count(b"\n")),
        ("nmea (RMC only, 1 reading/sentence)", nmea_run(rmc := rmc_only(n)), rmc.count(b"\n")),
    ]
    export = counter_export(n // 2)
    cases.append(
        (
            "traffic_counter ($TCR records)",
            lambda: len(TrafficCounterDecoder(org="o", gateway="g", sensor="s").feed(export).readings),
            export.count(b"\n"),
        )
    )
    events = uplinks(n // 4)

    def bosch_run() -> int:
        d = BoschParkingDecoder(org="o", gateway="g", devices={})
        return sum(len(d.uplink(e).readings) for e in events)

    cases.append(("bosch_parking (ChirpStack events)", bosch_run, len(events)))
    print(f"{'driver':45} {'frames':>9} {'frames/s':>11} {'readings/s':>11}")
    for name, run, frames in cases:
        cpu_s, readings = best_cpu_s(run, args.repeat)
        print(f"{name:45} {frames:>9} {frames / cpu_s:>11,.0f} {readings / cpu_s:>11,.0f}")


if __name__ == "__main__":
    main()
