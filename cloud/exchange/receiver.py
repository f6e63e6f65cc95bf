"""NGSI-LD in: the notifications a partner's context broker sends for our subscription, as readings.

A notification (ETSI GS CIM 009, "Notification" data type) carries `id`, `subscriptionId`,
`notifiedAt` and `data`, the entities in either form. Each entity of a type we read becomes a
reading of its kind (`readings.py`), the readings of one kind one wire batch of the partner's
organisation (gateway `ngsi-ld`), and the batches go to ingest's verdict and storage through the
`core.intake.Intake` the wiring hands over (`cloud/apps/api.py`): the contract, the time limits,
a sensor of another organisation refused, dead letters, counters, and the answer only once
InfluxDB accepted them. A partner's entities are in none of our installation records: they get
the admission's verdict for partners (`Admission.for_partners`).

The broker authenticates with the partner organisation's API token, which the subscription
asks it to send (`receiverInfo`, `sitroom exchange subscribe`), checked against the organisation
registry (`cloud.io.http.CallerDep`). A notification sent again (same `id`) is answered from the
ledger (`cloud/io/ledger.py`) and stored once. Where an entity has a Point location, its place is
stored beside its reading (`cloud.io.influx.sites`), so that the map shows a partner's car park.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from cloud.core.intake import Intake, Refusal, StorageUnavailableError, Submission, wire_bytes
from cloud.exchange.readings import Mapped, UnmappedError, to_reading
from cloud.io.http import CallerDep
from cloud.io.influx.sites import site_line
from cloud.io.ledger import BatchLedger, digest
from edge.contract import SCHEMA_VERSION, ContractError, SchemaError, SensorKind, format_ts, loads, short_repr

NOTIFY_PATH = "/exchange/ngsi-ld/notify"
GATEWAY = "ngsi-ld"  # the pseudo-gateway of every partner's NGSI-LD readings
_MAX_KEY = 200


class NotificationRefusedError(Exception):
    """A notification refused whole; answered as every refusal of the API is (`detail`, and
    `errors` with each problem's field, message and value: cloud/io/http.py)."""

    def __init__(
        self,
        status: int,
        detail: str,
        headers: dict[str, str] | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        self.status = status
        self.detail = detail
        self.headers = headers or {}
        self.errors = errors or []
        super().__init__(f"{status}: {detail}")

    def response(self) -> JSONResponse:
        body = {"detail": self.detail, "errors": self.errors}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


@dataclass(frozen=True, slots=True)
class NotificationAnswer:
    notification: str
    entities: list[tuple[str, str]]  # (id, type) per entity, by index in `data`
    refusals: list[Refusal]
    is_replay: bool = False

    def to_json(self) -> bytes:
        refused = {r.index: r for r in self.refusals}
        verdicts: list[dict[str, Any]] = []
        for i, (entity_id, entity_type) in enumerate(self.entities):
            verdict: dict[str, Any] = {"index": i, "id": entity_id, "type": entity_type}
            r = refused.get(i)
            if r is None:
                verdict["status"] = "accepted"
            else:
                verdict |= {"status": "refused", "field": r.field, "reason": r.reason, "message": r.message}
                verdict["value"] = r.value
            verdicts.append(verdict)
        return orjson.dumps(
            {
                "notification": self.notification,
                "entities": len(self.entities),
                "accepted": len(self.entities) - len(refused),
                "refused": len(refused),
                "replayed": self.is_replay,
                "verdicts": verdicts,
            }
        )


def _label(entity: Any, key: str) -> str:
    value = entity.get(key) if isinstance(entity, dict) else None
    return value if isinstance(value, str) else ""


class NotificationReceiver:
    """NGSI-LD notifications without HTTP: deduplicate, map, admit, store, answer (for an
    organisation the router authenticated)."""

    def __init__(self, intake: Intake, ledger: BatchLedger) -> None:
        self.intake = intake
        self.ledger = ledger
        self._seq_lock = threading.Lock()
        self._seq = 0

    def receive(self, org: str, body: bytes) -> NotificationAnswer:
        source = f"ngsi-ld/notify/{org}"
        try:
            raw = loads(body)
            notification_id, notified_at, data = self._envelope(raw)
        except ContractError as exc:
            refusal = Refusal.of(exc, None)
            self._store(org, source, body, [], [refusal])
            raise NotificationRefusedError(422, str(exc), errors=[refusal.problem()]) from None
        key = f"ngsi-ld:{notification_id}"
        if len(key) > _MAX_KEY:
            key = "ngsi-ld:sha256:" + hashlib.sha256(notification_id.encode()).hexdigest()
        labels = [(_label(e, "id"), _label(e, "type")) for e in data]
        body_sha = digest(body)
        with self.ledger.lock(org, key):
            seen = self.ledger.get(org, key)
            if seen is not None:
                # A broker resending a notification (same id) sends the same body; if not, the
                # first one stands: the id names the notification.
                return NotificationAnswer(notification_id, labels, seen.refusals, is_replay=True)
            submissions, unmapped = self._map(org, data, notified_at)
            refusals = self._store(org, source, body, submissions, unmapped)
            self.ledger.record(org, key, body_sha, len(data), refusals)
        return NotificationAnswer(notification_id, labels, refusals)

    @staticmethod
    def _envelope(raw: Any) -> tuple[str, str | None, list[Any]]:
        if not isinstance(raw, dict):
            raise SchemaError("expected an NGSI-LD Notification (a JSON object)", field="payload", value=raw)
        if raw.get("type") != "Notification":
            raise SchemaError("expected type Notification", field="type", value=raw.get("type"))
        notification_id = raw.get("id")
        if not isinstance(notification_id, str) or not notification_id:
            raise SchemaError("a notification needs its id", field="id", value=notification_id)
        data = raw.get("data")
        if not isinstance(data, list):
            raise SchemaError("expected a list of entities", field="data", value=data)
        notified_at = raw.get("notifiedAt")
        return notification_id, notified_at if isinstance(notified_at, str) else None, data

    def _map(
        self, org: str, data: list[Any], notified_at: str | None
    ) -> tuple[list[Submission], list[Refusal]]:
        """One wire batch per kind, and the entities that make no reading at all."""
        unmapped: list[Refusal] = []
        by_kind: dict[SensorKind, list[tuple[int, Mapped]]] = {}
        for j, entity in enumerate(data):
            try:
                mapped = to_reading(entity, fallback_ts=notified_at)
            except UnmappedError as exc:
                where = f"data[{j}]" + (f".{exc.attribute}" if exc.attribute else "")
                value = "" if exc.value is None else short_repr(exc.value)
                unmapped.append(Refusal(j, _label(entity, "id"), where, exc.reason, exc.message, value))
                continue
            by_kind.setdefault(mapped.kind, []).append((j, mapped))
        now = datetime.now(UTC)
        submissions = []
        for kind, items in by_kind.items():
            batch = {
                "v": SCHEMA_VERSION,
                "org": org,
                "gateway": GATEWAY,
                "kind": kind.value,
                "seq": self._next_seq(),
                "sent_at": format_ts(now),
                "readings": [m.reading for _, m in items],
            }

            def renumber(k: int, path: str, items: list[tuple[int, Mapped]] = items) -> tuple[int, str]:
                j, mapped = items[k]
                inner = path.removeprefix(f"readings[{k}]").removeprefix(".")
                return j, f"data[{j}]" + (f".{mapped.attribute_of(inner)}" if inner else "")

            places = {k: _site_line(org, kind, m, now) for k, (_, m) in enumerate(items) if m.place}
            submissions.append(Submission(wire_bytes(batch), renumber, places))
        return submissions, unmapped

    def _store(
        self, org: str, source: str, body: bytes, submissions: list[Submission], unmapped: list[Refusal]
    ) -> list[Refusal]:
        try:
            return self.intake.store(
                org, source, body, submissions, refused=unmapped, gateway=GATEWAY, is_partner_data=True
            )
        except StorageUnavailableError as exc:
            # The broker retries a failed notification (or the partner resends): nothing was stored.
            raise NotificationRefusedError(
                503, f"{exc}; nothing was stored", {"Retry-After": str(exc.retry_after_s)}
            ) from None

    def _next_seq(self) -> int:
        with self._seq_lock:
            self._seq += 1
            return self._seq


def _site_line(org: str, kind: SensorKind, m: Mapped, at: datetime) -> str:
    assert m.place is not None
    return site_line(org, m.sensor, kind.value, lat=m.place.lat, lon=m.place.lon, name=m.name, at=at)


# -- HTTP ----------------------------------------------------------------------------------------

router = APIRouter(tags=["exchange"])


def get_receiver(request: Request) -> NotificationReceiver:
    receiver: NotificationReceiver = request.app.state.ngsi_ld
    return receiver


@router.post(
    NOTIFY_PATH,
    summary="Receive an NGSI-LD notification (what a partner's context broker sends for our subscription)",
    responses={
        200: {"description": "Stored: one verdict per entity"},
        401: {"description": "Missing or unknown token"},
        422: {"description": "Not an NGSI-LD notification"},
        503: {"description": "Storage unavailable, nothing stored; see Retry-After"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}, "application/ld+json": {}},
        }
    },
)
async def notify(
    request: Request,
    receiver: Annotated[NotificationReceiver, Depends(get_receiver)],
    caller: CallerDep,
) -> Response:
    try:
        body = await request.body()
        answer = await run_in_threadpool(receiver.receive, caller.org, body)
    except NotificationRefusedError as exc:
        return exc.response()
    return Response(answer.to_json(), media_type="application/json")


__all__ = ["GATEWAY", "NOTIFY_PATH", "NotificationAnswer", "NotificationReceiver", "router"]
