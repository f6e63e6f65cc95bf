"""Ingest limits beyond the contract: timestamps too far in the future or too old to keep."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from edge.contract import ContractError, Reading, format_ts


class PolicyError(ContractError):
    reason = "policy"


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
