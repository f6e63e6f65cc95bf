"""The console's HTTP routes: pages, log-in, snapshot, SSE events, threads, uploads, actions.

Authentication is a signed, HttpOnly, SameSite=Strict session cookie. Every state-changing
request must also carry the header `X-Sitroom-Console: 1`: a cross-site form cannot set a custom
header, so this closes CSRF even for browsers that ignore SameSite. Pages are served with a
Content-Security-Policy that allows only our own scripts: if markup ever slipped through
escaping, the browser would still not run it.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Query, Request, Response, status
from fastapi.responses import FileResponse, RedirectResponse, StreamingResponse
from fastapi.security import APIKeyCookie
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from cloud.console.app import LEAFLET_DIR, STATIC_DIR, Console
from cloud.console.auth import LoginThrottledError, Operator, SessionSigner
from cloud.console.broadcast import encode
from cloud.console.live import alert_view
from cloud.console.store import THREAD, ThreadKeyError, UnknownFileError
from cloud.console.uploads import UploadRefusedError
from cloud.core.alerts import MAX_ALERT_ID, AlertNotFoundError
from cloud.core.errors import FieldProblem, InvalidInputError, NotFoundError, PermissionDeniedError, printable
from cloud.core.lifecycle import InvalidTransitionError
from cloud.core.orgs import Caller, Role
from cloud.core.worksites import WorksiteStatus
from cloud.io.http import refusals

COOKIE = "sitroom_console"
CSRF_HEADER = "x-sitroom-console"
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
FILE_CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox"

log = logging.getLogger(__name__)
router = APIRouter(tags=["console"], include_in_schema=True)


def get_console(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


ConsoleDep = Annotated[Console, Depends(get_console)]


def _signer(console: Console) -> SessionSigner:
    return SessionSigner(console.secret)


# Declared so that the OpenAPI document says these routes need the session cookie (401 without).
_session_cookie = APIKeyCookie(
    name=COOKIE, auto_error=False, description="The session cookie `POST /console/api/login` sets"
)


def current_operator(
    request: Request, console: ConsoleDep, cookie: Annotated[str | None, Depends(_session_cookie)]
) -> Operator:
    token = cookie or ""
    username = _signer(console).check(token) if token else None
    op = console.store.operator(username) if username else None
    if op is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "log in first")
    if request.method not in ("GET", "HEAD") and request.headers.get(CSRF_HEADER) != "1":
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"missing header {CSRF_HEADER}: 1")
    return op


OperatorDep = Annotated[Operator, Depends(current_operator)]
AlertId = Annotated[int, Path(ge=1, le=MAX_ALERT_ID, description="Alert id")]


def _refuse(
    console: Console, op: Operator, action: str, target: str, reason: str, code: int = 403
) -> HTTPException:
    console.store.audit(op, action, target, "refused", reason=reason)
    return HTTPException(code, reason)


# --- pages -------------------------------------------------------------------------------------


@router.get("/console", include_in_schema=False)
def console_redirect() -> RedirectResponse:
    return RedirectResponse("/console/", status.HTTP_308_PERMANENT_REDIRECT)


@router.get("/console/", include_in_schema=False)
def console_page() -> FileResponse:
    return FileResponse(
        STATIC_DIR / "index.html",
        headers={
            "Content-Security-Policy": PAGE_CSP,
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )


# --- session -----------------------------------------------------------------------------------


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=200)


@router.post("/console/api/login", responses=refusals(401, 429))
def login(body: LoginIn, console: ConsoleDep, request: Request, response: Response) -> dict[str, Any]:
    # The client's address as the server sees it; uvicorn takes it from X-Forwarded-For only
    # when the connection comes from a trusted proxy (--forwarded-allow-ips, 127.0.0.1 by default).
    client = request.client.host if request.client else "unknown"
    try:
        # Counted now, before the ~50 ms password check: parallel guesses each find the others.
        attempt = console.throttle.attempt(body.username, client)
    except LoginThrottledError as exc:
        console.store.audit(body.username, "login", "session", "refused", reason=f"throttled ({exc.key})")
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"too many failed log-ins; try again in {math.ceil(exc.retry_after_s)} s",
            headers={"Retry-After": str(math.ceil(exc.retry_after_s))},
        ) from None
    op = console.store.authenticate(body.username, body.password)
    if op is None:
        console.store.audit(body.username, "login", "session", "refused")
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong username or password")
    console.throttle.succeeded(attempt)
    response.set_cookie(
        COOKIE,
        _signer(console).sign(op.username),
        httponly=True,
        samesite="strict",
        secure=console.cookie_secure,
        max_age=_signer(console).max_age_s,
        path="/console",
    )
    console.store.audit(op, "login", "session")
    return op.to_dict()


@router.post("/console/api/logout", responses=refusals(403))
def logout(op: OperatorDep, console: ConsoleDep, response: Response) -> dict[str, str]:
    console.store.audit(op, "logout", "session")
    response.delete_cookie(COOKIE, path="/console")
    return {"detail": "logged out"}


@router.get("/console/api/me")
def me(op: OperatorDep) -> dict[str, str]:
    return op.to_dict()


# --- the live picture --------------------------------------------------------------------------


@router.get("/console/api/snapshot")
def snapshot(op: OperatorDep, console: ConsoleDep) -> dict[str, Any]:
    """Everything a console draws at start; SSE events keep it current afterwards."""
    feed = console.feed
    sensors = console.sources.visible_to(op.org, feed.snapshot_sensors if feed else console.sources.sensors())
    return {
        "me": op.to_dict(),
        "orgs": sorted(console.known_orgs()),
        "areas": console.map_areas(op.org),
        "worksites": console.sources.worksite_features(),
        "alerts": console.sources.active_alerts(),
        "sensors": sensors,
    }


@router.get("/console/api/events")
async def events(op: OperatorDep, console: ConsoleDep) -> StreamingResponse:
    sub = console.broadcaster.subscribe(op.org, op.username)
    hello = encode("hello", {"connected": console.broadcaster.connected})
    return StreamingResponse(
        console.broadcaster.stream(sub, hello),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


# --- threads -----------------------------------------------------------------------------------


class PostIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(default="", max_length=4000)
    files: list[str] = Field(default_factory=list, max_length=10)


def _thread_owner(console: Console, thread: str) -> str | None:
    """The organisation a thread belongs to; None for the city-wide channel."""
    kind, _, key = thread.partition(":")
    try:
        if kind == "alert" and console.sources.alerts is not None:
            return console.sources.alerts.get(int(key)).org
        if kind == "worksite" and console.sources.worksites is not None:
            return console.sources.worksites.get(key).owner
    except (AlertNotFoundError, NotFoundError):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no {kind} {key!r}") from None
    return None


def _check_thread(thread: str) -> str:
    if not THREAD.match(thread):
        raise InvalidInputError([FieldProblem("thread", str(ThreadKeyError(thread)), printable(thread))])
    return thread


def may_post(console: Console, op: Operator, thread: str) -> bool:
    """Read-only never; the municipality anywhere; others in the city channel, their own
    threads, and threads they take part in (they posted there or were mentioned)."""
    if not op.can_post:
        return False
    owner = _thread_owner(console, thread)
    if op.is_municipality or owner is None or owner == op.org:
        return True
    return op.org in console.store.participants(thread) or any(
        op.org in p.mentions for p in console.store.posts(thread)
    )


@router.get("/console/api/threads/{thread}/posts", responses=refusals(404, 422))
def thread_posts(thread: str, op: OperatorDep, console: ConsoleDep) -> dict[str, Any]:
    _check_thread(thread)
    owner = _thread_owner(console, thread)
    return {
        "thread": thread,
        "owner": owner,
        "may_post": may_post(console, op, thread),
        "posts": [p.to_dict() for p in console.store.posts(thread)],
    }


@router.post(
    "/console/api/threads/{thread}/posts",
    status_code=status.HTTP_201_CREATED,
    responses=refusals(403, 404, 422),
)
def add_post(thread: str, body: PostIn, op: OperatorDep, console: ConsoleDep) -> dict[str, Any]:
    _check_thread(thread)
    if not body.text.strip() and not body.files:
        raise InvalidInputError([FieldProblem("text", "a post needs text or a file", body.text)])
    if not may_post(console, op, thread):
        raise _refuse(console, op, "post", thread, f"{op.org} ({op.role.value}) may not post in {thread}")
    try:
        post = console.store.add_post(
            op, thread, body.text, mentions=console.mentions(body.text), file_ids=body.files
        )
    except UnknownFileError as exc:
        raise InvalidInputError([FieldProblem("files", str(exc), exc.file_id)]) from None
    console.announce(post)
    return post.to_dict()


@router.post(
    "/console/api/uploads",
    status_code=status.HTTP_201_CREATED,
    responses=refusals(403, 413, 415, 422),
    # The file is the raw body, read as it streams (not a parameter FastAPI would parse).
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def upload(
    request: Request, op: OperatorDep, console: ConsoleDep, name: Annotated[str, Query(max_length=300)]
) -> dict[str, Any]:
    """The file is the raw request body; `name` is its label. Attach it with a post's `files`."""
    if not op.can_post:
        raise _refuse(console, op, "upload", name, "read-only operators do not upload")
    limit = console.uploads.max_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _refuse(
            console, op, "upload", name, f"file is {int(declared):,} bytes; the limit is {limit:,}", 413
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _refuse(console, op, "upload", name, f"file is over the limit of {limit:,} bytes", 413)
        chunks.append(chunk)
    try:
        # Thumbnailing decodes the image: keep it off the event loop.
        stored = await asyncio.to_thread(console.uploads.save, name, b"".join(chunks))
    except UploadRefusedError as exc:
        refused = _refuse(console, op, "upload", name[:200], exc.reason, exc.status)
        if exc.status == 422:  # the name: a field problem
            raise InvalidInputError([FieldProblem("name", exc.reason, printable(name))]) from None
        raise refused from None
    return console.store.add_file(op, stored)


def _file_response(console: Console, op: Operator, file_id: str, thumb: bool) -> FileResponse:
    del op  # any logged-in operator sees the shared picture, attachments included
    f = console.store.file(file_id)
    path = f and (f["thumb_path"] if thumb else f["path"])
    if not f or not path:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no file {file_id!r}")
    mime = "image/jpeg" if thumb else f["mime"]
    disposition = "inline" if mime.startswith("image/") else "attachment"
    return FileResponse(
        path,
        media_type=mime,
        filename=f["name"],
        content_disposition_type=disposition,
        headers={"X-Content-Type-Options": "nosniff", "Content-Security-Policy": FILE_CSP},
    )


@router.get("/console/api/files/{file_id}", responses=refusals(404))
def get_file(file_id: str, op: OperatorDep, console: ConsoleDep) -> FileResponse:
    return _file_response(console, op, file_id, thumb=False)


@router.get("/console/api/files/{file_id}/thumb", responses=refusals(404))
def get_thumb(file_id: str, op: OperatorDep, console: ConsoleDep) -> FileResponse:
    return _file_response(console, op, file_id, thumb=True)


# --- actions on alerts and worksites -----------------------------------------------------------


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field(default="", max_length=2000)


class AssignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    org: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,63}$")
    note: str = Field(default="", max_length=2000)


def _alert_for_action(console: Console, op: Operator, alert_id: int, action: str) -> Any:
    if console.sources.alerts is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no alert store")
    try:
        alert = console.sources.alerts.get(alert_id)
    except AlertNotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    if not op.can_act_for(alert.org):
        raise _refuse(
            console, op, action, f"alert:{alert_id}", f"{op.org} may not {action} {alert.org}'s alert"
        )
    return alert


@router.post("/console/api/alerts/{alert_id}/assign", responses=refusals(403, 404))
def assign_alert(alert_id: AlertId, body: AssignIn, op: OperatorDep, console: ConsoleDep) -> dict[str, Any]:
    alert = _alert_for_action(console, op, alert_id, "assign")
    if body.org not in console.known_orgs():
        raise InvalidInputError([FieldProblem("org", "not a registered organisation", body.org)])
    post = console.store.add_post(op, f"alert:{alert_id}", body.note, kind="assign", mentions=[body.org])
    console.announce(post)
    return alert_view(alert) | {"assigned_to": body.org}


# After /assign: FastAPI matches routes in order, and {verb} would take "assign" too.
@router.post("/console/api/alerts/{alert_id}/{verb}", responses=refusals(403, 404, 409))
def alert_action(
    alert_id: AlertId,
    verb: Literal["ack", "resolve"],
    op: OperatorDep,
    console: ConsoleDep,
    body: NoteIn | None = None,
) -> dict[str, Any]:
    _alert_for_action(console, op, alert_id, verb)
    store = console.sources.alerts
    assert store is not None
    note = body.note if body else ""
    try:
        move = store.acknowledge if verb == "ack" else store.resolve
        moved = move(alert_id, by=f"{op.org}/{op.username}", note=note)
    except InvalidTransitionError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    post = console.store.add_post(op, f"alert:{alert_id}", note, kind=verb)
    console.broadcaster.publish("alert", alert_view(moved.alert))
    console.announce(post)
    return alert_view(moved.alert)


class WorksiteEditIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: WorksiteStatus


@router.patch("/console/api/worksites/{worksite_id}", responses=refusals(403, 404))
def edit_worksite(
    worksite_id: str, body: WorksiteEditIn, op: OperatorDep, console: ConsoleDep
) -> dict[str, Any]:
    store = console.sources.worksites
    if store is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no worksite store")
    target = f"worksite:{worksite_id}"
    try:
        owner = store.get(worksite_id).owner
    except NotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    if not op.can_act_for(owner):
        raise _refuse(console, op, "edit", target, f"{op.org} may not edit {owner}'s worksite")
    caller = Caller(op.org, Role.MUNICIPALITY if op.is_municipality else Role.UTILITY)
    try:
        ws = store.update(caller, worksite_id, {"status": body.status.value})
    except PermissionDeniedError as exc:
        raise _refuse(console, op, "edit", target, str(exc)) from None
    post = console.store.add_post(op, target, f"status → {body.status.value}", kind="status")
    console.announce(post)
    if console.feed is not None:
        console.feed.worksites_changed()
    return {"id": ws.id, "status": ws.status.value, "version": ws.version, "owner": ws.owner}


@router.get("/console/api/audit")
def audit(
    op: OperatorDep, console: ConsoleDep, limit: Annotated[int, Query(ge=1, le=1000)] = 200
) -> list[dict[str, Any]]:
    """The audit history: all of it for the municipality, one's own organisation's otherwise."""
    return console.store.audit_log(limit, org=None if op.is_municipality else op.org)


def mount_console(app: FastAPI, console: Console) -> None:
    app.state.console = console
    app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=STATIC_DIR), name="console-static")
    if LEAFLET_DIR.is_dir():
        app.mount("/console/vendor/leaflet", StaticFiles(directory=LEAFLET_DIR), name="console-leaflet")
    else:
        log.warning("console: %s missing; run `make setup` (npm ci) for the map", LEAFLET_DIR)
