"""NMEA 0183 encoder: the sentences a receiver would send for a fix (simulators, round trips).

Positions are written with 6 decimals of a minute, which is exact for 7 decimals of a degree
(1e-7 degree = 6e-6 minute), so encode → decode returns the very same lat and lon.
"""

from __future__ import annotations

from datetime import UTC, datetime

from edge.drivers.nmea.decoder import KNOT_KMH, checksum


def sentence(body: str) -> bytes:
    """`$body*hh\\r\\n` with its checksum."""
    raw = body.encode("ascii")
    return b"$" + raw + b"*" + f"{checksum(raw):02X}".encode() + b"\r\n"


def _coord(value: float, deg_digits: int, hemis: str) -> tuple[str, str]:
    e7 = round(value * 10_000_000)
    hemi = hemis[1] if e7 < 0 else hemis[0]
    e7 = abs(e7)
    deg, rest = divmod(e7, 10_000_000)
    minutes_e6 = rest * 6  # rest x 60 / 10^7 minutes, with 6 decimals: exact
    return f"{deg:0{deg_digits}d}{minutes_e6 // 1_000_000:02d}.{minutes_e6 % 1_000_000:06d}", hemi


def _time(ts: datetime) -> str:
    ts = ts.astimezone(UTC)
    return f"{ts:%H%M%S}.{ts.microsecond // 10_000:02d}"


def rmc(
    ts: datetime, lat: float, lon: float, speed_kmh: float, heading_deg: float, *, talker: str = "GP"
) -> bytes:
    ts = ts.astimezone(UTC)
    la, ns = _coord(lat, 2, "NS")
    lo, ew = _coord(lon, 3, "EW")
    knots = speed_kmh / KNOT_KMH
    return sentence(
        f"{talker}RMC,{_time(ts)},A,{la},{ns},{lo},{ew},{knots:.3f},{heading_deg:.2f},{ts:%d%m%y},,,A"
    )


def gga(
    ts: datetime, lat: float, lon: float, *, satellites: int = 9, hdop: float = 0.9, talker: str = "GP"
) -> bytes:
    la, ns = _coord(lat, 2, "NS")
    lo, ew = _coord(lon, 3, "EW")
    return sentence(
        f"{talker}GGA,{_time(ts)},{la},{ns},{lo},{ew},1,{satellites:02d},{hdop:.1f},65.0,M,47.0,M,,"
    )


def vtg(speed_kmh: float, heading_deg: float, *, talker: str = "GP") -> bytes:
    return sentence(f"{talker}VTG,{heading_deg:.2f},T,,M,{speed_kmh / KNOT_KMH:.3f},N,{speed_kmh:.3f},K,A")


def epoch(
    ts: datetime, lat: float, lon: float, speed_kmh: float, heading_deg: float, *, talker: str = "GP"
) -> bytes:
    """One second of a typical receiver's output: RMC, VTG, GGA."""
    return (
        rmc(ts, lat, lon, speed_kmh, heading_deg, talker=talker)
        + vtg(speed_kmh, heading_deg, talker=talker)
        + gga(ts, lat, lon, talker=talker)
    )
