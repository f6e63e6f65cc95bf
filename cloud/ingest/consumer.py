"""The ingest service: consume data batches at QoS 1, write them to InfluxDB, then ack.

paho-mqtt 2 with `manual_ack=True` (aiomqtt acks on receipt): a message is acknowledged only
after InfluxDB accepted its readings and its dead letters, so a crash or an InfluxDB outage
leaves it unacked in the persistent session and the broker delivers it again. Redelivered
readings rewrite the same series and timestamps, which InfluxDB collapses.

Pipeline (threads)::

    paho network thread --> bounded buffer --> decoder (this run loop) --> write jobs
        --> `write_workers` writer threads, one HTTP connection each --> AckSequencer

The decoder turns messages into line protocol on the fast path (`fastpath.py`), which gives the
admission's verdict (cloud/core/admission.py: contract, time limits, sensor directory), and
learns the sensors' kinds from the gateways' retained meta as it comes; it cuts write
jobs of about `write_batch_points` readings; the writers write them concurrently (InfluxDB 1.6
takes ~45 % more with two writers than with one, shared/NOTES.md); the sequencer sends PUBACKs
strictly in the order the PUBLISHes arrived ([MQTT-4.6.0-2]), so a job is acked only when it
and every earlier job are written.

Backpressure: the buffer is bounded in messages and bytes and the job queue holds at most one
job per writer; when they are full paho's network thread blocks, stops reading the socket, and
the broker holds the rest (it keeps QoS 1 messages for us).
"""

from __future__ import annotations

import gc
import logging
import secrets
import threading
import time
from bisect import bisect_right
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt

from cloud.core.admission import Admission
from cloud.core.settings import CloudSettings
from cloud.ingest.deadletter import DeadLetter
from cloud.ingest.fastpath import FastDecoder
from cloud.ingest.gateway_health import health_lines, status_line
from cloud.ingest.seqledger import BatchReport
from cloud.ingest.stats import IngestStats
from cloud.io.influx import retention
from cloud.io.influx.client import (
    InfluxClient,
    QueryError,
    RejectedLine,
    RejectedWriteError,
    RetryableWriteError,
    is_missing_database,
)
from cloud.io.influx.lineprotocol import line
from cloud.io.influx.policy import DataPolicy, RoutedInfluxClient
from cloud.io.mqtt import BrokerConnection
from edge.contract import ContractError, PayloadTooLargeError, format_ts, is_id, topics
from edge.contract.topics import Channel

log = logging.getLogger(__name__)

_BACKOFF_MIN_S = 0.5
_BACKOFF_MAX_S = 30.0
_ROUND_WRITES = 4  # a round holds at most this many full writes' lines (several databases)
_BATCHES_PREFIX = topics.ALL_INGEST_BATCHES.split("+", 1)[0]


@dataclass(frozen=True, slots=True)
class Inbound:
    topic: str
    payload: bytes
    mid: int
    qos: int
    generation: int = 0  # the connection it arrived on (BrokerConnection.generation)
    received_at: float = 0.0  # time.time() at receipt


@dataclass(slots=True)
class Prepared:
    """What one round of messages turns into: lines to write, dead letters, messages to ack."""

    lines: list[str]
    sensors: list[str]  # per reading line: its sensor
    deadletters: list[DeadLetter]
    acks: list[Inbound]
    readings: int
    # Gateways' health and status points: written beside the dead letters, not counted as readings.
    monitoring: list[str] = field(default_factory=list)
    # (org, gateway, seq) of every batch whose envelope was accepted: accounted once written.
    seqs: list[tuple[str, str, int]] = field(default_factory=list)
    # Per message that gave lines: its first line, and the message (not a tuple per line: the
    # owner is only looked up for the rare line InfluxDB refuses).
    starts: list[int] = field(default_factory=list)
    sources: list[Inbound] = field(default_factory=list)
    # Per message that gave lines: the database its readings go to (the data policy's choice
    # for its org and kind; one message is one gateway's batch of one kind), and lines per one.
    databases: list[str] = field(default_factory=list)
    per_database: Counter[str] = field(default_factory=Counter)

    def add(self, item: Inbound, lines: list[str], sensors: list[str], database: str = "") -> None:
        if lines:
            self.starts.append(len(self.lines))
            self.sources.append(item)
            self.databases.append(database)
            self.per_database[database] += len(lines)
            self.lines += lines
            self.sensors += sensors

    @property
    def largest_write(self) -> int:
        """The lines of the database that has most: the largest `/write` this round makes."""
        return max(self.per_database.values(), default=0)

    def owner(self, index: int) -> tuple[Inbound, str]:
        """The message and sensor of line `index`."""
        return self.sources[bisect_right(self.starts, index) - 1], self.sensors[index]

    def by_database(self) -> list[tuple[str, list[str], list[int] | None]]:
        """(database, its lines, each line's index in `lines`) per database; with one database
        (the usual case) the lines themselves and no index, at no cost."""
        first = self.databases[0] if self.databases else ""
        if all(db == first for db in self.databases):
            return [(first, self.lines, None)] if self.lines else []
        groups: dict[str, list[int]] = {}
        ends = [*self.starts[1:], len(self.lines)]
        for db, start, end in zip(self.databases, self.starts, ends, strict=True):
            groups.setdefault(db, []).extend(range(start, end))
        return [(db, [self.lines[i] for i in index], index) for db, index in groups.items()]


class Buffer:
    """A FIFO of received messages bounded in count and in bytes; `put` blocks when full."""

    def __init__(self, max_messages: int, max_bytes: int) -> None:
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self._items: deque[Inbound] = deque()
        self._bytes = 0
        self._cond = threading.Condition()

    def put(self, item: Inbound, stop: threading.Event) -> bool:
        size = len(item.payload)
        with self._cond:
            # One message alone may exceed max_bytes (up to max_payload_bytes): take it when empty.
            while self._items and (
                len(self._items) >= self.max_messages or self._bytes + size > self.max_bytes
            ):
                if stop.is_set():
                    return False
                self._cond.wait(0.5)
            self._items.append(item)
            self._bytes += size
            self._cond.notify_all()
            return True

    def get(self, timeout_s: float) -> Inbound | None:
        with self._cond:
            if not self._items and not self._cond.wait_for(lambda: bool(self._items), timeout_s):
                return None
            item = self._items.popleft()
            self._bytes -= len(item.payload)
            self._cond.notify_all()
            return item

    def fill(self) -> tuple[int, int, float]:
        """(messages, bytes, percent of the tighter bound)."""
        with self._cond:
            n, b = len(self._items), self._bytes
        return n, b, 100.0 * max(n / self.max_messages, b / self.max_bytes)


class AckSequencer:
    """Acks write jobs in the order they were cut, whatever order they finish in.

    [MQTT-4.6.0-2]: PUBACKs go out in the order the PUBLISHes were received. A job that never
    finishes (stopping while InfluxDB is down) holds back every later one: the broker
    redelivers them all, and rewriting them is idempotent.
    """

    def __init__(self, ack: Callable[[Inbound], None]) -> None:
        self._ack = ack
        self._lock = threading.Lock()
        self._next_cut = 0
        self._next_ack = 0
        self._done: dict[int, list[Inbound]] = {}

    def cut(self) -> int:
        with self._lock:
            n = self._next_cut
            self._next_cut += 1
            return n

    def done(self, number: int, items: list[Inbound]) -> None:
        with self._lock:
            self._done[number] = items
            while self._next_ack in self._done:
                for item in self._done.pop(self._next_ack):
                    self._ack(item)
                self._next_ack += 1

    @property
    def pending(self) -> int:
        with self._lock:
            return self._next_cut - self._next_ack


@dataclass(slots=True)
class _Job:
    number: int
    prepared: Prepared


def data_subscription(
    settings: CloudSettings, channel: Channel = Channel.DATA, org: str | None = None
) -> str:
    """The topic filter ingest subscribes to for `org` (default: the first of `org_filter`):
    shared when `share_group` is set."""
    data_filter = f"{topics.ROOT}/{org or settings.org_filters[0]}/+/{channel.value}"
    if channel is Channel.DATA:
        data_filter += "/+"
    if settings.share_group:
        # MQTT v5 shared subscription (also honoured for v3.1.1 clients by Mosquitto 2, EMQX,
        # VerneMQ, HiveMQ): each message goes to one worker of the group.
        return f"$share/{settings.share_group}/{data_filter}"
    return data_filter


def meta_subscription(settings: CloudSettings, org: str | None = None) -> str:
    """The gateways' retained meta, never shared: every worker needs every declaration, and a
    broker sends no retained message to a shared subscription ([MQTT-4.8.2])."""
    return f"{topics.ROOT}/{org or settings.org_filters[0]}/+/{Channel.META.value}"


def subscriptions(settings: CloudSettings) -> list[tuple[str, int]]:
    """Everything ingest subscribes to, at QoS 1, for each organisation of `org_filter`."""
    out = []
    for org in settings.org_filters:
        out += [
            (data_subscription(settings, Channel.DATA, org), 1),
            (data_subscription(settings, Channel.HEALTH, org), 1),
            (data_subscription(settings, Channel.STATUS, org), 1),
            (meta_subscription(settings, org), 1),
        ]
    if settings.share_group:
        # Every worker's batch reports, never shared: each worker keeps the group's accounts.
        out.append((topics.ALL_INGEST_BATCHES, 1))
    return out


def _tune_gc() -> None:
    """Keep the cyclic garbage collector out of the hot path.

    Each 1,000-reading message decodes into ~3,000 new dicts, so CPython's default gen-0
    threshold (700 allocations) runs a collection several times per message, and the older
    generations walk every long-lived object (the decoder's caches) again and again: measured,
    that made `orjson.loads` 5x slower inside ingest than alone. What ingest allocates is
    acyclic and freed by reference counting; the collector only has to catch rare cycles, so
    it runs far less often, and what exists at start-up (modules, settings) is frozen out of
    its walks.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 1000)


class Ingest:
    def __init__(
        self,
        settings: CloudSettings,
        *,
        influx: InfluxClient | None = None,
        admission: Admission | None = None,
        policy: DataPolicy | None = None,
    ) -> None:
        self.settings = settings
        # Which database each point goes to (decision 0017); without a policy file, one.
        self.policy = policy or DataPolicy.load(settings.data_policy, settings.influx_db)
        self._prepared_dbs: set[str] = set()
        self._prepared_lock = threading.Lock()
        self.influx = influx or self._client()
        # The verdict on every reading; the decoder thread alone uses it (and teaches it).
        self.admission = admission or Admission.from_settings(settings)
        self.decoder = FastDecoder(self.admission)
        self.stats = IngestStats()
        self._inbox = Buffer(settings.buffer_messages, settings.buffer_bytes)
        self._jobs: deque[_Job | None] = deque()
        self._jobs_cond = threading.Condition()
        self._stop = threading.Event()
        self._started = time.monotonic()
        self._last_ns = 0
        self._dl_lock = threading.Lock()
        self._log_counts: Counter[str] = Counter()
        self._log_examples: dict[str, str] = {}
        self._sequencer = AckSequencer(self._ack)
        # This life of the process: the group tells its batch reports from an earlier life's.
        self.run_id = secrets.token_hex(8)
        self.subscription = data_subscription(settings)
        self.conn = BrokerConnection(
            settings.broker,
            client_id=f"sitroom-ingest-{settings.instance}",
            subscriptions=subscriptions(settings),
            on_message=self._on_message,
            manual_ack=True,
            protocol=settings.mqtt_protocol,
            session_expiry_s=settings.session_expiry_s,
        )

    def _client(self) -> InfluxClient:
        s = self.settings
        return RoutedInfluxClient(
            s.influx_url,
            self.policy,
            username=s.influx_username,
            password=s.influx_password,
            gzip_min_bytes=s.influx_gzip_min_bytes or 2**62,
        )

    # -- paho's network thread -------------------------------------------------------------
    def _on_message(self, msg: mqtt.MQTTMessage) -> None:
        item = Inbound(msg.topic, bytes(msg.payload), msg.mid, msg.qos, self.conn.generation, time.time())
        # Blocking here is the backpressure: paho stops reading and the broker keeps the rest.
        self._inbox.put(item, self._stop)

    def _ack(self, item: Inbound) -> None:
        # A packet id from an earlier connection is meaningless now: the broker resends that
        # message on the new connection [MQTT-4.4.0-1], and that copy will be acked instead.
        if item.qos > 0 and item.generation == self.conn.generation:
            self.conn.client.ack(item.mid, item.qos)

    # -- the decoder thread (run) ----------------------------------------------------------
    def run(self, stop: threading.Event | None = None) -> None:
        """Consume until `stop` is set (or `self.stop()` is called)."""
        stop = stop or self._stop
        self._prepare_database()
        _tune_gc()
        writers = [
            threading.Thread(
                target=self._writer, args=(self._client(), stop), name=f"ingest-writer-{i}", daemon=True
            )
            for i in range(self.settings.write_workers)
        ]
        for w in writers:
            w.start()
        # Its own thread: the health goes on while the decoder waits for writers stuck on an
        # InfluxDB outage, so that the watchdog sees a stall, not silence.
        reporter = threading.Thread(target=self._reporter, args=(stop,), name="ingest-reporter", daemon=True)
        self.conn.start()
        reporter.start()
        ready = Path(self.settings.ready_file) if self.settings.ready_file else None
        try:
            while not (stop.is_set() or self._stop.is_set()):
                if ready is not None and self.conn.subscribed.is_set():
                    ready.write_text(f"{self.subscription}\n")
                    ready = None
                prepared = self._collect()
                if prepared is not None:
                    self._submit(prepared, stop)
        finally:
            if self.settings.ready_file:
                Path(self.settings.ready_file).unlink(missing_ok=True)
            self._stop.set()
            with self._jobs_cond:
                self._jobs.extend([None] * len(writers))
                self._jobs_cond.notify_all()
            for w in writers:
                w.join(30)
            reporter.join(30)
            self.report(final=True)
            self.conn.stop()
            self.influx.close()

    def _reporter(self, stop: threading.Event) -> None:
        while not (stop.wait(self.settings.stats_interval_s) or self._stop.is_set()):
            self.report()

    def stop(self) -> None:
        self._stop.set()

    def _prepare_database(self, database: str | None = None) -> None:
        """Create the database (default: the shared one), retention policies and rollups, unless
        our user may not; once per database (an organisation's private database on its first
        write).

        A deployment with authentication gives ingest a WRITE-only user (docker-compose.yml):
        then ingest only writes, and an admin creates these once (`sitroom provision apply`
        does, for every organisation's database; docs/scale-out.md).
        """
        db = database or self.settings.influx_db
        with self._prepared_lock:
            if db in self._prepared_dbs:
                return
            self._prepared_dbs.add(db)
        try:
            self.influx.create_database(db)
            if self.settings.manage_retention:
                issued = retention.ensure(
                    self.influx,
                    raw_retention=self.settings.raw_retention,
                    rollup_retention=self.settings.rollup_retention,
                    database=db,
                )
                for statement in issued:
                    log.info("InfluxDB: %s", statement)
        except QueryError as exc:
            if "not authorized" not in str(exc):
                raise
            log.warning(
                "InfluxDB user %r may not manage database %r (%s): writing only; an admin must create "
                "the database, retention policies and rollups",
                self.settings.influx_username,
                db,
                exc,
            )

    def _collect(self) -> Prepared | None:
        """Decode messages until a write's worth of readings or the linger has passed."""
        first = self._inbox.get(0.2)
        if first is None:
            return None
        now = datetime.now(UTC)
        out = Prepared([], [], [], [], 0)
        self._prepare_one(first, now, out)
        deadline = time.monotonic() + self.settings.write_linger_ms / 1000
        # A round is cut when one database's write is full, so that with several databases each
        # `/write` still carries about `write_batch_points` (InfluxDB's cost per request and
        # ours are what batching pays for), within a bound on the whole round.
        batch = self.settings.write_batch_points
        while out.largest_write < batch and len(out.lines) < _ROUND_WRITES * batch:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            item = self._inbox.get(remaining)
            if item is None:
                break
            self._prepare_one(item, now, out)
        n, nbytes, pct = self._inbox.fill()
        self.stats.buffered, self.stats.buffered_bytes, self.stats.buffer_fill_pct = n, nbytes, pct
        return out

    def _submit(self, prepared: Prepared, stop: threading.Event) -> None:
        with self._jobs_cond:
            # At most one queued job per writer: the rest waits in the buffer, then the broker.
            while len(self._jobs) >= self.settings.write_workers:
                if stop.is_set() or self._stop.is_set():
                    return  # never acked: the broker redelivers
                self._jobs_cond.wait(0.5)
            self._jobs.append(_Job(self._sequencer.cut(), prepared))
            self._jobs_cond.notify_all()

    def _unique_now(self) -> datetime:
        """Distinct timestamps for dead letters, so that InfluxDB keeps every one of them."""
        with self._dl_lock:
            ns = max(time.time_ns(), self._last_ns + 1000)
            self._last_ns = ns
        return datetime.fromtimestamp(ns / 1e9, UTC)

    def prepare(self, items: list[Inbound], now: datetime) -> Prepared:
        out = Prepared([], [], [], [], 0)
        for item in items:
            self._prepare_one(item, now, out)
        return out

    def _prepare_one(self, item: Inbound, now: datetime, out: Prepared) -> None:
        out.acks.append(item)
        if item.topic.startswith(_BATCHES_PREFIX):
            self._learn_batches(item)
        else:
            self._prepare_gateway_message(item, now, out)

    def _prepare_gateway_message(self, item: Inbound, now: datetime, out: Prepared) -> None:
        self.stats.add(messages=1)
        try:
            where = topics.parse(item.topic)
        except ContractError as exc:
            # Keep whatever the topic does say about its source, for routing the dead letter.
            levels = [*item.topic.split("/"), topics.UNKNOWN, topics.UNKNOWN][2:4]
            org, gateway = (lv if is_id(lv) else topics.UNKNOWN for lv in levels)
            out.deadletters.append(
                DeadLetter.of(exc, topic=item.topic, payload=item.payload, org=org, gateway=gateway)
            )
            return

        if where.channel is Channel.META:
            try:
                self.admission.learn(where, item.payload)
            except ContractError as exc:
                out.deadletters.append(
                    DeadLetter.of(
                        exc, topic=item.topic, payload=item.payload, org=where.org, gateway=where.gateway
                    )
                )
            return

        if where.channel in (Channel.HEALTH, Channel.STATUS):
            try:
                if where.channel is Channel.HEALTH:
                    out.monitoring += health_lines(where.org, where.gateway, item.payload, datetime.now(UTC))
                elif (
                    point := status_line(where.org, where.gateway, item.payload, datetime.now(UTC))
                ) is not None:
                    out.monitoring.append(point)
            except ContractError as exc:
                out.deadletters.append(
                    DeadLetter.of(
                        exc, topic=item.topic, payload=item.payload, org=where.org, gateway=where.gateway
                    )
                )
            return

        def dead(err: ContractError, seq: int | None = None, sensor: str = "") -> None:
            out.deadletters.append(
                DeadLetter.of(
                    err,
                    topic=item.topic,
                    payload=item.payload,
                    org=where.org,
                    gateway=where.gateway,
                    seq=seq,
                    sensor=sensor,
                )
            )

        try:
            msg = self.decoder.decode(item.payload, now)
        except ContractError as exc:
            dead(exc)
            return
        env = msg.envelope
        mismatch = self.admission.envelope_error(where, env)
        if mismatch is not None:
            dead(mismatch, env.seq)
            return
        out.seqs.append((env.org, env.gateway, env.seq))
        received = item.received_at or time.time()
        self.stats.see_clock(
            env.org,
            env.gateway,
            lag_s=None if msg.newest_us is None else received - msg.newest_us / 1e6,
            offset_s=received - env.sent_at.timestamp(),
            threshold_s=self.settings.clock_offset_threshold_s,
        )
        if msg.fallbacks:
            self.stats.add(fast_path_fallbacks=msg.fallbacks)
        out.readings += msg.readings
        for rej in msg.rejects:
            dead(rej.error, env.seq, rej.sensor or "")
        out.add(item, msg.lines, msg.sensors, self.policy.database_for(env.kind.value, env.org))

    # -- writer threads --------------------------------------------------------------------
    def _writer(self, influx: InfluxClient, stop: threading.Event) -> None:
        try:
            while True:
                with self._jobs_cond:
                    while not self._jobs:
                        self._jobs_cond.wait(0.5)
                    job = self._jobs.popleft()
                    self._jobs_cond.notify_all()
                if job is None:
                    return
                self.stats.add(writes_in_flight=1)
                try:
                    if self._write_job(influx, job.prepared, stop):
                        # Reported before the acks: a batch acked is a batch the group counted.
                        self._account(job.number, job.prepared.seqs)
                        self._sequencer.done(job.number, job.prepared.acks)
                finally:
                    self.stats.add(writes_in_flight=-1)
        finally:
            influx.close()

    def _write_job(self, influx: InfluxClient, prepared: Prepared, stop: threading.Event) -> bool:
        self.stats.add(readings_received=prepared.readings)
        t0 = time.perf_counter()
        rejected: list[RejectedLine] = []
        # One write per database: the shared one, and each organisation's private one.
        for database, lines, index in prepared.by_database():
            refused = self._write_with_retry(influx, lines, stop, database)
            if refused is None:
                return False  # stopping while InfluxDB is unreachable: nothing acked, the broker redelivers
            rejected += [
                r if index is None else RejectedLine(index[r.index], r.line, r.message) for r in refused
            ]
        for rej in rejected:
            item, sensor = prepared.owner(rej.index)
            where = topics.parse(item.topic)
            prepared.deadletters.append(
                DeadLetter.of(
                    None,
                    topic=item.topic,
                    payload=item.payload,
                    org=where.org,
                    gateway=where.gateway,
                    sensor=sensor,
                    reason="influx",
                    message=f"InfluxDB refused the point: {rej.message}",
                )
            )
        instance = self.settings.instance
        dl_lines = [dl.to_line(self._unique_now(), instance) for dl in prepared.deadletters]
        dl_lines += prepared.monitoring
        for database, lines in self.policy.split(dl_lines).items():
            if self._write_with_retry(influx, lines, stop, database) is None:
                return False
        if not (prepared.lines or dl_lines):
            return True  # nothing for InfluxDB (a meta, a batch report): not a write, not progress
        self.stats.wrote(write_ms=(time.perf_counter() - t0) * 1000, points=len(prepared.lines))
        written = len(prepared.lines) - len(rejected)
        self.stats.add(
            readings_written=written,
            readings_rejected=prepared.readings - written,
            writes=1,
        )
        for dl in prepared.deadletters:
            self.stats.deadlettered(dl.reason)
            self._note(dl)
            self.conn.client.publish(dl.mqtt_topic, dl.to_json(), qos=1)
        return True

    # -- per-gateway accounting (cloud/ingest/seqledger.py) ----------------------------------
    def _account(self, job: int, seqs: list[tuple[str, str, int]]) -> None:
        """Count a written job's batches here and, in a shared group, report them to every worker."""
        if not seqs:
            return
        self.stats.wrote_batches(seqs)
        gateways: dict[str, list[int]] = {}
        for org, gateway, seq in seqs:
            gateways.setdefault(f"{org}/{gateway}", []).append(seq)
        report = BatchReport(
            group=self.settings.share_group or "",
            instance=self.settings.instance,
            run=self.run_id,
            job=job,
            gateways=gateways,
        )
        self.stats.accounts.apply(report)
        if self.settings.share_group:
            self.conn.client.publish(topics.ingest_batches(self.settings.instance), report.to_json(), qos=1)

    def _learn_batches(self, item: Inbound) -> None:
        """Another worker's report (or ours from an earlier life) of the batches it wrote."""
        try:
            if len(item.payload) > self.settings.max_payload_bytes:
                raise PayloadTooLargeError(
                    f"more than {self.settings.max_payload_bytes} bytes",
                    field="payload",
                    value=len(item.payload),
                )
            report = BatchReport.from_json(item.payload)
        except ContractError as exc:
            self.stats.add(batch_reports_refused=1)
            log.warning("batch report refused on %s: %s", item.topic, exc)
            return
        is_ours = (report.instance, report.run) == (self.settings.instance, self.run_id)
        if is_ours or report.group != (self.settings.share_group or ""):
            return  # ours is counted as written; another group's traffic is not ours
        org = self.settings.org_filter
        if org != "+":
            kept = {k: v for k, v in report.gateways.items() if k.startswith(f"{org}/")}
            report = report.model_copy(update={"gateways": kept})
        self.stats.accounts.apply(report)

    def _write_with_retry(
        self, influx: InfluxClient, lines: list[str], stop: threading.Event, database: str = ""
    ) -> list[RejectedLine] | None:
        database = database or self.settings.influx_db
        if database != self.settings.influx_db:
            self._prepare_database(database)  # an organisation's private database, first seen
        delay = _BACKOFF_MIN_S
        while True:
            try:
                return influx.write_isolating(lines, database=database)
            except (RetryableWriteError, RejectedWriteError) as exc:
                if isinstance(exc, RejectedWriteError) and not is_missing_database(exc):
                    raise
                # A missing database is a provisioning gap (`sitroom provision apply` creates each
                # organisation's): waited out like an outage, so that nothing is lost meanwhile.
                self.stats.add(write_retries=1)
                log.warning("InfluxDB write to %r failed (%s); retrying in %.1f s", database, exc, delay)
                if stop.wait(delay) or self._stop.is_set():
                    return None
                delay = min(delay * 2, _BACKOFF_MAX_S)

    def _note(self, dl: DeadLetter) -> None:
        """Dead letters are logged once per reason per stats interval, not once per message."""
        with self._dl_lock:
            self._log_counts[dl.reason] += 1
            self._log_examples.setdefault(dl.reason, f"{dl.topic} {dl.field}: {dl.message} ({dl.value})")

    def report(self, *, final: bool = False) -> None:
        """Publish the counters on the health topic (`final`: the last, on a clean stop) and
        write them to InfluxDB."""
        with self._dl_lock:
            for reason, n in self._log_counts.items():
                log.warning("dead-lettered %d x %s, e.g. %s", n, reason, self._log_examples[reason])
            self._log_counts.clear()
            self._log_examples.clear()
        snap = self.stats.snapshot(interval=True)
        now = datetime.now(UTC)
        health = {"ts": format_ts(now), "uptime_s": round(time.monotonic() - self._started, 1), **snap}
        if final:
            health["final"] = True
        try:
            self.conn.client.publish(
                topics.service_health("ingest", self.settings.instance), orjson.dumps(health), qos=0
            )
            lines = [
                line(
                    "sitroom_ingest",
                    {"instance": self.settings.instance},
                    {k: v for k, v in snap.items() if isinstance(v, int | float) and not isinstance(v, bool)},
                    now,
                )
            ]
            instance = self.settings.instance
            for key, g in snap["gateways"].items():
                org, gw = key.split("/")
                tags = {"org": org, "gateway": gw, "instance": instance}
                lines.append(line("sitroom_gateway_seq", tags, g, now))
            self.influx.write(lines)  # each where the policy says (RoutedInfluxClient)
        except Exception as exc:  # noqa: BLE001  (self-monitoring must never stop ingest)
            log.warning("could not report ingest stats: %s", exc)


__all__ = [
    "AckSequencer",
    "Buffer",
    "Inbound",
    "Ingest",
    "data_subscription",
    "meta_subscription",
    "subscriptions",
]
