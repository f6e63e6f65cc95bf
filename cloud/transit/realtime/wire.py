"""Readings in their wire form (the dicts a batch's `readings` array holds), built directly.

The reader produces readings by the ten thousand per poll; a pydantic `Reading` each would cost
more than decoding the protobuf. The dicts follow the contract by construction (ids through
`edge.contract.gtfs.ids`, fields in their declared order and types) and ingest judges them by
the contract all the same, as it does a gateway's.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from edge.contract import format_ts

Wire = dict[str, Any]
_MAX_CACHED = 100_000


class Stamps:
    """Epoch seconds to the wire's `YYYY-MM-DDTHH:MM:SS.000Z`; a snapshot repeats a few seconds."""

    def __init__(self) -> None:
        self._cache: dict[int, str] = {}

    def __call__(self, epoch_s: int) -> str:
        text = self._cache.get(epoch_s)
        if text is None:
            if len(self._cache) >= _MAX_CACHED:
                self._cache.clear()
            text = self._cache[epoch_s] = format_ts(datetime.fromtimestamp(epoch_s, UTC))
        return text
