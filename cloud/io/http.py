"""HTTP plumbing every API router shares: the caller's organisation from its bearer token, and a
request-body limit enforced before anything is parsed."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
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
