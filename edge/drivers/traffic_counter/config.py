"""Config of the `traffic_counter` driver: a loop counter's serial export."""

from __future__ import annotations

from typing import Literal

from edge.contract import Id
from edge.drivers.serialconfig import SerialDriverConfig


class TrafficCounterConfig(SerialDriverConfig):
    """A traffic counter cabinet sending `$TCR` interval records (docs/protocols/traffic-counter.md)."""

    driver: Literal["traffic_counter"] = "traffic_counter"
    site: Id | None = None  # when set, records of another site are rejected (a miswired cabinet)
