"""Keeps a partner's context broker up to date with our entities: the changed ones, batched, retried.

It runs in a process of its own (`sitroom exchange publish`), reading what ingest stored, so a
slow or absent broker never slows ingest. Every `interval_s` it recomputes the entities
(`source`, e.g. the catalogue over InfluxDB), and each one whose content differs from what the
broker last accepted joins `pending`, which keeps only the latest state per entity id: it is
bounded by the number of entities, however long the broker is down, and recomputable from
InfluxDB after a restart (which upserts everything once: an upsert of the same state is
harmless). Pending entities go out in batches of `batch_size` (NGSI-LD batch upsert); a broker
that is down or failing (5xx, network) is retried with exponential back-off up to
`max_backoff_s`, losing nothing; an entity the broker refuses (a 4xx, or an error in a 207) is
counted and not sent again until it changes.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from cloud.exchange.broker import BrokerError, ContextBroker, RetryableBrokerError
from cloud.exchange.forms import Entity

log = logging.getLogger(__name__)


@dataclass(slots=True)
class PublisherStats:
    upserted: int = 0  # entity states the broker accepted
    refused: int = 0  # entity states the broker refused (4xx): sent again only once changed
    failures: int = 0  # requests that failed retryably (broker down, 5xx)
    pending: int = 0
    last_error: str = ""


def _digest(document: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(document, option=orjson.OPT_SORT_KEYS)).hexdigest()


class Publisher:
    def __init__(
        self,
        broker: ContextBroker,
        source: Callable[[], list[Entity]],
        *,
        interval_s: float = 10.0,
        batch_size: int = 100,
        max_backoff_s: float = 60.0,
    ) -> None:
        self.broker = broker
        self.source = source
        self.interval_s = interval_s
        self.batch_size = batch_size
        self.max_backoff_s = max_backoff_s
        self.stats = PublisherStats()
        self.pending: dict[str, dict[str, Any]] = {}  # entity id -> its latest normalized document
        self._accepted: dict[str, str] = {}  # entity id -> digest of the state the broker has (or refused)

    def refresh(self) -> int:
        """Recompute the entities; queue those that changed. Returns how many are pending."""
        for entity in self.source():
            document = entity.normalized()
            if self._accepted.get(entity.id) != _digest(document):
                self.pending[entity.id] = document
        self.stats.pending = len(self.pending)
        return len(self.pending)

    def flush(self) -> None:
        """Send every pending entity; raises RetryableBrokerError, keeping the rest pending."""
        while self.pending:
            ids = list(self.pending)[: self.batch_size]
            documents = [self.pending[i] for i in ids]
            try:
                result = self.broker.upsert(documents)
            except RetryableBrokerError:
                self.stats.failures += 1
                raise
            except BrokerError as exc:
                # The whole request refused: none of these states will pass unchanged.
                result_failed = {i: str(exc) for i in ids}
                self._settle(ids, documents, result_failed)
                continue
            self._settle(ids, documents, result.failed)

    def _settle(self, ids: list[str], documents: list[dict[str, Any]], failed: dict[str, str]) -> None:
        for entity_id, document in zip(ids, documents, strict=True):
            # Only the state that was sent is settled: a newer one queued meanwhile stays pending.
            if self.pending.get(entity_id) is document:
                del self.pending[entity_id]
            self._accepted[entity_id] = _digest(document)
            if entity_id in failed:
                self.stats.refused += 1
                log.warning("context broker refused %s: %s", entity_id, failed[entity_id])
            else:
                self.stats.upserted += 1
        self.stats.pending = len(self.pending)

    def run(self, stop: threading.Event) -> None:
        """Refresh and flush every `interval_s` until `stop`; back off while the broker fails."""
        delay = self.interval_s
        while not stop.is_set():
            try:
                self.refresh()
                self.flush()
                delay = self.interval_s
            except RetryableBrokerError as exc:
                self.stats.last_error = str(exc)
                delay = min(max(delay * 2, 1.0), self.max_backoff_s)
                log.warning("%s; %d entities pending, trying again in %.0f s", exc, len(self.pending), delay)
            except Exception as exc:
                # The source (InfluxDB, the registry) failing must not end publishing for good.
                self.stats.last_error = str(exc)
                log.exception("publishing failed; trying again in %.0f s", self.interval_s)
            stop.wait(delay)


__all__ = ["Publisher", "PublisherStats"]
