"""Traffic counter `$TCR` encoder, for the virtual counter and round trips."""

from __future__ import annotations

from datetime import UTC, datetime

from edge.drivers.traffic_counter.decoder import CLASSES, crc16


def record(
    *,
    site: str,
    lane: int,
    direction: str,
    end: datetime,
    interval_s: int,
    counts: dict[str, int],
    speed_kmh: float,
    occupancy_pct: float,
) -> bytes:
    """One `$TCR` line; `counts` by class name (missing classes are 0)."""
    unknown = set(counts) - set(CLASSES)
    if unknown:
        raise ValueError(f"unknown vehicle classes {sorted(unknown)}; known: {', '.join(CLASSES)}")
    end = end.astimezone(UTC)
    vehicles = sum(counts.values())
    speed = f"{speed_kmh:.1f}" if vehicles else ""
    body = ",".join(
        [
            "TCR",
            "1",
            site,
            str(lane),
            direction,
            f"{end:%Y%m%dT%H%M%SZ}",
            str(interval_s),
            *(str(counts.get(c, 0)) for c in CLASSES),
            speed,
            f"{occupancy_pct:.1f}",
        ]
    ).encode("ascii")
    return b"$" + body + b"*" + f"{crc16(body):04X}".encode() + b"\r\n"


def split_classes(vehicles: int, heavy: int) -> dict[str, int]:
    """A plausible class mix for a total and its heavy share (the simulators know only those)."""
    light = vehicles - heavy
    bus, sattel = heavy // 5, heavy // 4
    krad, lfw = light // 20, light // 8
    return {
        "krad": krad,
        "pkw": light - krad - lfw,
        "lfw": lfw,
        "lkw": heavy - bus - sattel,
        "sattel": sattel,
        "bus": bus,
    }
