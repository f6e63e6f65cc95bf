"""NGSI-LD in: the notifications a partner's context broker sends for our subscription, as readings.

A notification (ETSI GS CIM 009, "Notification" data type) carries `id`, `subscriptionId`,
`notifiedAt` and `data`, the entities in either form. Each entity of a type we read becomes a
reading of its kind (`readings.py`), the readings of one kind one wire batch of the partner's
organisation (gateway `ngsi-ld`), and the batches go through ingest's own verdict and storage
(`cloud.ingest.direct`): contract, time limits, a sensor of another organisation refused, dead
letters, counters, and the answer only once InfluxDB accepted them. A partner's entities are not
in our installation records, so the sensor directory does not apply to them.

The broker authenticates with the partner organisation's API token, which the subscription
asks it to send (`receiverInfo`, `sitroom exchange subscribe`). A notification sent again (same
`id`) is answered from the ledger and stored once. Where an entity has a Point location, the
place is written too (`sitroom_site`), so that the map can show a partner's car park.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from cloud.exchange.catalogue import SITE_MEASUREMENT
from cloud.exchange.readings import Mapped, UnmappedError, to_reading
from cloud.influx.lineprotocol import line
from cloud.ingest.deadletter import DeadLetter
from cloud.ingest.direct import Admitted, DirectIngest, Refusal, StorageUnavailableError, wire_bytes
from cloud.ingest.ledger import BatchLedger, digest
from edge.contract import SCHEMA_VERSION, ContractError, SchemaError, SensorKind, format_ts, loads, short_repr

NOTIFY_PATH = "/exchange/ngsi-ld/notify"
GATEWAY = "ngsi-ld"  # the pseudo-gateway of every partner's NGSI-LD readings
_MAX_KEY = 200


class NotificationRefusedError(Exception):
    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.detail = detail
        self.headers = headers or {}
        super().__init__(f"{status}: {detail}")

    def response(self) -> JSONResponse:
        return JSONResponse({"detail": self.detail}, status_code=self.status, headers=self.headers)


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
    """NGSI-LD notifications without HTTP: authenticate, deduplicate, map, admit, store, answer."""

    def __init__(
        self, direct: DirectIngest, ledger: BatchLedger, authenticate: Callable[[str], str | None]
    ) -> None:
        self.direct = direct
        self.ledger = ledger
        self._authenticate = authenticate
        self._seq_lock = threading.Lock()
        self._seq = 0

    def organisation(self, token: str | None) -> str:
        org = self._authenticate(token) if token else None
        if org is None:
            challenge = {"WWW-Authenticate": "Bearer"}
            raise NotificationRefusedError(401, "missing or unknown API token", challenge)
        return org

    def receive(self, org: str, body: bytes) -> NotificationAnswer:
        source = f"ngsi-ld/notify/{org}"
        try:
            raw = loads(body)
            notification_id, notified_at, data = self._envelope(raw)
        except ContractError as exc:
            self._write([], [self._dead(exc, source, body, org)], [])
            raise NotificationRefusedError(422, str(exc)) from None
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
            admitted, refusals, dead, sites = self._map(org, source, body, data, notified_at)
            self._write(admitted, dead, sites)
            for a in admitted:
                refusals += a.refusals
            refusals.sort(key=lambda r: -1 if r.index is None else r.index)
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
        self, org: str, source: str, body: bytes, data: list[Any], notified_at: str | None
    ) -> tuple[list[Admitted], list[Refusal], list[DeadLetter], list[str]]:
        refusals: list[Refusal] = []
        dead: list[DeadLetter] = []
        by_kind: dict[SensorKind, list[tuple[int, Mapped]]] = {}
        for j, entity in enumerate(data):
            try:
                mapped = to_reading(entity, fallback_ts=notified_at)
            except UnmappedError as exc:
                where = f"data[{j}]" + (f".{exc.attribute}" if exc.attribute else "")
                value = "" if exc.value is None else short_repr(exc.value)
                refusals.append(Refusal(j, _label(entity, "id"), where, exc.reason, exc.message, value))
                error = SchemaError(exc.message, field=where, value=exc.value)
                dead.append(self._dead(error, source, body, org, exc.reason))
                continue
            by_kind.setdefault(mapped.kind, []).append((j, mapped))
        admitted = []
        sites: list[str] = []
        now = datetime.now(UTC)
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

            a = self.direct.admit(
                wire_bytes(batch), source=source, org=org, renumber=renumber, sent=body, check_directory=False
            )
            admitted.append(a)
            refused = {r.index for r in a.refusals}
            sites += [_site_line(org, kind, m, now) for j, m in items if j not in refused and m.place]
        return admitted, refusals, dead, sites

    @staticmethod
    def _dead(error: ContractError, source: str, body: bytes, org: str, reason: str = "") -> DeadLetter:
        why = reason or None
        return DeadLetter.of(error, topic=source, payload=body, org=org, gateway=GATEWAY, reason=why)

    def _write(self, admitted: list[Admitted], dead: list[DeadLetter], sites: list[str]) -> None:
        try:
            self.direct.write(admitted, deadletters=dead, extra_lines=sites)
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
    fields: dict[str, float | str] = {"lat": m.place.lat, "lon": m.place.lon, "name": m.name or m.sensor}
    return line(SITE_MEASUREMENT, {"org": org, "sensor": m.sensor, "kind": kind.value}, fields, at)


# -- HTTP ----------------------------------------------------------------------------------------

router = APIRouter(tags=["exchange"])
_bearer = HTTPBearer(auto_error=False, description="The partner organisation's API token")


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
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Response:
    try:
        org = receiver.organisation(credentials.credentials if credentials else None)
        body = await request.body()
        answer = await run_in_threadpool(receiver.receive, org, body)
    except NotificationRefusedError as exc:
        return exc.response()
    return Response(answer.to_json(), media_type="application/json")


__all__ = ["GATEWAY", "NOTIFY_PATH", "NotificationAnswer", "NotificationReceiver", "router"]
