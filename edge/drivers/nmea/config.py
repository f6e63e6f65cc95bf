"""Config of the `nmea` driver: a GNSS receiver on a serial line."""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator

from edge.contract import Id
from edge.drivers.nmea.decoder import TALKERS
from edge.drivers.serialconfig import SerialDriverConfig


class NmeaConfig(SerialDriverConfig):
    """A vehicle's GNSS receiver speaking NMEA 0183 (4800 or 9600 8N1 is usual)."""

    driver: Literal["nmea"] = "nmea"
    vehicle_type: Id | None = None  # tag of every reading, e.g. bus
    route: Id | None = None  # tag of every reading, e.g. lam-blu
    talkers: list[str] = sorted(TALKERS)

    @field_validator("talkers")
    @classmethod
    def _talkers(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - TALKERS)
        if unknown:
            raise ValueError(f"{', '.join(unknown)} not among {', '.join(sorted(TALKERS))}")
        return value

    @property
    def tags(self) -> dict[str, str]:
        return {k: v for k, v in (("vehicle_type", self.vehicle_type), ("route", self.route)) if v}
