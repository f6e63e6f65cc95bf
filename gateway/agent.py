"""The gateway agent: poll the sensors, spool their readings, publish them at QoS 1.

The path of a reading (docs/decisions/0002-gateway-store-and-forward.md):

1. a sensor's `poll` returns it; at the end of the tick it is *staged*: committed to the spool
   as JSON, with the simulated clock's position (the one transaction of the tick);
2. when its kind's batch is due (`batch.max_interval_s`, `max_readings` or `max_bytes`; while
   offline only when full, so a backlog is made of full batches), the staged readings are
   *sealed* into batch messages with their `seq`, in one transaction;
3. a sealed message is handed to MQTT (live messages first, then the backlog in spool order,
   within a window of `broker.max_inflight` messages) and deleted from the spool only after the
   broker's PUBACK.

A reading counts as published only when its batch was acknowledged. The birth message
("online") and the last will ("offline") are retained on the status topic; the gateway's
sensors (id, kind, driver) are retained on the meta topic, published on every connect and
after every applied remote config, so that the cloud learns each sensor's kind.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import orjson

from edge.contract import BrokerAddress, Reading, SensorKind, format_ts, topics
from edge.drivers import Source, SourceContext, get
from edge.simulators.clock import Clock, SimClock
from gateway import batches
from gateway.config import GatewayConfig
from gateway.health import ProcessSampler, kernel_clock
from gateway.meta import meta_payload
from gateway.publisher import Link
from gateway.remote_config import LastGood, RejectedConfigError, validate, version_of
from gateway.sequence import Sequence
from gateway.spool import OutgoingMessage, Priority, Spool, Spooled

log = logging.getLogger(__name__)

try:
    VERSION = version("sitroom")
except PackageNotFoundError:  # running from a source tree without an install
    VERSION = "0+unknown"

_TICK_S = 0.1
_DRAIN_TIMEOUT_S = 15.0
_OFFLINE_GIVE_UP_S = 3.0  # at shutdown, how long to wait for a broker we are not connected to
_MAX_INFLIGHT_BYTES = 4 * 1_048_576  # paho holds a copy of each unacknowledged payload
_FETCH_ROWS = 32
_DELETE_BATCH = 512
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


@dataclass(slots=True)
class Counters:
    readings_read: int = 0
    readings_published: int = 0
    batches_published: int = 0
    source_errors: int = 0
    configs_applied: int = 0
    configs_rejected: int = 0
    errors_by_sensor: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class _InFlight:
    row: int
    readings: int
    size: int


def _epoch_us(ts: datetime) -> int:
    return (ts - _EPOCH) // _US


class Agent:
    def __init__(
        self,
        config: GatewayConfig,
        *,
        clock: Clock,
        state_dir: Path,
        broker_url: str | None = None,
        seed: int = 0,
    ) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir = state_dir
        self.seed = seed
        self.counters = Counters()
        self._started_mono = time.monotonic()
        self._last_good = LastGood(state_dir / f"{config.id}.config.json")
        saved = self._last_good.load(config)
        if saved is not None:
            log.info("gateway %s starts on the last remote config (%s)", config.id, saved.version)
            config = saved.config
        self.config = config
        self.config_version = version_of(config)
        self.config_error: dict[str, Any] | None = None
        self.broker: BrokerAddress = config.broker.address(broker_url)
        self.spool = Spool(
            state_dir / f"{config.id}.spool.sqlite",
            max_bytes=int(config.spool.max_mb * 1_048_576),
            min_free_bytes=int(config.spool.min_free_disk_mb * 1_048_576),
            is_power_safe=config.spool.durability == "power-loss",
        )
        self._adopt_legacy_seq(state_dir / f"{config.id}.seq")
        self.clock, start = self._resume(clock)
        self._last_poll = start - _US
        ctx = SourceContext(org=config.org, gateway=config.id, seed=seed, start=start)
        self.sources: dict[str, Source] = {s.id: get(s.driver).open(s, ctx) for s in config.sensors}

        # Readings staged in the spool and not yet sealed, mirrored here: kind -> (count, json).
        self._pending: dict[SensorKind, list[tuple[int, bytes]]] = defaultdict(list)
        self._pending_since: dict[SensorKind, float] = {}
        for staged in self.spool.staged():
            kind = SensorKind(staged.kind)
            self._pending[kind].append((staged.readings, staged.fragment))
            self._pending_since.setdefault(kind, time.monotonic())

        # Dispatch state: mid -> in-flight row; the live cursor; backlog ranges (lo, hi].
        self._inflight: dict[int, _InFlight] = {}
        self._inflight_bytes = 0
        self._acked: list[int] = []  # rows acknowledged, to delete from the spool
        self._acked_since = time.monotonic()
        self._live_cursor = 0
        self._backlog: deque[list[int]] = deque()
        self._seen_connects = 0
        self._next_poll = 0.0
        self._wake = threading.Event()
        self._sampler = ProcessSampler(state_dir)
        self._status_topic = topics.status(config.org, config.id)
        self._health_topic = topics.health(config.org, config.id)
        self._meta_topic = topics.meta(config.org, config.id)
        self.link = Link(
            client_id=f"sitroom-gw-{config.org}-{config.id}",
            address=self.broker,
            config=config.broker,
            status_topic=self._status_topic,
            will_payload=self._status("offline", reason="connection lost"),
            birth_payload=lambda: self._status("online"),
            config_topic=topics.config(config.org, config.id),
            wake=self._wake,
            meta_topic=self._meta_topic,
            meta_payload=lambda: meta_payload(self.config, self.config_version),
        )
        self._mark_backlog()

    # -- start-up -----------------------------------------------------------------------------
    def _adopt_legacy_seq(self, path: Path) -> None:
        """Gateways before the spool kept `seq` in a file of its own: continue from it."""
        if path.exists():
            legacy = Sequence(path).current + 1
            if legacy > self.spool.next_seq:
                self.spool.next_seq = legacy
                self.spool.set_meta({"next_seq": str(legacy)})
            path.unlink()

    def _resume(self, clock: Clock) -> tuple[Clock, datetime]:
        """The clock and the instant the sources start from.

        A simulated clock whose start matches the one recorded in the spool continues where
        the last committed reading left it: the simulated street does not run on while its
        gateway is dead, so a kill-and-restart test can account for every reading.
        """
        if not isinstance(clock, SimClock):
            return clock, clock.now()
        anchor = clock.start.isoformat()
        position = self.spool.get_meta("clock_us")
        if self.spool.get_meta("sim_anchor") == anchor and position is not None:
            resumed_at = _EPOCH + int(position) * _US
            log.info("simulated clock resumes at %s", format_ts(resumed_at))
            return SimClock(clock.speed, resumed_at), resumed_at + _US
        self.spool.set_meta({"sim_anchor": anchor})
        self.spool.set_meta({"clock_us": str(_epoch_us(clock.start) - 1)})
        return clock, clock.start

    def _status(self, state: str, **extra: Any) -> bytes:
        body: dict[str, Any] = {"state": state, "ts": format_ts(datetime.now(UTC)), "version": VERSION}
        if state == "online":
            body["config_version"] = self.config_version
            if self.config_error is not None:
                body["config_error"] = self.config_error
        return orjson.dumps({**body, **extra})

    # -- the loop -------------------------------------------------------------------------------
    def run(self, stop: threading.Event, duration_s: float | None = None) -> Counters:
        self.link.start()
        deadline = None if duration_s is None else time.monotonic() + duration_s
        next_health = time.monotonic() + self.config.health_interval_s
        try:
            while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
                if time.monotonic() >= self._next_poll:
                    self.tick()
                    self._next_poll = time.monotonic() + _TICK_S
                if time.monotonic() >= next_health:
                    self.enqueue_health()
                    next_health = time.monotonic() + self.config.health_interval_s
                self.pump()
                self._wake.wait(max(0.0, min(_TICK_S, self._next_poll - time.monotonic())))
                self._wake.clear()
        finally:
            self.shutdown()
        return self.counters

    def tick(self, *, force_flush: bool = False) -> None:
        """Poll every sensor, stage what they read, seal the batches that are due."""
        now = self.clock.now()
        by_kind: dict[SensorKind, list[Reading]] = defaultdict(list)
        for sensor_id, source in self.sources.items():
            try:
                readings = source.poll(now)
            except Exception as exc:  # noqa: BLE001  (one broken sensor must not stop the gateway)
                self.counters.source_errors += 1
                if self.counters.errors_by_sensor.get(sensor_id) != str(exc):
                    log.warning("sensor %s failed: %s", sensor_id, exc)
                self.counters.errors_by_sensor[sensor_id] = str(exc)
                continue
            self.counters.errors_by_sensor.pop(sensor_id, None)
            for r in readings:
                by_kind[r.kind].append(r)
        if by_kind:
            staged = [(kind, len(rs), batches.fragment(rs)) for kind, rs in by_kind.items()]
            self.spool.stage(
                [(kind.value, n, frag) for kind, n, frag in staged], {"clock_us": str(_epoch_us(now))}
            )
            for kind, n, frag in staged:
                self._pending[kind].append((n, frag))
                self._pending_since.setdefault(kind, time.monotonic())
                self.counters.readings_read += n
        self._last_poll = max(self._last_poll, now)
        self._seal(force=force_flush)

    def _seal(self, *, force: bool) -> None:
        cfg = self.config.batch
        online = self.link.is_connected
        for kind, pieces in self._pending.items():
            if not pieces:
                continue
            n = sum(c for c, _ in pieces)
            size = sum(len(f) for _, f in pieces)
            age = time.monotonic() - self._pending_since.get(kind, time.monotonic())
            full = n >= cfg.max_readings or size >= cfg.max_bytes
            # Offline, batches fill up: a backlog of full batches drains in fewer messages.
            if not (force or full or (online and age >= cfg.max_interval_s)):
                continue
            priority = Priority.LOW if kind in self.config.spool.low_priority_kinds else Priority.NORMAL
            topic = topics.data(self.config.org, self.config.id, kind)
            seq = self.spool.next_seq
            sent_at = datetime.now(UTC)
            messages = []
            for count, body in batches.chunks(pieces, cfg.max_readings, cfg.max_bytes):
                data, offset = batches.payload(
                    org=self.config.org, gateway=self.config.id, kind=kind, seq=seq, sent_at=sent_at,
                    readings=body,
                )  # fmt: skip
                messages.append(OutgoingMessage(topic, data, priority, count, offset))
                seq += 1
            self.spool.seal(kind.value, messages, seq)
            pieces.clear()
            self._pending_since.pop(kind, None)

    def pump(self) -> None:
        """Take the acknowledgements, apply pushed configs, hand out what the window allows."""
        while self.link.acks:
            entry = self._inflight.pop(self.link.acks.popleft(), None)
            if entry is None:
                continue  # a status message, or an id from before a reconnect reset
            self._acked.append(entry.row)
            self._inflight_bytes -= entry.size
            if entry.readings:
                self.counters.readings_published += entry.readings
                self.counters.batches_published += 1
        self.flush_acks()
        while self.link.configs:
            self._apply_remote(self.link.configs.popleft())
        if self.link.connects != self._seen_connects:
            self._seen_connects = self.link.connects
            self._mark_backlog()
        if self.link.is_connected:
            self._dispatch()

    def flush_acks(self, *, now: bool = False) -> None:
        """Delete acknowledged messages from the spool (grouped unless `now`)."""
        # Deletes are grouped (one fsynced transaction per 0.1 s or 512 messages, not per ack):
        # a crash in between only means a few acknowledged batches are sent again, which
        # InfluxDB collapses (same series and timestamp) and ingest counts as duplicates.
        if self._acked and (
            now or len(self._acked) >= _DELETE_BATCH or time.monotonic() - self._acked_since >= _TICK_S
        ):
            self.spool.delete(self._acked)
            self._acked = []
        if not self._acked:
            self._acked_since = time.monotonic()

    def _mark_backlog(self) -> None:
        """Everything spooled and not yet handed to MQTT becomes backlog, replayed in order."""
        top = self.spool.max_id()
        if top > self._live_cursor:
            self._backlog.append([self._live_cursor, top])
            self._live_cursor = top

    def _room(self) -> int:
        if self._inflight_bytes >= _MAX_INFLIGHT_BYTES:
            return 0
        return self.config.broker.max_inflight - len(self._inflight)

    def _dispatch(self) -> None:
        # Live messages first, so that the dashboard is current again at once; then the
        # backlog, oldest first, in whatever room the window has left.
        while (room := self._room()) > 0:
            rows = self.spool.fetch(self._live_cursor, None, min(room, _FETCH_ROWS))
            if not rows:
                break
            self._send(rows)
            self._live_cursor = rows[-1].id
        while self._backlog and (room := self._room()) > 0:
            lo, hi = self._backlog[0]
            rows = self.spool.fetch(lo, hi, min(room, _FETCH_ROWS))
            if rows:
                self._send(rows)
                self._backlog[0][0] = rows[-1].id
            if not rows or rows[-1].id >= hi:
                self._backlog.popleft()

    def _send(self, rows: list[Spooled]) -> None:
        now = datetime.now(UTC)
        for row in rows:
            payload = batches.with_sent_at(row.payload, row.sent_at_offset, now)
            info = self.link.publish(row.topic, payload)
            # Disconnected meanwhile: paho keeps it and sends it after the next CONNACK.
            self._inflight[info.mid] = _InFlight(row.id, row.readings, len(payload))
            self._inflight_bytes += len(payload)

    # -- remote configuration -------------------------------------------------------------------
    def _apply_remote(self, payload: bytes) -> None:
        if not payload:
            return  # the retained config was cleared: keep running on this one
        try:
            accepted = validate(payload, self.config)
            if accepted.config == self.config:
                changed = self.config_error is not None
                self.config_error = None
                self.config_version = accepted.version
                if changed:
                    self._report_config()
                return
            self._reconfigure(accepted.config, accepted.version)
        except RejectedConfigError as exc:
            self.counters.configs_rejected += 1
            self.config_error = {
                "version": exc.version,
                "reason": str(exc),
                "ts": format_ts(datetime.now(UTC)),
            }
            log.warning("remote config %s rejected: %s", exc.version or "(unversioned)", exc)
            self._report_config()
            return
        self._last_good.save(accepted)
        self.config_version = accepted.version
        self.config_error = None
        self.counters.configs_applied += 1
        log.info("remote config %s applied", accepted.version)
        self._report_config()
        self._declare()

    def _reconfigure(self, new: GatewayConfig, version: str) -> None:
        """Open the added and re-tuned sensors first (all or none), then swap them in."""
        old = {s.id: s for s in self.config.sensors}
        ctx = SourceContext(org=new.org, gateway=new.id, seed=self.seed, start=self._last_poll + _US)
        opened: dict[str, Source] = {}
        for i, sensor in enumerate(new.sensors):
            if old.get(sensor.id) == sensor:
                continue
            try:
                opened[sensor.id] = get(sensor.driver).open(sensor, ctx)
            except Exception as exc:  # noqa: BLE001  (a driver's failure to open is a reason to refuse)
                for source in opened.values():
                    source.close()
                raise RejectedConfigError(version, [f"sensors[{i}]: cannot open: {exc}"]) from None
        keep = {s.id for s in new.sensors}
        for sensor_id in [s for s in self.sources if s not in keep or s in opened]:
            self.sources.pop(sensor_id).close()
            self.counters.errors_by_sensor.pop(sensor_id, None)
        self.sources.update(opened)
        self.sources = {s.id: self.sources[s.id] for s in new.sensors}
        self.config = new
        self.spool.max_bytes = int(new.spool.max_mb * 1_048_576)
        self.spool.min_free_bytes = int(new.spool.min_free_disk_mb * 1_048_576)

    def _declare(self) -> None:
        """The retained meta says the sensors now running (the next connect says it anyway)."""
        if self.link.is_connected:
            self.link.publish(self._meta_topic, meta_payload(self.config, self.config_version), retain=True)

    def _report_config(self) -> None:
        """The retained status carries the applied version and the last rejection."""
        if self.link.is_connected:
            self.link.publish(self._status_topic, self._status("online"), retain=True)
        self.enqueue_health()

    def _drain(self, deadline: float) -> bool:
        """Deliver what is spooled until `deadline`; False when the broker stayed out of reach."""
        offline_since: float | None = None
        while self.spool.messages and time.monotonic() < deadline:
            self.pump()
            self.flush_acks(now=True)
            if self.link.is_connected:
                offline_since = None
            else:
                offline_since = offline_since or time.monotonic()
                if time.monotonic() - offline_since > _OFFLINE_GIVE_UP_S:
                    return False
            self._wake.wait(0.05)
            self._wake.clear()
        self.flush_acks(now=True)
        return True

    # -- health ---------------------------------------------------------------------------------
    @property
    def queue_depth(self) -> int:
        """Readings read and not yet acknowledged (staged, or in sealed batches)."""
        return self.spool.message_readings + self.spool.staged_readings

    def health(self, *, final: bool = False) -> dict[str, Any]:
        oldest = self.spool.oldest_created_s()
        drivers: dict[str, Any] = {}
        for sensor_id, source in self.sources.items():
            stats = getattr(source, "stats", None)
            if callable(stats):
                try:
                    drivers[sensor_id] = stats()
                except Exception as exc:  # noqa: BLE001  (health must not fail on a driver)
                    drivers[sensor_id] = {"error": str(exc)}
        return {
            "ts": format_ts(datetime.now(UTC)),
            "clock": format_ts(self.clock.now()),
            "uptime_s": round(time.monotonic() - self._started_mono, 1),
            "readings_read": self.counters.readings_read,
            "readings_published": self.counters.readings_published,
            "batches_published": self.counters.batches_published,
            "queue_depth": self.queue_depth,
            "queue_messages": self.spool.messages,
            "queue_bytes": self.spool.message_bytes + self.spool.staged_bytes,
            "oldest_queued_age_s": None if oldest is None else round(max(0.0, time.time() - oldest), 1),
            "dropped_readings": self.spool.dropped_readings,
            "dropped_messages": self.spool.dropped_messages,
            "spool_file_mb": round(self.spool.file_bytes() / 1_048_576, 2),
            "seq": max(0, self.spool.next_seq - 1),
            "connected": self.link.is_connected,
            "connects": self.link.connects,
            "connect_failures": self.link.connect_failures,
            "sensors": len(self.sources),
            "source_errors": self.counters.source_errors,
            "failing_sensors": sorted(self.counters.errors_by_sensor),
            "drivers": drivers,
            **self._sampler.sample(),
            **kernel_clock(),
            "config_version": self.config_version,
            "config_error": self.config_error,
            "configs_applied": self.counters.configs_applied,
            "configs_rejected": self.counters.configs_rejected,
            "pid": os.getpid(),
            "version": VERSION,
            "final": final,
        }

    def enqueue_health(self, *, final: bool = False) -> None:
        """Health goes through the spool too, at the highest priority: it is never lost."""
        payload = orjson.dumps(self.health(final=final))
        self.spool.append([OutgoingMessage(self._health_topic, payload, Priority.HIGH)])

    def shutdown(self) -> None:
        """Seal everything, drain the spool while the broker listens (bounded), say goodbye."""
        self.tick(force_flush=True)
        deadline = time.monotonic() + _DRAIN_TIMEOUT_S
        is_online = self._drain(deadline)
        # The final health counts what the drain delivered, so it goes after it.
        self.enqueue_health(final=True)
        if is_online:
            self._drain(deadline)
        if self.spool.messages:
            log.warning("%d messages stay spooled for the next start", self.spool.messages)
        if self.link.is_connected:
            info = self.link.publish(
                self._status_topic, self._status("offline", reason="shutdown"), retain=True
            )
            info.wait_for_publish(timeout=5)
        self.link.stop()
        for source in self.sources.values():
            source.close()
        self.spool.close()
