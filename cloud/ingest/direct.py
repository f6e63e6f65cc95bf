"""Readings that arrive over HTTP instead of MQTT: ingest's own verdict, stored before any answer.

The push API (`push.py`) and NGSI-LD notifications (`cloud.exchange`) hand wire batches here.
A batch goes through exactly what ingest applies to an MQTT message — the fast decoder (the
contract and the time limits, `fastpath.py`), the sensor directory (`policy.SensorChecks`) and
line protocol — and every refusal becomes the same dead letter (`deadletter.py`). One more check
exists only here: a sensor that the installation records give to another organisation is
refused, because over HTTP the sender names its sensors itself.

`write` returns only once InfluxDB accepted the readings and the dead letters, so a 200 over HTTP
means stored, as a PUBACK does on MQTT (`consumer.py`); when InfluxDB stays unreachable it raises
`StorageUnavailableError` and nothing is acknowledged: the sender retries with the same batch.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import orjson

from cloud.influx.client import InfluxClient, RejectedLine, RetryableWriteError
from cloud.influx.lineprotocol import line
from cloud.ingest.deadletter import DeadLetter
from cloud.ingest.fastpath import FastDecoder
from cloud.ingest.policy import SensorChecks, TimeLimits, UnknownSensorError
from cloud.ingest.stats import IngestStats
from edge.contract import ContractError, Envelope, short_repr

log = logging.getLogger(__name__)

_BACKOFF_MIN_S = 0.2
_BACKOFF_MAX_S = 2.0


class StorageUnavailableError(RuntimeError):
    """InfluxDB did not accept the write within the time allowed; nothing was acknowledged."""

    def __init__(self, cause: str, retry_after_s: int) -> None:
        self.cause = cause
        self.retry_after_s = retry_after_s
        super().__init__(f"InfluxDB unavailable: {cause}")


class ForeignOrgError(ContractError):
    """The batch names another organisation than the caller's."""

    reason = "forbidden"


class ForeignSensorError(ContractError):
    """The installation records give this sensor to another organisation."""

    reason = "forbidden"


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why one reading (or, with index None, a whole batch) was not stored."""

    index: int | None
    sensor: str
    field: str  # the path from the batch's root, e.g. `readings[3].fields.lat`
    reason: str  # the dead letter's reason: schema | policy | unknown_sensor | forbidden | influx ...
    message: str
    value: str  # a bounded repr of the offending value ("" when there is none)

    @classmethod
    def of(cls, error: ContractError, index: int | None, sensor: str = "") -> Refusal:
        value = "" if error.value is None else short_repr(error.value)
        return cls(index, sensor, error.field, error.reason, error.message, value)


# (reading index, path in the wire batch) -> the same in the sender's own document.
Renumber = Callable[[int, str], tuple[int, str]]


def _as_sent(index: int, path: str) -> tuple[int, str]:
    return index, path


@dataclass(slots=True)
class Admitted:
    """One batch's verdict before storage: line protocol for the good readings, refusals for the rest."""

    envelope: Envelope
    readings: int
    source: str
    payload: bytes
    renumber: Renumber = _as_sent
    lines: list[str] = field(default_factory=list)
    line_index: list[int] = field(default_factory=list)  # per line, the reading's index in the batch
    line_sensor: list[str] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    deadletters: list[DeadLetter] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return self.readings - len(self.refusals)


def wire_bytes(batch: dict[str, Any]) -> bytes:
    """A wire batch made from another document (GeoJSON, NGSI-LD), as bytes for the decoder.

    orjson writes NaN and infinities as null, which the contract would refuse as "expected a
    number, got NoneType"; a batch holding one goes through the stdlib, so that the contract
    refuses the value itself ("must be a finite number"), as it does on MQTT.
    """
    if not _has_non_finite(batch):
        return orjson.dumps(batch)
    return json.dumps(batch).encode()


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_non_finite(v) for v in value)
    return False


def owners_of(gateways: Iterable[tuple[str, Iterable[str]]]) -> dict[str, str]:
    """sensor -> org, from (org, sensors) per gateway of the installation records."""
    owners: dict[str, str] = {}
    for org, sensors in gateways:
        for sensor in sensors:
            owners.setdefault(sensor, org)
    return owners


class DirectIngest:
    """Admits and stores batches for callers that wait for the answer (thread-safe)."""

    def __init__(
        self,
        influx: InfluxClient,
        limits: TimeLimits,
        *,
        max_bytes: int,
        sensor_check: SensorChecks | None = None,
        owners: Mapping[str, str] | None = None,
        instance: str = "direct",
        publish: Callable[[DeadLetter], None] | None = None,
        retry_for_s: float = 10.0,
    ) -> None:
        self.influx = influx
        self.limits = limits
        self.sensor_check = sensor_check
        self.owners = dict(owners or {})
        self.instance = instance
        self.publish = publish
        self.retry_for_s = retry_for_s
        self.stats = IngestStats()
        self._decoder = FastDecoder(limits, max_bytes=max_bytes)
        # The decoder's caches are plain dicts shared by every request thread; decoding holds
        # the GIL anyway, so one lock costs no parallelism (the InfluxDB writes run outside it).
        self._decode_lock = threading.Lock()
        self._ns_lock = threading.Lock()
        self._last_ns = 0

    # -- admission (no I/O) ------------------------------------------------------------------

    def admit(
        self,
        payload: bytes,
        *,
        source: str,
        org: str,
        now: datetime | None = None,
        renumber: Renumber = _as_sent,
        sent: bytes | None = None,
        check_directory: bool = True,
    ) -> Admitted:
        """The verdict on one wire batch sent by `org`. Raises ContractError (ForeignOrgError
        among them) when the batch as a whole is unusable; see `refuse_whole`. `renumber` turns
        a reading's index and path into the sender's own, when the batch was made from another
        document (GeoJSON, NGSI-LD): refusals and dead letters then point where the sender wrote,
        and dead letters keep `sent`, the bytes the sender sent, instead of the batch made of them.
        `check_directory=False` skips the installation records (not the ownership check), for
        data that is by nature not in them: a partner's entities."""
        now = now or datetime.now(UTC)
        with self._decode_lock:
            msg = self._decoder.decode(payload, now)
        env = msg.envelope
        if env.org != org:
            raise ForeignOrgError(
                f"the batch is for organisation {env.org!r}; this token writes for {org!r}",
                field="org",
                value=env.org,
            )
        out = Admitted(env, msg.readings, source, sent or payload, renumber)
        refused = set()
        for rej in msg.rejects:
            refused.add(rej.index)
            error = rej.error
            # The time policy names the reading's own field (`ts`): make it a path from the root.
            if rej.index is not None and not error.field.startswith("readings["):
                where = f"readings[{rej.index}]" + (f".{error.field}" if error.field else "")
                error = type(error)(error.message, field=where, value=error.value)
            self._refuse(out, Refusal.of(error, rej.index, rej.sensor or ""), error)
        accepted = (i for i in range(msg.readings) if i not in refused)
        # The decoder keeps the good readings' lines in reading order (fastpath.Message).
        for lp_line, sensor, index in zip(msg.lines, msg.sensors, accepted, strict=True):
            owner_error = self._owner_error(env, sensor, check_directory=check_directory, index=index)
            if owner_error is not None:
                self._refuse(out, Refusal.of(owner_error, index, sensor), owner_error)
                continue
            out.lines.append(lp_line)
            out.line_index.append(index)
            out.line_sensor.append(sensor)
        out.refusals.sort(key=lambda r: -1 if r.index is None else r.index)
        return out

    def _owner_error(
        self, env: Envelope, sensor: str, *, check_directory: bool, index: int
    ) -> ContractError | None:
        where = f"readings[{index}].sensor"
        owner = self.owners.get(sensor)
        if owner is not None and owner != env.org:
            return ForeignSensorError(
                f"sensor {sensor!r} belongs to organisation {owner!r}", field=where, value=sensor
            )
        if check_directory and self.sensor_check is not None:
            why = self.sensor_check(env.org, env.gateway, sensor, env.kind.value)
            if why is not None:
                return UnknownSensorError(why, field=where, value=sensor)
        return None

    def _refuse(self, out: Admitted, refusal: Refusal, error: ContractError) -> None:
        if refusal.index is not None:
            index, where = out.renumber(refusal.index, refusal.field)
            refusal = replace(refusal, index=index, field=where)
            error = type(error)(error.message, field=where, value=error.value)
        out.refusals.append(refusal)
        env = out.envelope
        out.deadletters.append(
            DeadLetter.of(
                error,
                topic=out.source,
                payload=out.payload,
                org=env.org,
                gateway=env.gateway,
                sensor=refusal.sensor,
                seq=env.seq,
            )
        )

    def refuse_whole(self, error: ContractError, *, source: str, payload: bytes, org: str) -> DeadLetter:
        """The dead letter of a batch refused as a whole (not JSON, bad envelope, too large)."""
        return DeadLetter.of(error, topic=source, payload=payload, org=org)

    # -- storage ---------------------------------------------------------------------------------

    def write(
        self,
        batches: Sequence[Admitted],
        *,
        deadletters: Sequence[DeadLetter] = (),
        extra_lines: Sequence[str] = (),
    ) -> None:
        """Store the batches' good readings, then every dead letter (theirs, `deadletters`) and
        `extra_lines`; InfluxDB's own refusals join the batches' refusals and dead letters.

        Raises StorageUnavailableError, having acknowledged nothing, when InfluxDB stays
        unreachable for `retry_for_s`; writing the same batches again later is harmless (the same
        series and timestamps collapse).
        """
        t0 = time.perf_counter()
        deadline = time.monotonic() + self.retry_for_s
        lines = [lp for b in batches for lp in b.lines]
        owners = [(b, k) for b in batches for k in range(len(b.lines))]
        rejected = self._write_with_retry(lines, deadline) if lines else []
        for rej in rejected:
            batch, k = owners[rej.index]
            self._refuse_stored(batch, k, rej)
        dead = [dl for b in batches for dl in b.deadletters] + list(deadletters)
        dl_lines = [dl.to_line(self._unique_now(), self.instance) for dl in dead] + list(extra_lines)
        if dl_lines:
            self._write_with_retry(dl_lines, deadline)
        received = sum(b.readings for b in batches)
        written = len(lines) - len(rejected)
        self.stats.wrote(write_ms=(time.perf_counter() - t0) * 1000, points=len(lines))
        self.stats.add(
            messages=len(batches),
            readings_received=received,
            readings_written=written,
            readings_rejected=received - written,
            writes=1,
        )
        for dl in dead:
            self.stats.deadlettered(dl.reason)
            if self.publish is not None:
                self.publish(dl)

    def _refuse_stored(self, batch: Admitted, k: int, rej: RejectedLine) -> None:
        index, where = batch.renumber(batch.line_index[k], f"readings[{batch.line_index[k]}]")
        sensor = batch.line_sensor[k]
        message = f"InfluxDB refused the point: {rej.message}"
        batch.refusals.append(Refusal(index, sensor, where, "influx", message, ""))
        batch.refusals.sort(key=lambda r: -1 if r.index is None else r.index)
        env = batch.envelope
        batch.deadletters.append(
            DeadLetter.of(
                None,
                topic=batch.source,
                payload=batch.payload,
                org=env.org,
                gateway=env.gateway,
                sensor=sensor,
                seq=env.seq,
                reason="influx",
                message=message,
            )
        )

    def _write_with_retry(self, lines: list[str], deadline: float) -> list[RejectedLine]:
        delay = _BACKOFF_MIN_S
        while True:
            try:
                return self.influx.write_isolating(lines)
            except RetryableWriteError as exc:
                self.stats.add(write_retries=1)
                if time.monotonic() + delay > deadline:
                    raise StorageUnavailableError(str(exc), retry_after_s=5) from None
                log.warning("InfluxDB write failed (%s); retrying in %.1f s", exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, _BACKOFF_MAX_S)

    def _unique_now(self) -> datetime:
        """Distinct timestamps for dead letters, so that InfluxDB keeps every one of them."""
        with self._ns_lock:
            ns = max(time.time_ns(), self._last_ns + 1000)
            self._last_ns = ns
        return datetime.fromtimestamp(ns / 1e9, UTC)

    def report(self) -> None:
        """The counters as a `sitroom_ingest` point (instance tag), as the MQTT ingest reports its own."""
        snap = self.stats.snapshot(interval=True)
        fields = {k: v for k, v in snap.items() if isinstance(v, int | float)}
        try:
            point = line("sitroom_ingest", {"instance": self.instance}, fields, datetime.now(UTC))
            self.influx.write([point])
        except Exception as exc:  # noqa: BLE001  (self-monitoring must never stop the service)
            log.warning("could not report %s stats: %s", self.instance, exc)


__all__ = [
    "Admitted",
    "DirectIngest",
    "ForeignOrgError",
    "ForeignSensorError",
    "Refusal",
    "Renumber",
    "StorageUnavailableError",
    "owners_of",
    "wire_bytes",
]
