"""`sitroom cloud rules`: the engine on the live MQTT stream; alerts to MQTT and InfluxDB."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

import paho.mqtt.client as mqtt
from pydantic import AwareDatetime, BaseModel, ValidationError
from sqlalchemy.exc import SQLAlchemyError

from cloud.core.admission import Admission, Judged
from cloud.core.alerts import Alert, AlertSink
from cloud.core.settings import CloudSettings
from cloud.core.transit import TransitNetwork
from cloud.io.influx.client import InfluxClient, InfluxError, QueryError
from cloud.io.influx.points import alert_line
from cloud.io.influx.policy import DataPolicy, RoutedInfluxClient
from cloud.io.mqtt import BrokerConnection
from cloud.rules.checkpoint import CheckpointStore, Delivered
from cloud.rules.engine import Engine, RegistryOpener, RulesFileError, load_rules
from cloud.rules.relay import OperatorRelay
from cloud.rules.store import AlertStore
from edge.contract import ContractError, Reading, is_id, loads, topics
from edge.contract.topics import Channel

log = logging.getLogger(__name__)
_SERVICES = f"{topics.ROOT}/services/"


class Periodic(Protocol):
    """Work the service does on its clock beside the rules (the worksite snapshots): called
    every second, it decides itself whether anything is due; points written."""

    def tick(self, influx: InfluxClient) -> int: ...

    def close(self) -> None: ...


@runtime_checkable
class ReadingWatcher(Protocol):
    """Periodic work that also follows the stream (the park-and-ride picture keeps each car
    park's and trip's latest reading): handed every reading the admission lets in."""

    def observe(self, reading: Reading) -> None: ...


@dataclass(frozen=True, slots=True)
class Inbound:
    topic: str
    payload: bytes
    mid: int
    qos: int
    generation: int  # the connection it arrived on: an ack means something on that one only


class StatusMessage(BaseModel):
    state: str
    ts: AwareDatetime
    reason: str = ""


class RulesService:
    """The engine on the live stream. With a `store`, alerts are de-duplicated in the database
    too (several instances may run) and only real transitions are published, and what operators
    do in the store (acknowledge, resolve) is published and written as well (cloud/rules/relay.py);
    with a `notifier`, they are routed to channels, and with an `annotator` every transition is
    shown in Grafana; with `rules_path`, the rules file is reloaded when it changes (`registry:`
    worksite sources opened by `open_registry`); `periodic` work (the worksite registry's state
    written to InfluxDB) runs on the service's clock. The process's wiring (cloud/apps/rules.py)
    decides which of these a deployment gets; periodic work that is a `ReadingWatcher` also
    sees every admitted reading. Readings pass the admission first (cloud/core/admission.py),
    ingest's verdict: what ingest dead-letters raises no alert.

    With `checkpoints`, what the rules learn (detectors and alert states per series) and the
    stream's position are checkpointed every `checkpoint_s` seconds, after `checkpoint_messages`
    messages and on shutdown, and restored at start; messages are acknowledged only once a
    checkpoint holds them, so that after a crash the broker delivers again exactly what the
    restored state has not seen (cloud/rules/checkpoint.py, decision 0018)."""

    def __init__(
        self,
        settings: CloudSettings,
        engine: Engine,
        *,
        influx: InfluxClient | None = None,
        store: AlertStore | None = None,
        notifier: AlertSink | None = None,
        annotator: AlertSink | None = None,
        rules_path: Path | None = None,
        reload_every_s: float = 2.0,
        periodic: Sequence[Periodic] = (),
        open_registry: RegistryOpener | None = None,
        admission: Admission | None = None,
        transit: TransitNetwork | None = None,
        checkpoints: CheckpointStore | None = None,
        checkpoint_s: float = 30.0,
        checkpoint_messages: int = 500,
        default_worksites: str | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.admission = admission or Admission.from_settings(settings)
        self.store = store
        self.relay = OperatorRelay(store) if store is not None else None
        self.periodic = list(periodic)
        self.watchers = [w for w in self.periodic if isinstance(w, ReadingWatcher)]
        self.open_registry = open_registry
        self.transit = transit
        self.notifier = notifier
        self.annotator = annotator
        self.rules_path = rules_path
        self.reload_every_s = reload_every_s
        self._rules_mtime = rules_path.stat().st_mtime_ns if rules_path else 0
        self.reloads = 0
        self.reload_errors = 0
        self.published = 0
        # Alerts go to the database of the organisation they concern when the data policy keeps
        # them private (decision 0017); worksite snapshots where it says too.
        self.influx = influx or RoutedInfluxClient(
            settings.influx_url,
            DataPolicy.load(settings.data_policy, settings.influx_db),
            username=settings.influx_username,
            password=settings.influx_password,
        )
        self.checkpoints = checkpoints
        self.checkpoint_s = checkpoint_s
        self.checkpoint_messages = checkpoint_messages
        self.default_worksites = default_worksites
        self.delivered = Delivered()
        self.duplicates = 0
        self.handle_errors = 0  # messages a rule failed on (logged with their traceback)
        self._unacked: list[Inbound] = []
        self._checkpoint_retry_at = 0.0
        self.checkpoint_errors = 0
        self._inbox: queue.Queue[Inbound] = queue.Queue(maxsize=10_000)
        self._stop = threading.Event()
        # One set per organisation of `org_filter`: an instance serves its shard of them.
        self.conn = BrokerConnection(
            settings.broker,
            client_id=f"sitroom-rules-{settings.instance}",
            subscriptions=[
                *(
                    (topic, 1)
                    for org in settings.org_filters
                    for topic in (
                        f"{topics.ROOT}/{org}/+/{Channel.DATA.value}/+",
                        f"{topics.ROOT}/{org}/+/{Channel.STATUS.value}",
                        # The gateways' declared sensor kinds, for the admission (as ingest learns them).
                        f"{topics.ROOT}/{org}/+/{Channel.META.value}",
                    )
                ),
                # The cloud services' own health (ingest's), for the watchdog rules.
                (topics.ALL_SERVICE_HEALTH, 0),
            ],
            on_message=self._on_message,
            # Acknowledged once a checkpoint holds the message (see `checkpoint`).
            manual_ack=checkpoints is not None,
        )

    def _on_message(self, msg: mqtt.MQTTMessage) -> None:
        item = Inbound(msg.topic, bytes(msg.payload), msg.mid, msg.qos, self.conn.generation)
        while not self._stop.is_set():
            try:
                self._inbox.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def stop(self) -> None:
        self._stop.set()

    def run(self, stop: threading.Event | None = None) -> None:
        stop = stop or self._stop
        try:
            self.influx.create_database()
        except QueryError as exc:
            # A WRITE-only user (docker-compose.yml) may not create databases; the admin did.
            if "not authorized" not in str(exc):
                raise
            log.warning("InfluxDB user may not create databases (%s): assuming it exists", exc)
        self.restore()
        self.conn.start()
        next_tick = time.monotonic() + 1.0
        next_reload = time.monotonic() + self.reload_every_s
        next_checkpoint = time.monotonic() + self.checkpoint_s
        try:
            while not (stop.is_set() or self._stop.is_set()):
                alerts: list[Alert] = []
                try:
                    item = self._inbox.get(timeout=0.2)
                    alerts.extend(self._take(item))
                    while len(alerts) < 1000 and len(self._unacked) < self.checkpoint_messages:
                        alerts.extend(self._take(self._inbox.get_nowait()))
                except queue.Empty:
                    pass
                if time.monotonic() >= next_tick:
                    alerts.extend(self.every_second())
                    next_tick = time.monotonic() + 1.0
                if self.rules_path is not None and time.monotonic() >= next_reload:
                    self.reload_if_changed()
                    next_reload = time.monotonic() + self.reload_every_s
                if alerts:
                    self.emit(alerts)
                now = time.monotonic()
                if (
                    self._unacked
                    and now >= self._checkpoint_retry_at
                    and (len(self._unacked) >= self.checkpoint_messages or now >= next_checkpoint)
                ):
                    self.checkpoint()
                    next_checkpoint = time.monotonic() + self.checkpoint_s
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        self._stop.set()
        if self.checkpoints is not None:
            # What was taken in is kept: a restart neither relearns nor takes it in twice.
            try:
                self.checkpoint()
            finally:
                self.checkpoints.close()
        self.conn.stop()
        self.influx.close()
        if self.notifier is not None:
            self.notifier.close()
        if self.annotator is not None:
            self.annotator.close()
        for work in self.periodic:
            work.close()

    def _take(self, item: Inbound) -> list[Alert]:
        try:
            alerts = self.handle(item.topic, item.payload)
        except Exception:  # a fault of one rule on one message must not stop every rule
            self.handle_errors += 1
            log.exception("rules failed on a message of %s; going on with the next", item.topic)
            alerts = []
        if self.checkpoints is not None and item.qos > 0:
            self._unacked.append(item)
        return alerts

    def restore(self) -> None:
        """The last checkpoint's state and position, before the first message is taken in."""
        if self.checkpoints is None:
            return
        found = self.checkpoints.restore(self.engine)
        self.delivered = found.delivered
        log.warning(
            "restored checkpoint %d: %d series (%d relearn: another rule config or code), %d open alerts",
            found.checkpoint,
            found.series,
            found.refused,
            found.open_alerts,
        )

    def checkpoint(self) -> int:
        """Commit what the rules learnt since the last checkpoint, then acknowledge the messages
        it holds, in the order they arrived ([MQTT-4.6.0-2]); returns the series written. A
        message of an earlier connection is not acked (its packet id means nothing now): the
        broker sends it again and `delivered` skips it."""
        if self.checkpoints is None:
            return 0
        try:
            written = self.checkpoints.save(self.engine, self.delivered)
        except SQLAlchemyError as exc:
            # Nothing is acknowledged: after a crash the broker would send it all again. Retried
            # in a few seconds; meanwhile the broker holds back what exceeds its in-flight limit.
            self.checkpoint_errors += 1
            self._checkpoint_retry_at = time.monotonic() + 5.0
            log.warning("checkpoint failed, %d messages stay unacknowledged: %s", len(self._unacked), exc)
            return 0
        generation = self.conn.generation
        for item in self._unacked:
            if item.generation == generation:
                self.conn.client.ack(item.mid, item.qos)
        self._unacked = []
        return written

    def reload_if_changed(self) -> bool:
        """Hot reload: a changed rules file replaces the rules; a broken one is reported and the
        running rules stay. Rules whose config did not change keep their state (learnt baselines,
        hold timers), so editing one rule does not reset the others."""
        assert self.rules_path is not None
        try:
            mtime = self.rules_path.stat().st_mtime_ns
        except OSError as exc:
            log.warning("rules file unreadable, keeping the running rules: %s", exc)
            return False
        if mtime == self._rules_mtime:
            return False
        self._rules_mtime = mtime
        try:
            new = load_rules(
                self.rules_path, self.open_registry, self.default_worksites, transit=self.transit
            )
        except RulesFileError as exc:
            self.reload_errors += 1
            log.warning("rules file rejected, keeping the running rules: %s", exc)
            return False
        self.engine.replace_rules(new)
        self.reloads += 1
        log.warning("rules reloaded from %s: %d rules", self.rules_path, len(new))
        return True

    def handle(self, topic: str, payload: bytes) -> list[Alert]:
        if topic.startswith(_SERVICES):
            return self.handle_service_health(topic, payload)
        # Ingest dead-letters what the admission refuses; here it is only skipped, by the same verdict.
        try:
            where = topics.parse(topic)
            if where.channel is Channel.META:
                self.admission.learn(where, payload)
                return []
            if where.channel is Channel.STATUS:
                status = StatusMessage.model_validate(loads(payload))
                return self.engine.gateway_status(
                    where.org, where.gateway, status.state, status.reason, status.ts
                )
            judged = self.admission.admit(where, payload, datetime.now(UTC))
        except (ContractError, ValidationError):
            return []
        return self.observe(judged)

    def observe(self, judged: Judged) -> list[Alert]:
        """A data message's admitted readings through the engine, unless its batch was taken in
        already: a gateway's duplicate publish, or one a checkpoint held whose acknowledgement
        the broker never got. Its readings must not teach the detectors twice."""
        readings = judged.readings
        if not readings:
            return []
        envelope = judged.envelope
        first_us = round(readings[0].ts.timestamp() * 1e6)
        if not self.delivered.take(envelope.org, envelope.gateway, envelope.seq, first_us):
            self.duplicates += 1
            return []
        out = self.engine.observe_many(readings, self.engine.wall_clock())
        for watcher in self.watchers:
            for r in readings:
                watcher.observe(r)
        return out

    def handle_service_health(self, topic: str, payload: bytes) -> list[Alert]:
        """`sr/v1/services/{service}/{instance}/health`: a JSON object, or ignored."""
        parts = topic.split("/")
        if len(parts) != 6 or parts[5] != "health" or not (is_id(parts[3]) and is_id(parts[4])):
            return []
        try:
            report = loads(payload)
        except ContractError:
            return []
        if not isinstance(report, dict):
            return []
        return self.engine.service_health(parts[3], parts[4], report)

    def every_second(self) -> list[Alert]:
        """The clock's work: the engine's time-driven checks (staleness), what operators did in
        the alert store, and the worksite registry's state when due."""
        self.relay_operator_moves()
        for work in self.periodic:
            work.tick(self.influx)
        return self.engine.tick()

    def serves(self, org: str) -> bool:
        """The organisation is in this instance's shard (`org_filter`)."""
        filters = self.settings.org_filters
        return filters == ["+"] or org in filters

    def relay_operator_moves(self) -> int:
        """Publish and write what operators did in the alert store since the last call."""
        if self.relay is None:
            return 0
        try:
            moves = self.relay.pending()
        except SQLAlchemyError as exc:
            log.warning("could not read the alert store's history: %s", exc)
            return 0
        # A sharded instance relays only what operators did to its own organisations' alerts.
        moves = [(a, is_current) for a, is_current in moves if self.serves(a.org)]
        if not moves:
            self.relay.commit()
            return 0
        try:
            self.influx.write([alert_line(a) for a, _ in moves])
        except InfluxError as exc:
            # Not committed: the next tick sends them again (same points, same retained state).
            log.warning("could not write %d operator moves to InfluxDB: %s", len(moves), exc)
            return 0
        for a, is_current in moves:
            log.warning("alert %s %s/%s %s: %s", a.state, a.org, a.entity, a.rule, a.message)
            if is_current:
                self.conn.client.publish(a.topic, a.to_json(), qos=1, retain=True)
                self.published += 1
            if self.annotator is not None:
                self.annotator.submit([a])
        self.relay.commit()
        return len(moves)

    def record(self, alerts: list[Alert]) -> list[tuple[Alert, bool]]:
        """Pass the engine's transitions through the store: (alert to publish, notify?)."""
        if self.store is None:
            return [(a, True) for a in alerts]
        out: list[tuple[Alert, bool]] = []
        for a in alerts:
            if a.state == "firing":
                t = self.store.fire(a, a.context)
                if t.outcome != "opened":
                    continue  # another instance holds it, or it is already active
            else:
                resolved = self.store.resolve_key(a)
                if resolved is None or resolved.outcome != "resolved":
                    continue  # an operator resolved it already
                t = resolved
            out.append((replace(a, id=t.alert.id), t.should_notify))
        return out

    def emit(self, alerts: list[Alert]) -> None:
        recorded = self.record(alerts)
        for a, _ in recorded:
            log.warning("alert %s %s/%s %s: %s", a.state, a.org, a.entity, a.rule, a.message)
            # Retained: whoever subscribes later sees each entity's current alert state.
            self.conn.client.publish(a.topic, a.to_json(), qos=1, retain=True)
            self.published += 1
        if self.notifier is not None:
            self.notifier.submit([a for a, should in recorded if should])
        if self.annotator is not None:
            self.annotator.submit([a for a, _ in recorded])
        if not recorded:
            return
        try:
            self.influx.write([alert_line(a) for a, _ in recorded])
        except InfluxError as exc:
            log.warning("could not write %d alerts to InfluxDB: %s", len(recorded), exc)
