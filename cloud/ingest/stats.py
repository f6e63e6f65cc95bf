"""Ingest counters and per-gateway sequence accounting (gaps and duplicates)."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

_MAX_TRACKED_MISSING = 10_000


@dataclass(slots=True)
class SeqTracker:
    """Counts lost and duplicate batches of one gateway from its batch sequence numbers.

    A seq above the highest seen opens a gap for the ones skipped; a late arrival closes its
    gap (QoS 1 redelivery after a reconnect is out of order); anything else is a duplicate.
    """

    highest: int = -1
    missing: set[int] = field(default_factory=set)
    duplicates: int = 0
    batches: int = 0

    def see(self, seq: int) -> None:
        self.batches += 1
        if seq > self.highest:
            if self.highest >= 0:
                self.missing.update(range(max(self.highest + 1, seq - _MAX_TRACKED_MISSING), seq))
            self.highest = seq
        elif seq in self.missing:
            self.missing.discard(seq)
        else:
            self.duplicates += 1

    @property
    def gaps(self) -> int:
        return len(self.missing)


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
        self.seq: dict[tuple[str, str], SeqTracker] = {}

    def see_seq(self, org: str, gateway: str, seq: int) -> None:
        with self._lock:
            self.seq.setdefault((org, gateway), SeqTracker()).see(seq)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)

    def deadlettered(self, reason: str, n: int = 1) -> None:
        with self._lock:
            self.deadletters[reason] += n

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
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
                "gateways": {
                    f"{org}/{gw}": {"highest_seq": t.highest, "gaps": t.gaps, "duplicates": t.duplicates}
                    for (org, gw), t in sorted(self.seq.items())
                },
            }
