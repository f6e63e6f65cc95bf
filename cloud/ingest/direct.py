"""Readings that arrive over HTTP instead of MQTT: ingest's own verdict, stored before any answer.

The push API (`push.py`) hands wire batches here, and the NGSI-LD receiver (`cloud.exchange`)
through the `core.intake.Intake` protocol, which `DirectIngest.store` implements. A batch gets
exactly what ingest gives an MQTT message: the admission's verdict (`core/admission.py`: the
contract, the time limits, the sensor directory, on the fast decoder `fastpath.py`) and line
protocol, and every refusal becomes the same dead letter (`deadletter.py`). The directory's
check includes what only matters where a sender names its sensors itself: a sensor the
installation records give to another organisation is refused (`forbidden`); a partner's own
entities get `Admission.for_partners`, since our records cannot list them.

`write` returns only once InfluxDB accepted the readings and the dead letters, so a 200 over HTTP
means stored, as a PUBACK does on MQTT (`consumer.py`); when InfluxDB stays unreachable it raises
`StorageUnavailableError` and nothing is acknowledged: the sender retries with the same batch.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from cloud.core.admission import Admission
from cloud.core.intake import Refusal, Renumber, StorageUnavailableError, Submission, as_sent
from cloud.ingest.deadletter import DeadLetter
from cloud.ingest.fastpath import FastDecoder
from cloud.ingest.stats import IngestStats
from cloud.io.influx.client import InfluxClient, RejectedLine, RetryableWriteError
from cloud.io.influx.lineprotocol import line
from edge.contract import ContractError, Envelope

log = logging.getLogger(__name__)

_BACKOFF_MIN_S = 0.2
_BACKOFF_MAX_S = 2.0


class ForeignOrgError(ContractError):
    """The batch names another organisation than the caller's."""

    reason = "forbidden"


@dataclass(slots=True)
class Admitted:
    """One batch's verdict before storage: line protocol for the good readings, refusals for the rest."""

    envelope: Envelope
    readings: int
    source: str
    payload: bytes
    renumber: Renumber = as_sent
    companions: Mapping[int, str] = field(default_factory=dict)  # see core.intake.Submission
    lines: list[str] = field(default_factory=list)
    line_index: list[int] = field(default_factory=list)  # per line, the reading's index in the batch
    line_sensor: list[str] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    deadletters: list[DeadLetter] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return self.readings - len(self.refusals)


def _by_index(refusal: Refusal) -> int:
    return -1 if refusal.index is None else refusal.index


class DirectIngest:
    """Admits and stores batches for callers that wait for the answer (thread-safe)."""

    def __init__(
        self,
        influx: InfluxClient,
        admission: Admission,
        *,
        instance: str = "direct",
        publish: Callable[[DeadLetter], None] | None = None,
        retry_for_s: float = 10.0,
    ) -> None:
        self.influx = influx
        self.admission = admission
        self.instance = instance
        self.publish = publish
        self.retry_for_s = retry_for_s
        self.stats = IngestStats()
        self._decoder = FastDecoder(admission)
        self._partners = FastDecoder(admission.for_partners())
        # The decoders' caches are plain dicts shared by every request thread; decoding holds
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
        renumber: Renumber = as_sent,
        sent: bytes | None = None,
        companions: Mapping[int, str] | None = None,
        is_partner_data: bool = False,
    ) -> Admitted:
        """The verdict on one wire batch sent by `org`. Raises ContractError (ForeignOrgError
        among them) when the batch as a whole is unusable; see `refuse_whole`. `renumber` turns
        a reading's index and path into the sender's own, when the batch was made from another
        document (GeoJSON, NGSI-LD): refusals and dead letters then point where the sender wrote,
        and dead letters keep `sent`, the bytes the sender sent, instead of the batch made of them.
        `is_partner_data`: a partner's own entities (`Admission.for_partners`)."""
        now = now or datetime.now(UTC)
        decoder = self._partners if is_partner_data else self._decoder
        with self._decode_lock:
            msg = decoder.decode(payload, now)
        env = msg.envelope
        if env.org != org:
            raise ForeignOrgError(
                f"the batch is for organisation {env.org!r}; this token writes for {org!r}",
                field="org",
                value=env.org,
            )
        out = Admitted(env, msg.readings, source, sent or payload, renumber, companions or {})
        refused = set()
        for rej in msg.rejects:
            refused.add(rej.index)
            error = rej.error
            # The time policy and the directory name the reading's own field (`ts`, `sensor`):
            # make it a path from the root.
            if rej.index is not None and not error.field.startswith("readings["):
                where = f"readings[{rej.index}]" + (f".{error.field}" if error.field else "")
                error = type(error)(error.message, field=where, value=error.value)
            self._refuse(out, Refusal.of(error, rej.index, rej.sensor or ""), error)
        accepted = (i for i in range(msg.readings) if i not in refused)
        # The decoder keeps the good readings' lines in reading order (fastpath.MessageVerdict).
        for lp_line, sensor, index in zip(msg.lines, msg.sensors, accepted, strict=True):
            out.lines.append(lp_line)
            out.line_index.append(index)
            out.line_sensor.append(sensor)
        out.refusals.sort(key=_by_index)
        return out

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

    # -- core.intake.Intake ----------------------------------------------------------------------

    def store(
        self,
        org: str,
        source: str,
        sent: bytes,
        submissions: Sequence[Submission],
        *,
        refused: Sequence[Refusal] = (),
        gateway: str,
        is_partner_data: bool = False,
    ) -> list[Refusal]:
        """Admit, store and dead-letter a sender's document made into wire batches (see
        `core.intake.Intake.store`); every refusal, by index in the sender's document."""
        admitted = [
            self.admit(
                s.payload,
                source=source,
                org=org,
                renumber=s.renumber,
                sent=sent,
                companions=s.companions,
                is_partner_data=is_partner_data,
            )
            for s in submissions
        ]
        dead = [
            DeadLetter.of_refusal(r, topic=source, payload=sent, org=org, gateway=gateway) for r in refused
        ]
        self.write(admitted, deadletters=dead)
        return sorted([*refused, *(r for a in admitted for r in a.refusals)], key=_by_index)

    # -- storage ---------------------------------------------------------------------------------

    def write(
        self,
        batches: Sequence[Admitted],
        *,
        deadletters: Sequence[DeadLetter] = (),
        extra_lines: Sequence[str] = (),
    ) -> None:
        """Store the batches' good readings, then every dead letter (theirs, `deadletters`), the
        companions of the readings InfluxDB took and `extra_lines`; InfluxDB's own refusals join
        the batches' refusals and dead letters.

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
        refused_lines = {rej.index for rej in rejected}
        companions = [
            b.companions[b.line_index[k]]
            for n, (b, k) in enumerate(owners)
            if n not in refused_lines and b.line_index[k] in b.companions
        ]
        dead = [dl for b in batches for dl in b.deadletters] + list(deadletters)
        dl_lines = [dl.to_line(self._unique_now(), self.instance) for dl in dead]
        dl_lines += companions + list(extra_lines)
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
        batch.refusals.sort(key=_by_index)
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
]
