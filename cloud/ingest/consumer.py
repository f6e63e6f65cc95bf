"""The ingest service: consume data batches at QoS 1, write them to InfluxDB, then ack.

paho-mqtt 2 with `manual_ack=True` (aiomqtt acks on receipt): a message is acknowledged only
after InfluxDB accepted its readings and its dead letters, so a crash or an InfluxDB outage
leaves it unacked in the persistent session and the broker delivers it again. Redelivered
readings rewrite the same series and timestamps, which InfluxDB collapses.

Backpressure: the receive buffer is bounded; when it is full paho's network thread blocks, stops
reading the socket, and the broker holds the rest (it keeps QoS 1 messages for us).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
import paho.mqtt.client as mqtt

from cloud.influx.client import InfluxClient, RejectedLine, RetryableWriteError
from cloud.influx.lineprotocol import LineProtocolError, line, reading_line
from cloud.ingest.deadletter import DeadLetter
from cloud.ingest.policy import PolicyError, TimeLimits
from cloud.ingest.stats import IngestStats
from cloud.mqtt import BrokerConnection
from cloud.settings import CloudSettings
from edge.contract import ContractError, SchemaError, decode, is_id, topics
from edge.contract.topics import Channel

log = logging.getLogger(__name__)

_BACKOFF_MIN_S = 0.5
_BACKOFF_MAX_S = 30.0


@dataclass(frozen=True, slots=True)
class Inbound:
    topic: str
    payload: bytes
    mid: int
    qos: int


@dataclass(slots=True)
class Prepared:
    """What one round of messages turns into: lines to write, dead letters, messages to ack."""

    lines: list[str]
    owners: list[tuple[Inbound, str]]  # per reading line: its message and sensor
    deadletters: list[DeadLetter]
    acks: list[Inbound]
    readings: int


class Ingest:
    def __init__(self, settings: CloudSettings, *, influx: InfluxClient | None = None) -> None:
        self.settings = settings
        self.influx = influx or InfluxClient(
            settings.influx_url,
            settings.influx_db,
            username=settings.influx_username,
            password=settings.influx_password,
        )
        self.limits = TimeLimits(
            max_future=timedelta(seconds=settings.max_future_s),
            max_age=timedelta(days=settings.max_age_days),
        )
        self.stats = IngestStats()
        self._inbox: queue.Queue[Inbound] = queue.Queue(maxsize=settings.buffer_messages)
        self._stop = threading.Event()
        self._last_ns = 0
        self._log_counts: Counter[str] = Counter()
        self._log_examples: dict[str, str] = {}
        data_filter = f"{topics.ROOT}/{settings.org_filter}/+/{Channel.DATA.value}/+"
        self.conn = BrokerConnection(
            settings.broker,
            client_id=f"sitroom-ingest-{settings.instance}",
            subscriptions=[(data_filter, 1)],
            on_message=self._on_message,
            manual_ack=True,
        )

    # -- paho's network thread -------------------------------------------------------------
    def _on_message(self, msg: mqtt.MQTTMessage) -> None:
        item = Inbound(msg.topic, bytes(msg.payload), msg.mid, msg.qos)
        while not self._stop.is_set():
            try:
                self._inbox.put(item, timeout=0.5)
                return
            except queue.Full:
                continue  # blocking here is the backpressure: the broker keeps the rest

    # -- the writer thread -----------------------------------------------------------------
    def run(self, stop: threading.Event | None = None) -> None:
        """Consume until `stop` is set (or `self.stop()` is called)."""
        stop = stop or self._stop
        self.influx.create_database()
        self.conn.start()
        next_stats = time.monotonic() + self.settings.stats_interval_s
        try:
            while not (stop.is_set() or self._stop.is_set()):
                batch = self._collect()
                if batch:
                    self._process(batch, stop)
                if time.monotonic() >= next_stats:
                    self.report()
                    next_stats = time.monotonic() + self.settings.stats_interval_s
        finally:
            self._stop.set()
            self.report()
            self.conn.stop()
            self.influx.close()

    def stop(self) -> None:
        self._stop.set()

    def _collect(self) -> list[Inbound]:
        """Up to `write_batch_points`-ish readings' worth of messages, waiting at most the linger."""
        items: list[Inbound] = []
        try:
            items.append(self._inbox.get(timeout=0.2))
        except queue.Empty:
            return items
        deadline = time.monotonic() + self.settings.write_linger_ms / 1000
        size = len(items[0].payload)
        # ~60 bytes of JSON per reading on the wire: a cheap proxy for the reading count.
        while size < self.settings.write_batch_points * 60:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                item = self._inbox.get(timeout=remaining)
            except queue.Empty:
                break
            items.append(item)
            size += len(item.payload)
        self.stats.buffered = self._inbox.qsize()
        return items

    def _unique_now(self) -> datetime:
        """Distinct timestamps for dead letters, so that InfluxDB keeps every one of them."""
        ns = max(time.time_ns(), self._last_ns + 1000)
        self._last_ns = ns
        return datetime.fromtimestamp(ns / 1e9, UTC)

    def prepare(self, items: list[Inbound], now: datetime) -> Prepared:
        out = Prepared([], [], [], [], 0)
        for item in items:
            out.acks.append(item)
            self.stats.add(messages=1)
            self._prepare_one(item, now, out)
        return out

    def _prepare_one(self, item: Inbound, now: datetime, out: Prepared) -> None:
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
            decoded = decode(item.payload, max_bytes=self.settings.max_payload_bytes)
        except ContractError as exc:
            dead(exc)
            return
        env = decoded.envelope
        if (env.org, env.gateway, env.kind) != (where.org, where.gateway, where.kind):
            dead(
                SchemaError(
                    f"envelope says {env.org}/{env.gateway}/{env.kind.value}, the topic says otherwise",
                    field="org/gateway/kind",
                    value=item.topic,
                ),
                env.seq,
            )
            return
        self.stats.see_seq(env.org, env.gateway, env.seq)
        out.readings += len(decoded.readings) + len(decoded.rejects)
        for rej in decoded.rejects:
            dead(rej.error, env.seq, rej.sensor or "")
        for r in decoded.readings:
            err: ContractError | None = self.limits.check(r, now)
            if err is None:
                try:
                    out.lines.append(reading_line(r))
                    out.owners.append((item, r.sensor))
                    continue
                except LineProtocolError as lp:
                    err = SchemaError(str(lp), field=lp.field, value=lp.value)
            dead(err, env.seq, r.sensor)

    def _process(self, items: list[Inbound], stop: threading.Event) -> None:
        prepared = self.prepare(items, datetime.now(UTC))
        self.stats.add(readings_received=prepared.readings)
        t0 = time.perf_counter()
        rejected = self._write_with_retry(prepared.lines, stop)
        if rejected is None:
            return  # stopping while InfluxDB is unreachable: nothing acked, the broker redelivers
        for rej in rejected:
            item, sensor = prepared.owners[rej.index]
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
        dl_lines = [dl.to_line(self._unique_now()) for dl in prepared.deadletters]
        if dl_lines and self._write_with_retry(dl_lines, stop) is None:
            return
        self.stats.last_write_ms = (time.perf_counter() - t0) * 1000
        self.stats.last_batch_points = len(prepared.lines)
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
        # Only now, with everything durable in InfluxDB, may the broker forget the messages.
        # PUBACKs go out in the order the PUBLISHes arrived, as [MQTT-4.6.0-2] requires.
        for item in prepared.acks:
            if item.qos > 0:
                self.conn.client.ack(item.mid, item.qos)

    def _write_with_retry(self, lines: list[str], stop: threading.Event) -> list[RejectedLine] | None:
        delay = _BACKOFF_MIN_S
        while True:
            try:
                return self.influx.write_isolating(lines)
            except RetryableWriteError as exc:
                self.stats.add(write_retries=1)
                log.warning("InfluxDB write failed (%s); retrying in %.1f s", exc, delay)
                if stop.wait(delay) or self._stop.is_set():
                    return None
                delay = min(delay * 2, _BACKOFF_MAX_S)

    def _note(self, dl: DeadLetter) -> None:
        """Dead letters are logged once per reason per stats interval, not once per message."""
        self._log_counts[dl.reason] += 1
        self._log_examples.setdefault(dl.reason, f"{dl.topic} {dl.field}: {dl.message} ({dl.value})")

    def report(self) -> None:
        for reason, n in self._log_counts.items():
            log.warning("dead-lettered %d x %s, e.g. %s", n, reason, self._log_examples[reason])
        self._log_counts.clear()
        self._log_examples.clear()
        snap = self.stats.snapshot()
        try:
            self.conn.client.publish(
                topics.service_health("ingest", self.settings.instance), orjson.dumps(snap), qos=0
            )
            now = datetime.now(UTC)
            lines = [
                line(
                    "sitroom_ingest",
                    {"instance": self.settings.instance},
                    {k: v for k, v in snap.items() if isinstance(v, int | float)},
                    now,
                )
            ]
            for key, g in snap["gateways"].items():
                org, gw = key.split("/")
                lines.append(line("sitroom_gateway_seq", {"org": org, "gateway": gw}, g, now))
            self.influx.write(lines)
        except Exception as exc:  # noqa: BLE001  (self-monitoring must never stop ingest)
            log.warning("could not report ingest stats: %s", exc)


__all__ = ["Inbound", "Ingest", "PolicyError"]
