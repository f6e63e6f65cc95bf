"""Ingest limits beyond the contract: timestamps too far in the future or too old to keep, and
readings from gateways or sensors the installation records do not know."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from edge.contract import ContractError, Reading, format_ts


class PolicyError(ContractError):
    reason = "policy"


class UnknownSensorError(ContractError):
    """The reading's gateway or sensor is not in the sensor directory (or not where it says)."""

    reason = "unknown_sensor"


class SensorChecks:
    """`SensorDirectory.check` with a bounded cache: a batch repeats the same few sensors."""

    _MAX_CACHED = 100_000

    def __init__(self, check: Callable[[str, str, str, str], str | None]) -> None:
        self._check = check
        self._cache: dict[tuple[str, str, str, str], str | None] = {}

    def __call__(self, org: str, gateway: str, sensor: str, kind: str) -> str | None:
        key = (org, gateway, sensor, kind)
        try:
            return self._cache[key]
        except KeyError:
            pass
        why = self._check(org, gateway, sensor, kind)
        if len(self._cache) < self._MAX_CACHED:
            self._cache[key] = why
        return why


@dataclass(frozen=True, slots=True)
class TimeLimits:
    max_future: timedelta
    max_age: timedelta

    def check(self, reading: Reading, now: datetime) -> PolicyError | None:
        # A gateway with a wrong clock must not write into the future, where the point would
        # hide behind "now" on every dashboard and defeat staleness checks.
        if reading.ts > now + self.max_future:
            return PolicyError(
                f"more than {self.max_future.total_seconds():g} s in the future (now {format_ts(now)})",
                field="ts",
                value=format_ts(reading.ts),
            )
        if reading.ts < now - self.max_age:
            return PolicyError(
                f"older than {self.max_age / timedelta(days=1):g} days (now {format_ts(now)})",
                field="ts",
                value=format_ts(reading.ts),
            )
        return None
