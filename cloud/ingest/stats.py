"""Ingest counters, per-gateway sequence accounting (gaps, duplicates) and clock checks (lag, offset)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cloud.ingest.seqledger import SeqAccounts


@dataclass(slots=True)
class GatewayClock:
    """The latest timing of one gateway's batches, measured at receipt.

    `lag_s` (receive time - newest reading's ts) is how old the data is when it reaches us:
    spooled backlog after an outage, or a slow sensor. `offset_s` (receive time - the batch's
    `sent_at`) is the gateway clock's error plus transit; beyond the threshold, in either
    direction, the clock is flagged (a fresh batch cannot take minutes to cross a broker).
    """

    lag_s: float = 0.0
    offset_s: float = 0.0
    is_clock_suspect: bool = False


class IngestStats:
    """Thread-safe counters; `snapshot()` is what the health topic and InfluxDB receive."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.messages = 0
        self.readings_received = 0
        self.readings_written = 0
        self.readings_rejected = 0
        self.deadletters: Counter[str] = Counter()
        self.writes = 0
        self.write_retries = 0
        self.last_write_ms = 0.0
        self.last_batch_points = 0
        self.buffered = 0
        self.buffered_bytes = 0
        self.buffer_fill_pct = 0.0
        self.writes_in_flight = 0
        self.fast_path_fallbacks = 0
        self.batch_reports_refused = 0
        # Gaps and duplicates of all the traffic (with a shared subscription, every worker's:
        # cloud/ingest/seqledger.py); `received`, the batches this worker wrote, per gateway.
        self.accounts = SeqAccounts()
        self.received: Counter[tuple[str, str]] = Counter()
        self.clocks: dict[tuple[str, str], GatewayClock] = {}
        # Per reporting interval: rate, write latency and batch sizes since the last snapshot.
        self._interval_start = time.monotonic()
        self._interval_written = 0
        self._write_ms: list[float] = []
        self._batch_points: list[int] = []

    def see_clock(
        self, org: str, gateway: str, *, lag_s: float | None, offset_s: float, threshold_s: float
    ) -> None:
        with self._lock:
            clock = self.clocks.setdefault((org, gateway), GatewayClock())
            if lag_s is not None:
                clock.lag_s = lag_s
            clock.offset_s = offset_s
            clock.is_clock_suspect = abs(offset_s) > threshold_s

    def wrote(self, *, write_ms: float, points: int) -> None:
        with self._lock:
            self.last_write_ms = write_ms
            self.last_batch_points = points
            if len(self._write_ms) < 100_000:
                self._write_ms.append(write_ms)
                self._batch_points.append(points)

    def wrote_batches(self, batches: Iterable[tuple[str, str, int]]) -> None:
        """Batches (org, gateway, seq) this worker wrote; the accounts learn them separately."""
        with self._lock:
            self.received.update((org, gateway) for org, gateway, _ in batches)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)

    def deadlettered(self, reason: str, n: int = 1) -> None:
        with self._lock:
            self.deadletters[reason] += n

    def snapshot(self, *, interval: bool = False) -> dict[str, Any]:
        """The counters; `interval=True` also closes the rate/latency interval (the reporter's)."""
        accounts = self.accounts.snapshot()
        with self._lock:
            now = time.monotonic()
            elapsed = max(now - self._interval_start, 1e-9)
            rate = (self.readings_written - self._interval_written) / elapsed
            write_ms = sorted(self._write_ms)
            points = self._batch_points
            if interval:
                self._interval_start, self._interval_written = now, self.readings_written
                self._write_ms, self._batch_points = [], []
            return {
                "messages": self.messages,
                "readings_received": self.readings_received,
                "readings_written": self.readings_written,
                "readings_rejected": self.readings_rejected,
                "deadletters": sum(self.deadletters.values()),
                "deadletters_by_reason": dict(self.deadletters),
                "writes": self.writes,
                "write_retries": self.write_retries,
                "last_write_ms": round(self.last_write_ms, 2),
                "last_batch_points": self.last_batch_points,
                "buffered": self.buffered,
                "buffered_bytes": self.buffered_bytes,
                "buffer_fill_pct": round(self.buffer_fill_pct, 1),
                "writes_in_flight": self.writes_in_flight,
                "fast_path_fallbacks": self.fast_path_fallbacks,
                "batch_reports_refused": self.batch_reports_refused,
                "readings_per_s": round(rate, 1),
                "write_ms_p50": round(write_ms[len(write_ms) // 2], 2) if write_ms else 0.0,
                "write_ms_max": round(write_ms[-1], 2) if write_ms else 0.0,
                "batch_points_mean": round(sum(points) / len(points), 1) if points else 0.0,
                "gateways": {
                    f"{org}/{gw}": {
                        **accounts.get((org, gw), {}),
                        "received": self.received[(org, gw)],
                        **self._clock_fields(org, gw),
                    }
                    for org, gw in sorted(accounts.keys() | self.received.keys())
                },
            }

    def _clock_fields(self, org: str, gateway: str) -> dict[str, float | bool]:
        clock = self.clocks.get((org, gateway))
        if clock is None:
            return {}
        return {
            "lag_s": round(clock.lag_s, 3),
            "clock_offset_s": round(clock.offset_s, 3),
            "clock_suspect": clock.is_clock_suspect,
        }
