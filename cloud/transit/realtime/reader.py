"""The GTFS-Realtime reader service: poll, check, keep, publish; never stop for a bad body.

Each configured URL is polled every `interval_s` with conditional requests; a failure (timeout,
HTTP error, network) backs off, doubling up to `backoff_max_s` (or as long as the server's
`Retry-After` asks). A body is processed once:

1. parsed (`edge.contract.gtfs.realtime.parse`); a body that is not a FeedMessage is refused
   whole, kept as a refusal (`bad_feed`) and published as a dead letter, and the service goes on;
2. skipped if it is the same snapshot again (same header timestamp and bytes): stored once;
3. made one view (FULL_DATASET or DIFFERENTIAL, `entities.py`);
4. turned into readings (`vehicles.py`, `delays.py`) and service alerts (`alerts.py`); an entity
   referring to a trip, route or stop the operator's static feed lacks is refused with the reason;
5. kept in one transaction (`rtstore.py`): batches with the next seq into the outbox, the URL's
   state, alerts, refusals; then the outbox is published (`publisher.py`), each batch leaving it
   on PUBACK, and ingest does admission, dead-letters and accounting as for any gateway.

A feed whose header timestamp has not moved forward for `stale_after_s` is stale: the health
says so and a retained `transit-feed-stale` alert fires, resolved when it moves again.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from cloud.core.alerts import Alert
from cloud.transit.realtime.alerts import ServiceAlert, service_alert
from cloud.transit.realtime.config import ReaderConfig
from cloud.transit.realtime.delays import DelayReadings
from cloud.transit.realtime.entities import EntityView
from cloud.transit.realtime.poller import FeedPoller, Fetched, FetchError
from cloud.transit.realtime.publisher import Publisher
from cloud.transit.realtime.refusals import BAD_FEED, Refusal
from cloud.transit.realtime.rtstore import Kept, Outgoing, RealtimeStore, UrlState
from cloud.transit.realtime.timetable import Timetable
from cloud.transit.realtime.vehicles import VehicleReadings
from cloud.transit.realtime.wire import Wire
from cloud.transit.store import TransitStore
from edge.contract import SensorKind, format_ts, short_repr
from edge.contract.gtfs.ids import sensor_id
from edge.contract.gtfs.realtime import RealtimeDecodeError, parse

log = logging.getLogger(__name__)

STALE_RULE = "transit-feed-stale"
TIMETABLE_CHECK_S = 60.0  # how often to look for a new version of the static feed
_MAX_REMEMBERED_REFUSALS = 50_000


@dataclass(slots=True)
class ReaderStats:
    polls: int = 0
    bodies: int = 0
    not_modified: int = 0
    unchanged: int = 0  # the same snapshot again: not processed twice
    fetch_errors: Counter[str] = field(default_factory=Counter)  # by kind: timeout, http, network
    entities: int = 0
    readings_read: int = 0
    readings_published: int = 0
    batches_published: int = 0
    refused: Counter[str] = field(default_factory=Counter)  # by reason
    refusals_repeated: int = 0  # the same refused entity in a later snapshot: kept once


@dataclass(slots=True)
class _Url:
    poller: FeedPoller
    state: UrlState
    view: EntityView
    delays: DelayReadings
    next_at: float = 0.0
    failures: int = 0
    is_stale: bool = False
    stale_alert: Alert | None = None


class TransitReader:
    def __init__(
        self,
        config: ReaderConfig,
        store: TransitStore,
        publisher: Publisher | None,
        *,
        http: httpx.Client | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.store = store
        self.publisher = publisher
        self.http = http or httpx.Client(follow_redirects=True)
        self.wall = wall
        self.rt = RealtimeStore(store.engine, config.source, config.operator)
        self.stats = ReaderStats()
        self.started = wall()
        self._timetable = Timetable.load(store, config.operator)
        self._timetable_checked = self.started
        self._refused: dict[tuple[str, str, str, str], None] = {}
        headers = dict(config.headers)
        params: dict[str, str] = {}
        if config.api_key is not None:
            key = config.api_key.value()
            if config.api_key.header:
                headers[config.api_key.header] = key
            else:
                assert config.api_key.param is not None
                params[config.api_key.param] = key
        self.urls: dict[str, _Url] = {}
        for feed in config.feeds:
            state = self.rt.url_state(feed.url)
            # A restart gives the feed a full `stale_after_s` again before calling it stale.
            state.advanced_ms = int(self.started * 1000)
            poller = FeedPoller(
                feed, headers=headers, params=params, etag=state.etag, last_modified=state.last_modified
            )
            self.urls[feed.url] = _Url(poller, state, EntityView(), DelayReadings(self.timetable))
        self.vehicles = VehicleReadings(self.timetable, self.delay_of)

    # -- lookups ---------------------------------------------------------------------------------

    def timetable(self) -> Timetable:
        return self._timetable

    def delay_of(self, trip_id: str) -> int | None:
        for url in self.urls.values():
            delay = url.delays.delay_of(trip_id)
            if delay is not None:
                return delay
        return None

    def _check_timetable(self, now: float) -> None:
        if now - self._timetable_checked < TIMETABLE_CHECK_S:
            return
        self._timetable_checked = now
        current = self.store.current_feed(self.config.operator)
        if current.id != self._timetable.feed.id:
            log.info("static feed of %s is now version %d", self.config.operator, current.version)
            self._timetable = Timetable.load(self.store, self.config.operator)

    # -- one round -------------------------------------------------------------------------------

    def poll(self, now: float | None = None) -> int:
        """Fetch and process every URL that is due; publish the outbox. Returns batches published."""
        now = self.wall() if now is None else now
        self._check_timetable(now)
        for url in self.urls.values():
            if now >= url.next_at:
                self._poll_one(url, now)
            self._staleness(url, now)
        return self.flush()

    def _poll_one(self, url: _Url, now: float) -> None:
        self.stats.polls += 1
        try:
            fetched = url.poller.fetch(self.http, self.config.timeout_s)
        except FetchError as exc:
            url.failures += 1
            self.stats.fetch_errors[exc.kind] += 1
            wait = min(self.config.interval_s * 2**url.failures, self.config.backoff_max_s)
            if exc.retry_after_s is not None:
                wait = min(max(wait, exc.retry_after_s), self.config.backoff_max_s)
            url.next_at = now + wait
            log.warning("%s; next try in %.0f s", exc, wait)
            return
        url.failures = 0
        url.next_at = now + self.config.interval_s
        if fetched.body is None:
            self.stats.not_modified += 1
            return
        self.stats.bodies += 1
        self.process(url, fetched, now)

    def process(self, url: _Url, fetched: Fetched, now: float) -> None:
        assert fetched.body is not None
        now_ms = int(now * 1000)
        sha = hashlib.sha256(fetched.body).hexdigest()
        state = url.state
        new_state = UrlState(fetched.etag, fetched.last_modified, state.header_ts, sha, state.advanced_ms)
        try:
            message = parse(fetched.body)
        except RealtimeDecodeError as exc:
            if sha != state.body_sha256:  # the same broken body again is refused once
                refusal = Refusal(BAD_FEED, exc.field, short_repr(exc.value), exc.message)
                self._keep(url, Kept(url.poller.url, new_state, now_ms, refusals=[refusal]), fetched)
            else:
                url.poller.accept(fetched)
            return
        header_ts = int(message.header.timestamp)
        if header_ts == state.header_ts and sha == state.body_sha256:
            self.stats.unchanged += 1
            url.poller.accept(fetched)
            return
        if state.header_ts is None or header_ts > state.header_ts:
            new_state.header_ts, new_state.advanced_ms = header_ts, now_ms
        kept = Kept(url.poller.url, new_state, now_ms)
        self._convert(url, message, header_ts or int(now), kept)
        self._keep(url, kept, fetched)

    def _convert(self, url: _Url, message: Any, header_ts: int, kept: Kept) -> None:
        applied = url.view.apply(message)
        self.stats.entities += len(applied.sent)
        # Trip updates first: a vehicle's reading carries its trip's delay as of this snapshot.
        index = {e.id: i for i, e in applied.sent}
        trip_updates = [
            (index.get(eid, -1), e) for eid, e in applied.view.items() if e.HasField("trip_update")
        ]
        delays, refusals = url.delays.update(trip_updates, header_ts)
        vehicles: list[Wire] = []
        for i, entity in applied.sent:
            if entity.HasField("vehicle"):
                converted = self.vehicles.convert(i, entity, header_ts)
                if isinstance(converted, Refusal):
                    refusals.append(converted)
                elif converted is not None:
                    vehicles.append(converted)
        alerts: list[ServiceAlert] = []
        timetable = self.timetable()
        for eid, entity in applied.view.items():
            if entity.HasField("alert"):
                found = service_alert(index.get(eid, -1), entity, timetable, self.config.language)
                if isinstance(found, Refusal):
                    refusals.append(found)
                else:
                    alerts.append(found)
        kept.alerts = alerts
        kept.refusals = self._new_refusals(refusals)
        size = self.config.batch_readings
        for kind, readings in ((SensorKind.TRANSIT_VEHICLE, vehicles), (SensorKind.TRANSIT_DELAY, delays)):
            for start in range(0, len(readings), size):
                kept.batches.append((kind.value, readings[start : start + size]))
        self.stats.readings_read += len(vehicles) + len(delays)

    def _new_refusals(self, refusals: list[Refusal]) -> list[Refusal]:
        """A full dataset repeats a bad entity in every snapshot: each is refused once."""
        out = []
        for r in refusals:
            key = (r.entity_id, r.reason, r.field.split(".", 1)[-1], r.value)
            if key in self._refused:
                self.stats.refusals_repeated += 1
                continue
            if len(self._refused) >= _MAX_REMEMBERED_REFUSALS:
                self._refused.clear()
            self._refused[key] = None
            out.append(r)
        return out

    def _keep(self, url: _Url, kept: Kept, fetched: Fetched) -> None:
        self.rt.keep(kept)
        url.state = kept.state
        url.poller.accept(fetched)
        for r in kept.refusals:
            self.stats.refused[r.reason] += 1
            log.info("refused %s %s: %s %r %s", r.reason, r.entity_id, r.field, r.value, r.message)
            if self.publisher is not None:
                self.publisher.deadletter(self._deadletter(r, kept))

    def _deadletter(self, r: Refusal, kept: Kept) -> dict[str, Any]:
        """The dead-letter message ingest publishes (docs/contract/asyncapi.yaml, `DeadLetter`)."""
        return {
            "received_at": format_ts(datetime.fromtimestamp(kept.now_ms / 1000, UTC)),
            "topic": kept.url[:256],
            "reason": r.reason,
            "field": r.field,
            "value": short_repr(r.value),
            "message": r.message,
            "org": self.config.operator,
            "gateway": self.config.source,
            "sensor": "",
            "seq": None,
            "payload_size": 0,
            "payload_sha256": kept.state.body_sha256 or "",
            "payload_excerpt": r.entity_id,
        }

    # -- publishing ------------------------------------------------------------------------------

    def flush(self) -> int:
        """Publish the outbox in seq order until it is empty or the broker does not acknowledge."""
        if self.publisher is None:
            return 0
        done = 0
        while True:
            pending = self.rt.pending()
            if not pending:
                return done
            sent: list[Outgoing] = []
            for out in pending:
                if not self.publisher.batch(out):
                    break
                sent.append(out)
            if sent:
                self.rt.sent([o.seq for o in sent])
                self.stats.batches_published += len(sent)
                self.stats.readings_published += sum(o.count for o in sent)
                done += len(sent)
            if len(sent) < len(pending):
                return done

    # -- staleness and health --------------------------------------------------------------------

    def _staleness(self, url: _Url, now: float) -> None:
        advanced = (url.state.advanced_ms or 0) / 1000
        is_stale = now - advanced > self.config.stale_after_s
        if is_stale == url.is_stale:
            return
        url.is_stale = is_stale
        entity = sensor_id(f"{self.config.source}-{url.poller.feed.name}")
        at = datetime.fromtimestamp(now, UTC)
        header = url.state.header_ts
        age = now - header if header else None
        if is_stale:
            url.stale_alert = Alert(
                rule=STALE_RULE,
                org=self.config.operator,
                entity=entity,
                gateway=self.config.source,
                kind="gateway",
                severity="warning",
                state="firing",
                since=datetime.fromtimestamp(advanced, UTC),
                ts=at,
                message=f"{url.poller.url}: the feed's header timestamp has not advanced for "
                f"{now - advanced:.0f} s",
                value=age,
                threshold=self.config.stale_after_s,
            )
            log.warning("%s", url.stale_alert.message)
            alert = url.stale_alert
        elif url.stale_alert is not None:
            alert = url.stale_alert.resolved(at, f"{url.poller.url}: the feed advances again", age)
            url.stale_alert = None
        else:
            return
        if self.publisher is not None:
            self.publisher.alert(alert)

    def health(self, now: float | None = None) -> dict[str, Any]:
        """The gateway health message (docs/contract/asyncapi.yaml `Health`), with the feed's own."""
        now = self.wall() if now is None else now
        batches, readings = self.rt.queued()
        s = self.stats
        feeds = {}
        for url in self.urls.values():
            header = url.state.header_ts
            feeds[url.poller.feed.name] = {
                "url": url.poller.url,
                "header_ts": header,
                "feed_age_s": round(now - header, 1) if header else None,
                "is_stale": url.is_stale,
                "failures": url.failures,
            }
        return {
            "ts": format_ts(datetime.fromtimestamp(now, UTC)),
            "uptime_s": round(now - self.started, 1),
            "readings_read": s.readings_read,
            "readings_published": s.readings_published,
            "batches_published": s.batches_published,
            "queue_depth": readings,
            "queue_messages": batches,
            "seq": max(self.rt.seq(), 0),
            "source_errors": sum(s.refused.values()),
            "is_stale": any(u.is_stale for u in self.urls.values()),
            "polls": s.polls,
            "not_modified": s.not_modified,
            "unchanged": s.unchanged,
            "fetch_errors": dict(s.fetch_errors),
            "refused": dict(s.refused),
            "refusals_repeated": s.refusals_repeated,
            "repeated_fixes": self.vehicles.repeated,
            "feeds": feeds,
        }

    def run(self, stop: threading.Event) -> None:
        if self.publisher is not None:
            self.publisher.start()
        next_health = self.wall()
        try:
            while not stop.is_set():
                now = self.wall()
                try:
                    self.poll(now)
                except Exception:  # a bug or a database outage must not end the service
                    log.exception("reader round failed; retrying")
                if now >= next_health and self.publisher is not None:
                    self.publisher.health(self.health(now))
                    next_health = now + self.config.health_interval_s
                due = min(u.next_at for u in self.urls.values())
                stop.wait(max(0.05, min(due - self.wall(), 1.0)))
        finally:
            if self.publisher is not None:
                self.flush()
                self.publisher.stop()
            self.http.close()
