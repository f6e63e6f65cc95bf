"""Batch payloads built from readings' JSON, byte for byte what `edge.contract.encode` writes.

Readings are encoded once, when read (they are staged in the spool as JSON), and a batch is the
envelope around the joined readings. `sent_at` has a fixed width (24 bytes), so the publisher
writes the moment it hands the message to MQTT into the stored payload without re-encoding it:
the cloud compares it with the arrival time to spot a gateway whose clock is off.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import orjson

from edge.contract import SCHEMA_VERSION, Reading, SensorKind, format_ts
from edge.contract.codec import reading_to_wire

SENT_AT_WIDTH = len("2026-11-24T08:00:00.000Z")


def fragment(readings: list[Reading]) -> bytes:
    """The readings' wire JSON, comma-joined (a slice of a batch's `readings` array)."""
    return b",".join(orjson.dumps(reading_to_wire(r)) for r in readings)


def chunks(
    fragments: list[tuple[int, bytes]], max_readings: int, max_bytes: int
) -> Iterator[tuple[int, bytes]]:
    """Regroup staged (count, fragment) pieces into batches of at most `max_readings` readings
    and `max_bytes` of readings (only a single reading larger than that can exceed it)."""
    count, size = 0, 0
    parts: list[bytes] = []
    for n, frag in _by_reading(fragments, max_readings, max_bytes):
        if parts and (count + n > max_readings or size + len(frag) > max_bytes):
            yield count, b",".join(parts)
            count, parts, size = 0, [], 0
        count += n
        parts.append(frag)
        size += len(frag) + 1
    if parts:
        yield count, b",".join(parts)


def _by_reading(
    fragments: list[tuple[int, bytes]], max_readings: int, max_bytes: int
) -> Iterator[tuple[int, bytes]]:
    for n, frag in fragments:
        if n <= max_readings and len(frag) <= max_bytes:
            yield n, frag
            continue
        # A large piece (a long poll after a pause): split it into its readings.
        for item in orjson.loads(b"[" + frag + b"]"):
            yield 1, orjson.dumps(item)


def payload(
    *, org: str, gateway: str, kind: SensorKind, seq: int, sent_at: datetime, readings: bytes
) -> tuple[bytes, int]:
    """The batch message and the offset of its `sent_at` value."""
    # Ids match [a-z0-9-] and kinds are fixed names, so nothing here needs JSON escaping.
    head = (
        f'{{"v":{SCHEMA_VERSION},"org":"{org}","gateway":"{gateway}","kind":"{kind.value}",'
        f'"seq":{seq},"sent_at":"'
    ).encode()
    return head + format_ts(sent_at).encode() + b'","readings":[' + readings + b"]}", len(head)


def with_sent_at(data: bytes, offset: int, sent_at: datetime) -> bytes:
    if offset < 0:
        return data
    return data[:offset] + format_ts(sent_at).encode() + data[offset + SENT_AT_WIDTH :]
