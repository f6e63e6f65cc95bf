"""HTTP API for alerts: list, read, acknowledge, resolve; silences and maintenance windows.

Mount with `app.state.alert_store = AlertStore(url)` and `app.include_router(router)`. Callers
authenticate as for worksites (an organisation's bearer token): an organisation sees and
handles its own alerts; the municipality (operator role) sees and handles every alert.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from cloud.core.alerts import MAX_ALERT_ID, AlertNotFoundError, StoredAlert
from cloud.core.errors import FieldProblem, InvalidInputError
from cloud.core.lifecycle import InvalidTransitionError
from cloud.core.orgs import Caller
from cloud.io.http import CallerDep, refusals
from cloud.rules.store import AlertStore

router = APIRouter(prefix="/alerts", tags=["alerts"])
AlertId = Annotated[int, Path(ge=1, le=MAX_ALERT_ID, description="Alert id")]


def get_alert_store(request: Request) -> AlertStore:
    store: AlertStore = request.app.state.alert_store
    return store


AlertStoreDep = Annotated[AlertStore, Depends(get_alert_store)]


class Note(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field(default="", max_length=2000)


class SilenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    reason: str = Field(min_length=1, max_length=2000)
    kind: Literal["silence", "maintenance"] = "silence"
    rule: str | None = None
    entity: str | None = None
    gateway: str | None = None


def _visible(caller: Caller, alert: StoredAlert) -> bool:
    return caller.is_operator or alert.org == caller.org


def _owned(store: AlertStore, caller: Caller, alert_id: int) -> StoredAlert:
    try:
        alert = store.get(alert_id)
    except AlertNotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    if not _visible(caller, alert):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alert with id {alert_id}")
    return alert


@router.get("")
def list_alerts(
    store: AlertStoreDep,
    caller: CallerDep,
    state: Annotated[
        Literal["active", "all"], Query(description="Active alerts, or the history too")
    ] = "active",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    org = None if caller.is_operator else caller.org
    found = store.active(org) if state == "active" else store.history(org, limit)
    return [a.to_dict() for a in found[:limit]]


@router.get("/{alert_id}", responses=refusals(404))
def read_alert(alert_id: AlertId, store: AlertStoreDep, caller: CallerDep) -> dict[str, Any]:
    alert = _owned(store, caller, alert_id)
    return alert.to_dict() | {
        "events": [{"event": e, "actor": a, "note": n} for e, a, n in store.events(alert_id)]
    }


def _move(
    store: AlertStore, caller: Caller, alert_id: int, verb: Literal["ack", "resolve"], note: str
) -> dict[str, Any]:
    _owned(store, caller, alert_id)
    try:
        move = store.acknowledge if verb == "ack" else store.resolve
        t = move(alert_id, by=caller.org, note=note)
    except InvalidTransitionError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return t.alert.to_dict() | {"outcome": t.outcome}


@router.post("/{alert_id}/ack", responses=refusals(404, 409))
def acknowledge_alert(
    alert_id: AlertId, store: AlertStoreDep, caller: CallerDep, body: Note | None = None
) -> dict[str, Any]:
    return _move(store, caller, alert_id, "ack", body.note if body else "")


@router.post("/{alert_id}/resolve", responses=refusals(404, 409))
def resolve_alert(
    alert_id: AlertId, store: AlertStoreDep, caller: CallerDep, body: Note | None = None
) -> dict[str, Any]:
    return _move(store, caller, alert_id, "resolve", body.note if body else "")


@router.post("/silences", status_code=status.HTTP_201_CREATED)
def add_silence(body: SilenceIn, store: AlertStoreDep, caller: CallerDep) -> dict[str, Any]:
    try:
        s = store.add_silence(
            starts_at=body.starts_at,
            ends_at=body.ends_at,
            reason=body.reason,
            created_by=caller.org,
            kind=body.kind,
            org=None if caller.is_operator else caller.org,
            rule=body.rule,
            entity=body.entity,
            gateway=body.gateway,
        )
    except ValueError as exc:
        raise InvalidInputError([FieldProblem("ends_at", str(exc), body.ends_at.isoformat())]) from None
    out: dict[str, Any] = {}
    for name in s.__slots__:
        value = getattr(s, name)
        out[name] = value.isoformat() if isinstance(value, datetime) else value
    return out
