"""HTTP plumbing every API router shares: the caller's organisation from its bearer token, a
request-body limit enforced before anything is parsed, and the refusals as the OpenAPI document
describes them (what a client gets back is what the document says: issue 18 point 13)."""

from __future__ import annotations

import copy
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cloud.core.orgs import Caller, OrgDirectory

_bearer = HTTPBearer(
    auto_error=False, description="An organisation's API token: `Authorization: Bearer srt_...`"
)


def get_orgs(request: Request) -> OrgDirectory:
    orgs: OrgDirectory = request.app.state.orgs
    return orgs


OrgsDep = Annotated[OrgDirectory, Depends(get_orgs)]


def get_caller(
    orgs: OrgsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing API token: send `Authorization: Bearer <token>`",
            headers={"WWW-Authenticate": "Bearer"},
        )
    caller = orgs.caller_for_token(credentials.credentials)
    if caller is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "unknown API token", headers={"WWW-Authenticate": "Bearer"}
        )
    return caller


CallerDep = Annotated[Caller, Depends(get_caller)]


class BodyLimit:
    """Refuse request bodies over `limit` bytes with 413 before any of it is parsed.

    `Content-Length` is checked first; a chunked body is counted as it streams, so a client
    that lies about or omits the length is cut off too.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await self._refuse(send)
                return
        received = 0
        refused = False

        async def limited_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    # Answer now and tell the app the client left: it stops reading, and
                    # whatever it would still send is dropped below.
                    refused = True
                    await self._refuse(send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not refused:
                await send(message)

        await self.app(scope, limited_receive, guarded_send)

    async def _refuse(self, send: Send) -> None:
        body = f'{{"detail":"request body over {self.limit} bytes"}}'.encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


# --- refusals, documented ---------------------------------------------------------------------


class Refusal(BaseModel):
    """Every refusal but a validation one: what went wrong, in words."""

    detail: str


class FieldProblemOut(BaseModel):
    field: str
    message: str
    value: str | int | float | bool | None = None


class ValidationRefusal(BaseModel):
    """A request refused by validation (422): each problem with its field and offending value."""

    detail: str
    errors: list[FieldProblemOut]


_WHY = {
    400: "The body cannot be read: not JSON text (UTF-8, -16 or -32)",
    401: "No credentials, or unknown ones",
    403: "The caller may not do this (another organisation's; a role that may not; a missing header)",
    404: "No such resource, or none the caller may see",
    409: "Contradicts the stored state: a duplicate id, a stale version, a move its state forbids",
    413: "The request body is over the limit",
    415: "A file of a type the API does not take",
    422: "Invalid: every problem names its field and the value",
    429: "Too many attempts: wait as `Retry-After` says",
}


def refusals(*codes: int) -> dict[int | str, dict[str, Any]]:
    """FastAPI `responses=` for the refusals a route makes besides the ones every route of its
    kind makes (those `document_refusals` adds)."""
    return {
        code: {"model": ValidationRefusal if code == 422 else Refusal, "description": _WHY[code]}
        for code in codes
    }


def _response(code: int) -> dict[str, Any]:
    name = "ValidationRefusal" if code == 422 else "Refusal"
    return {
        "description": _WHY[code],
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}},
    }


def document_refusals(document: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document as the app answers: FastAPI's own 422 shape replaced by ours
    (`{"detail", "errors": [{"field", "message", "value"}]}`), 401 on every operation that needs
    credentials, 413 on every operation that takes a body (`BodyLimit`), 400 on every one that
    takes JSON."""
    out = copy.deepcopy(document)
    schemas = out.setdefault("components", {}).setdefault("schemas", {})
    _, defs = models_json_schema(
        [(Refusal, "serialization"), (ValidationRefusal, "serialization")],
        ref_template="#/components/schemas/{model}",
    )
    schemas.update(defs["$defs"])
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    for item in out.get("paths", {}).values():
        for operation in item.values():
            responses = operation.setdefault("responses", {})
            if "422" in responses:
                responses["422"] = _response(422)
            if operation.get("security"):
                responses.setdefault("401", _response(401))
            if "requestBody" in operation:
                responses.setdefault("413", _response(413))
                if "application/json" in operation["requestBody"].get("content", {}):
                    # FastAPI's own answer to bytes that are no Unicode text at all.
                    responses.setdefault("400", _response(400))
    return out
