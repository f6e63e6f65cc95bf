"""Per-organisation rate limits in readings per second: a token bucket that may go into debt.

A request is let in while the organisation's bucket holds at least one token, and then pays for
the readings it carried, which is only known once it is decoded; a large batch may so take the
bucket below zero, and the next requests wait (HTTP 429 with `Retry-After`, RFC 9110 §10.2.3)
until it has refilled. Over a second, an organisation gets `rate` readings, with bursts up to
`burst`.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    def __init__(self, rate: float, burst: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"rate must be > 0 and burst >= 1, got rate {rate}, burst {burst}")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def _refilled(self, key: str) -> _Bucket:
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(self.burst, now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        return bucket

    def retry_after_s(self, key: str) -> int:
        """0 when `key` may send now, else the whole seconds until it may."""
        with self._lock:
            bucket = self._refilled(key)
            if bucket.tokens >= 1:
                return 0
            return max(1, math.ceil((1 - bucket.tokens) / self.rate))

    def charge(self, key: str, cost: float) -> None:
        with self._lock:
            self._refilled(key).tokens -= cost


__all__ = ["RateLimiter"]
