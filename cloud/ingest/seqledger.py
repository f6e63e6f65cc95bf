"""Per-gateway batch accounting (gaps, duplicates) that several ingest workers keep together.

A gateway numbers its batches (`seq`). What arrived is a set: the seqs seen, as sorted disjoint
intervals, and how many receipts. Gaps are the holes between the lowest and the highest seq
seen; duplicates are receipts beyond the first of a seq. Both depend only on *which* batches
arrived and how often, never on the order nor on which worker took them, so the accounts of
several workers on a shared subscription merge exactly: each worker, after writing a job and
before acking its messages, publishes the seqs of that job (`BatchReport`, retained nowhere,
QoS 1) on `sr/v1/services/ingest/{instance}/batches`; every worker of the group applies every
report, its own included, and so every worker holds the same accounts as one worker taking all
the traffic would. A report applied twice (redelivered after a reconnect) is recognised by its
(instance, run, job) and counts once. Decision 0016.
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Annotated

import orjson
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from edge.contract import ID_PATTERN, DecodeError, SchemaError

# A hole wider than this is a gateway whose counter jumped (a lost state file), not that many
# lost batches: it counts this much.
MAX_HOLE = 10_000
# Intervals kept per gateway; beyond, the oldest hole is settled: counted as lost for good.
MAX_INTERVALS = 10_000
# Runs whose applied jobs are remembered (for recognising a report applied twice).
MAX_RUNS = 1_000
REPORT_VERSION = 1
_ID = ID_PATTERN.removeprefix("^").removesuffix("$")
GatewayKey = Annotated[str, StringConstraints(pattern=f"^{_ID}/{_ID}$")]  # "org/gateway"
Seq = Annotated[int, Field(ge=0, le=2**63 - 1)]  # the contract's seq bounds


@dataclass(slots=True)
class SeqLedger:
    """The seqs of one gateway's batches that arrived, and how often."""

    starts: list[int] = field(default_factory=list)  # sorted interval starts, inclusive
    ends: list[int] = field(default_factory=list)  # the matching ends, inclusive
    receipts: int = 0
    duplicates: int = 0
    settled_gaps: int = 0  # holes dropped from the intervals, counted as lost

    def see(self, seq: int) -> None:
        self.receipts += 1
        starts, ends = self.starts, self.ends
        i = bisect_right(starts, seq) - 1  # the interval starting at or before seq
        if i >= 0 and seq <= ends[i]:
            self.duplicates += 1
            return
        joins_left = i >= 0 and ends[i] == seq - 1
        joins_right = i + 1 < len(starts) and starts[i + 1] == seq + 1
        if joins_left and joins_right:
            ends[i] = ends[i + 1]
            del starts[i + 1], ends[i + 1]
        elif joins_left:
            ends[i] = seq
        elif joins_right:
            starts[i + 1] = seq
        else:
            starts.insert(i + 1, seq)
            ends.insert(i + 1, seq)
            if len(starts) > MAX_INTERVALS:
                self.settled_gaps += min(starts[1] - ends[0] - 1, MAX_HOLE)
                ends[0] = ends[1]
                del starts[1], ends[1]

    @property
    def highest(self) -> int:
        return self.ends[-1] if self.ends else -1

    @property
    def gaps(self) -> int:
        holes = sum(min(s - e - 1, MAX_HOLE) for e, s in zip(self.ends, self.starts[1:], strict=False))
        return self.settled_gaps + holes

    def missing(self) -> list[tuple[int, int]]:
        """The holes, as inclusive (first, last) ranges."""
        return [(e + 1, s - 1) for e, s in zip(self.ends, self.starts[1:], strict=False)]


class BatchReport(BaseModel):
    """The seqs of the batches one write job of one worker held, published before their acks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: int = Field(default=REPORT_VERSION, ge=REPORT_VERSION, le=REPORT_VERSION)
    group: str = Field(max_length=63)  # the shared subscription group ("" alone)
    instance: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    run: str = Field(pattern=r"^[0-9a-f]{8,32}$")  # one process's life: its accounts start empty
    job: int = Field(ge=0)
    # "org/gateway" -> the seqs received in the job, a seq as often as it was received.
    gateways: dict[GatewayKey, list[Seq]] = Field(max_length=100_000)

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump())

    @classmethod
    def from_json(cls, payload: bytes) -> BatchReport:
        """Raises DecodeError (not JSON) or SchemaError (naming the field and value)."""
        try:
            body = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise DecodeError(f"not JSON: {exc}", field="payload", value=payload[:64]) from None
        try:
            report = cls.model_validate(body)
        except ValidationError as exc:
            e = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in e["loc"]) or "payload"
            raise SchemaError(e["msg"], field=where, value=e.get("input")) from None
        return report


@dataclass(slots=True)
class _Jobs:
    """The jobs of one run applied so far: all below `below`, and those in `above`."""

    below: int = 0
    above: set[int] = field(default_factory=set)

    def take(self, job: int) -> bool:
        """True the first time `job` is seen."""
        if job < self.below or job in self.above:
            return False
        self.above.add(job)
        while self.below in self.above:
            self.above.discard(self.below)
            self.below += 1
        return True


class SeqAccounts:
    """Every gateway's ledger, from this worker's jobs and its group's reports; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.ledgers: dict[tuple[str, str], SeqLedger] = {}
        self._runs: OrderedDict[tuple[str, str], _Jobs] = OrderedDict()
        self.reports_applied = 0
        self.reports_repeated = 0

    def apply(self, report: BatchReport) -> bool:
        """Count a job's seqs, once per (instance, run, job); False when it was counted already."""
        with self._lock:
            key = (report.instance, report.run)
            jobs = self._runs.get(key)
            if jobs is None:
                jobs = self._runs[key] = _Jobs()
                if len(self._runs) > MAX_RUNS:
                    self._runs.popitem(last=False)
            else:
                self._runs.move_to_end(key)
            if not jobs.take(report.job):
                self.reports_repeated += 1
                return False
            for name, seqs in report.gateways.items():
                if not seqs:
                    continue
                org, gateway = name.split("/", 1)
                ledger = self.ledgers.get((org, gateway))
                if ledger is None:
                    ledger = self.ledgers[(org, gateway)] = SeqLedger()
                for seq in seqs:
                    ledger.see(seq)
            self.reports_applied += 1
            return True

    def snapshot(self) -> dict[tuple[str, str], dict[str, int]]:
        with self._lock:
            return {
                key: {
                    "highest_seq": ledger.highest,
                    "gaps": ledger.gaps,
                    "duplicates": ledger.duplicates,
                    "batches": ledger.receipts,
                }
                for key, ledger in self.ledgers.items()
            }


__all__ = ["MAX_HOLE", "BatchReport", "SeqAccounts", "SeqLedger"]
