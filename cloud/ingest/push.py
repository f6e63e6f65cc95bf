"""The push API: organisations post batches of readings over HTTPS, another way in to ingest.

A utility's platform posts, with its organisation token (`Authorization: Bearer srt_...`) and a
batch id of its own (`Idempotency-Key`):

- `POST /push/v1/readings`: the wire contract's JSON batch (docs/contract/asyncapi.yaml);
- `POST /push/v1/positions`: vehicle positions as a GeoJSON FeatureCollection (`positions.py`).

Both land in ingest's own verdict and storage (`direct.py`): the answer, given only once
InfluxDB accepted the batch, carries one verdict per reading — accepted, or refused with the
path to the field and the reason — and every refused reading is dead-lettered as on MQTT. A batch
id already stored is answered again from the ledger (`cloud/io/ledger.py`), never stored twice.
The token is checked against the organisation registry (`cloud.io.http.CallerDep`). Each
organisation writes only its own batches and sensors, at most its rate in readings per second
(`ratelimit.py`: 429 with Retry-After). docs/push-api.md is the integrators' guide.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from cloud.core.directory import FLEET_GATEWAY
from cloud.core.intake import Refusal, StorageUnavailableError, wire_bytes
from cloud.ingest.deadletter import DeadLetter
from cloud.ingest.direct import Admitted, DirectIngest, ForeignOrgError
from cloud.ingest.positions import feature_path, to_batch
from cloud.ingest.ratelimit import RateLimiter
from cloud.io.http import CallerDep
from cloud.io.ledger import BatchLedger, digest
from edge.contract import ID_PATTERN, Batch, ContractError, PayloadTooLargeError, loads, short_repr

PREFIX = "/push/v1"
BATCH_ID_PATTERN = r"^[A-Za-z0-9._:~-]{1,128}$"
# A utility's platform feeds its fleet as the `fleet` pseudo-gateway of its organisation, as it
# does over MQTT (sr/v1/{org}/fleet/..., cloud/core/directory.py).


@dataclass(frozen=True, slots=True)
class PushOptions:
    max_body_bytes: int = 2 * 1024 * 1024
    rate_readings_per_s: float = 50_000.0
    burst_readings: float = 100_000.0


class PushRefusedError(Exception):
    """The request as a whole is refused: `status`, a detail, and the fields to fix."""

    def __init__(
        self,
        status: int,
        detail: str,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status = status
        self.detail = detail
        self.errors = errors or []
        self.headers = headers or {}
        super().__init__(f"{status}: {detail}")

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {"detail": self.detail}
        if self.errors:
            body["errors"] = self.errors
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def _field_error(error: ContractError) -> dict[str, Any]:
    value = None if error.value is None else short_repr(error.value)
    return {"field": error.field, "message": error.message, "value": value}


@dataclass(frozen=True, slots=True)
class PushAnswer:
    """One verdict per reading: the refused ones carry where and why; all the others were stored."""

    org: str
    batch_id: str
    readings: int
    refusals: list[Refusal]
    is_replay: bool = False

    def to_json(self) -> bytes:
        refused = {r.index: r for r in self.refusals}
        verdicts: list[dict[str, Any]] = []
        for i in range(self.readings):
            r = refused.get(i)
            if r is None:
                verdicts.append({"index": i, "status": "accepted"})
            else:
                verdicts.append(
                    {
                        "index": i,
                        "status": "refused",
                        "sensor": r.sensor,
                        "field": r.field,
                        "reason": r.reason,
                        "message": r.message,
                        "value": r.value,
                    }
                )
        return orjson.dumps(
            {
                "org": self.org,
                "batch_id": self.batch_id,
                "readings": self.readings,
                "accepted": self.readings - len(refused),
                "refused": len(refused),
                "replayed": self.is_replay,
                "verdicts": verdicts,
            }
        )


class PushService:
    """The push API without HTTP: limit, deduplicate, admit, store, answer (for an organisation
    the router authenticated)."""

    def __init__(self, direct: DirectIngest, ledger: BatchLedger, options: PushOptions | None = None) -> None:
        self.direct = direct
        self.ledger = ledger
        self.options = options or PushOptions()
        self.limiter = RateLimiter(self.options.rate_readings_per_s, self.options.burst_readings)
        self._seq_lock = threading.Lock()
        self._seq = 0

    def readings(self, org: str, batch_id: str, body: bytes) -> PushAnswer:
        """A wire-contract JSON batch."""
        return self._handle(org, batch_id, body, "readings", self._admit_batch)

    def positions(self, org: str, batch_id: str, body: bytes, gateway: str = FLEET_GATEWAY) -> PushAnswer:
        """A GeoJSON FeatureCollection of vehicle positions, as fleet readings of `gateway`."""
        return self._handle(
            org, batch_id, body, "positions", lambda o, src, b: self._admit_positions(o, src, b, gateway)
        )

    # -- the one path both take ---------------------------------------------------------------

    def _handle(
        self,
        org: str,
        batch_id: str,
        body: bytes,
        what: str,
        admit: Callable[[str, str, bytes], tuple[int, list[Admitted], list[Refusal], list[DeadLetter]]],
    ) -> PushAnswer:
        wait_s = self.limiter.retry_after_s(org)
        if wait_s:
            raise PushRefusedError(
                429,
                f"organisation {org!r} is over its rate of {self.options.rate_readings_per_s:g} readings/s",
                headers={"Retry-After": str(wait_s)},
            )
        source = f"push/v1/{what}/{org}/{batch_id}"
        body_sha = digest(body)
        with self.ledger.lock(org, batch_id):
            seen = self.ledger.get(org, batch_id)
            if seen is not None:
                return self._replay(org, batch_id, body_sha, seen.body_sha256, seen.readings, seen.refusals)
            try:
                readings, admitted, refusals, dead = admit(org, source, body)
            except ContractError as exc:
                return self._refuse_whole(org, batch_id, body, body_sha, source, exc)
            self._store(admitted, dead)
            for a in admitted:
                refusals += a.refusals
            refusals.sort(key=lambda r: -1 if r.index is None else r.index)
            self.ledger.record(org, batch_id, body_sha, readings, refusals)
        self.limiter.charge(org, readings)
        return PushAnswer(org, batch_id, readings, refusals)

    def _store(self, admitted: list[Admitted], dead: list[DeadLetter]) -> None:
        try:
            self.direct.write(admitted, deadletters=dead)
        except StorageUnavailableError as exc:
            raise PushRefusedError(
                503,
                f"{exc}; nothing was stored: send the same batch again later",
                headers={"Retry-After": str(exc.retry_after_s)},
            ) from None

    def _replay(
        self, org: str, batch_id: str, body_sha: str, seen_sha: str, readings: int, refusals: list[Refusal]
    ) -> PushAnswer:
        if seen_sha != body_sha:
            # draft-ietf-httpapi-idempotency-key-header §2.7: a key reused with another payload.
            raise PushRefusedError(
                422,
                f"batch id {batch_id!r} was already used for a different batch",
                [{"field": "Idempotency-Key", "message": "already used for another body", "value": batch_id}],
            )
        whole = [r for r in refusals if r.index is None]
        if whole:
            raise self._whole_error(whole[0])
        return PushAnswer(org, batch_id, readings, refusals, is_replay=True)

    def _refuse_whole(
        self, org: str, batch_id: str, body: bytes, body_sha: str, source: str, exc: ContractError
    ) -> PushAnswer:
        dead = self.direct.refuse_whole(exc, source=source, payload=body, org=org)
        self._store([], [dead])
        refusal = Refusal.of(exc, None)
        if not isinstance(exc, ForeignOrgError):
            # The same bad batch sent again is answered again, not dead-lettered twice.
            self.ledger.record(org, batch_id, body_sha, 0, [refusal])
        raise self._whole_error(refusal)

    @staticmethod
    def _whole_error(refusal: Refusal) -> PushRefusedError:
        status = {"forbidden": 403, "too_large": 413}.get(refusal.reason, 422)
        return PushRefusedError(status, f"{refusal.field}: {refusal.message}", [refusal.problem()])

    # -- the two formats ----------------------------------------------------------------------

    def _admit_batch(
        self, org: str, source: str, body: bytes
    ) -> tuple[int, list[Admitted], list[Refusal], list[DeadLetter]]:
        admitted = self.direct.admit(body, source=source, org=org)
        return admitted.readings, [admitted], [], []

    def _admit_positions(
        self, org: str, source: str, body: bytes, gateway: str
    ) -> tuple[int, list[Admitted], list[Refusal], list[DeadLetter]]:
        if len(body) > self.options.max_body_bytes:
            raise PayloadTooLargeError(
                f"{len(body)} bytes exceeds the limit of {self.options.max_body_bytes}",
                field="payload",
                value=len(body),
            )
        raw = loads(body)
        positions = to_batch(raw, org=org, gateway=gateway, seq=self._next_seq(), sent_at=datetime.now(UTC))
        refusals = [Refusal.of(err, i) for i, err in positions.refusals]
        dead = [
            DeadLetter.of(err, topic=source, payload=body, org=org, gateway=gateway)
            for _, err in positions.refusals
        ]
        admitted = []
        if positions.batch is not None:
            feature_of = positions.feature_of
            admitted.append(
                self.direct.admit(
                    wire_bytes(positions.batch),
                    source=source,
                    org=org,
                    renumber=lambda i, path: (feature_of[i], feature_path(path, feature_of)),
                    sent=body,
                )
            )
        return positions.features, admitted, refusals, dead

    def _next_seq(self) -> int:
        # Positions carry no batch sequence number; ingest's gap counting does not apply over HTTP.
        with self._seq_lock:
            self._seq += 1
            return self._seq


# -- HTTP ----------------------------------------------------------------------------------------

router = APIRouter(prefix=PREFIX, tags=["push"])


def get_service(request: Request) -> PushService:
    service: PushService = request.app.state.push
    return service


ServiceDep = Annotated[PushService, Depends(get_service)]
BatchId = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        pattern=BATCH_ID_PATTERN,
        description="Your id for this batch (1-128 of `A-Za-z0-9._:~-`): a batch sent again with "
        "the same id is answered again and stored once.",
    ),
]


class Verdict(BaseModel):
    index: int
    status: str  # accepted | refused
    sensor: str | None = None
    field: str | None = None
    reason: str | None = None
    message: str | None = None
    value: str | None = None


class PushResponse(BaseModel):
    org: str
    batch_id: str
    readings: int
    accepted: int
    refused: int
    replayed: bool
    verdicts: list[Verdict]


class FieldError(BaseModel):
    field: str
    message: str
    value: Any = None


class ErrorResponse(BaseModel):
    detail: str
    errors: list[FieldError] = []


_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": PushResponse, "description": "Stored: one verdict per reading"},
    401: {"model": ErrorResponse, "description": "Missing or unknown token"},
    403: {"model": ErrorResponse, "description": "The batch is another organisation's"},
    413: {"model": ErrorResponse, "description": "The body is over the size limit"},
    422: {"model": ErrorResponse, "description": "The batch as a whole is unusable (path and reason)"},
    429: {"model": ErrorResponse, "description": "Over the organisation's rate; see Retry-After"},
    503: {"model": ErrorResponse, "description": "Storage unavailable, nothing stored; see Retry-After"},
}
_GEOJSON_EXAMPLE = {
    "type": "FeatureCollection",
    "features": [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [11.1003, 43.8825]},
            "properties": {
                "vehicle": "v-alia-01",
                "ts": "2026-11-24T08:00:00.000Z",
                "speed_kmh": 14.5,
                "heading_deg": 270.0,
                "route": "raccolta-centro",
            },
        }
    ],
}


def _body(schema: dict[str, Any], media: str, example: Any = None) -> dict[str, Any]:
    content: dict[str, Any] = {"schema": schema}
    if example is not None:
        content["example"] = example
    return {"requestBody": {"required": True, "content": {media: content}}}


async def _answer(request: Request, call: Callable[[bytes], PushAnswer]) -> Response:
    try:
        body = await request.body()
        answer = await run_in_threadpool(call, body)
    except PushRefusedError as exc:
        return exc.response()
    return Response(answer.to_json(), media_type="application/json")


@router.post(
    "/readings",
    summary="Post a batch of readings (the wire contract's JSON batch)",
    responses=_RESPONSES,
    openapi_extra=_body(Batch.model_json_schema(), "application/json"),
)
async def post_readings(
    request: Request, service: ServiceDep, batch_id: BatchId, caller: CallerDep
) -> Response:
    return await _answer(request, lambda body: service.readings(caller.org, batch_id, body))


@router.post(
    "/positions",
    summary="Post vehicle positions (a GeoJSON FeatureCollection of Points)",
    responses=_RESPONSES,
    openapi_extra=_body({"type": "object"}, "application/geo+json", _GEOJSON_EXAMPLE),
)
async def post_positions(
    request: Request,
    service: ServiceDep,
    batch_id: BatchId,
    caller: CallerDep,
    gateway: Annotated[
        str, Query(pattern=ID_PATTERN, description="The pseudo-gateway the positions are stored under")
    ] = FLEET_GATEWAY,
) -> Response:
    return await _answer(request, lambda body: service.positions(caller.org, batch_id, body, gateway))


__all__ = [
    "FLEET_GATEWAY",
    "PREFIX",
    "PushAnswer",
    "PushOptions",
    "PushRefusedError",
    "PushService",
    "router",
]
