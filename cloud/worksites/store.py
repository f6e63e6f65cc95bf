"""The worksite registry on SQLAlchemy Core: SQLite or PostgreSQL, the same statements.

Every write runs in one transaction together with its history row, so a refused or failed
change leaves nothing behind. Geometry is stored as GeoJSON text with its bounding box in four
indexed columns: the bbox filter runs in SQL, the exact intersection test in shapely.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.engine import Connection, Engine

from cloud.core.errors import (
    ConflictError,
    DomainError,
    FieldProblem,
    NotFoundError,
    PermissionDeniedError,
    problems_from,
)
from cloud.core.geo import BBox, GeometryError, ServiceAreas, parse_geojson
from cloud.core.metres import LocalProjection
from cloud.core.orgs import Caller, Organisation
from cloud.core.worksites import Approval
from cloud.io import orgstore
from cloud.io.db import Migration, UTCDateTime, make_engine, migrate
from cloud.io.orgstore import OrgStore
from cloud.worksites.geojson import feature_collection
from cloud.worksites.models import (
    HistoryEntry,
    InvalidWorksiteError,
    Status,
    Worksite,
    WorksiteCreate,
    WorksiteFields,
    WorksiteImport,
)

COMPONENT = "worksites"


# The organisation registry's tables are referenced by owner: one MetaData holds both.
metadata = orgstore.metadata
organisations = orgstore.organisations
api_tokens = orgstore.api_tokens

worksites = sa.Table(
    "ws_worksites",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("owner", sa.String(64), sa.ForeignKey("ws_organisations.id"), nullable=False, index=True),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("street", sa.String(200), nullable=False),
    sa.Column("work_type", sa.String(32), nullable=False),
    sa.Column("permit_ref", sa.String(100)),
    sa.Column("status", sa.String(20), nullable=False, index=True),
    sa.Column("geometry", sa.Text, nullable=False),
    sa.Column("min_lon", sa.Float, nullable=False),
    sa.Column("min_lat", sa.Float, nullable=False),
    sa.Column("max_lon", sa.Float, nullable=False),
    sa.Column("max_lat", sa.Float, nullable=False),
    sa.Column("planned_start", UTCDateTime, nullable=False),
    sa.Column("planned_end", UTCDateTime, nullable=False),
    sa.Column("actual_start", UTCDateTime),
    sa.Column("actual_end", UTCDateTime),
    sa.Column("impact", sa.Text, nullable=False),
    sa.Column("approval", sa.String(20), nullable=False),
    sa.Column("approved_by", sa.String(64)),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Index("ix_ws_worksites_bbox", "min_lon", "max_lon", "min_lat", "max_lat"),
    sa.Index("ix_ws_worksites_window", "planned_start", "planned_end"),
)

history = sa.Table(
    "ws_history",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("worksite_id", sa.String(64), sa.ForeignKey("ws_worksites.id"), nullable=False, index=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("action", sa.String(20), nullable=False),
    sa.Column("changes", sa.Text, nullable=False),
)


def _create_v1(conn: Connection) -> None:
    metadata.create_all(conn, tables=[organisations, api_tokens, worksites, history])


MIGRATIONS: Sequence[Migration] = (Migration(1, "organisations, tokens, worksites, history", _create_v1),)


# The registry's refusals are the kernel's (cloud.core.errors); the names here are the ones the
# worksite code and its callers have always used.
StoreError = DomainError


@dataclass(frozen=True, slots=True)
class Query:
    """Filters for `list()`. A time window keeps worksites whose [start, end) overlaps it."""

    start: datetime | None = None
    end: datetime | None = None
    statuses: tuple[Status, ...] = ()
    owners: tuple[str, ...] = ()
    bbox: BBox | None = None
    street: str | None = None
    limit: int = 1000
    offset: int = 0


@dataclass(frozen=True, slots=True)
class UnreadableRow:
    """A stored row that does not read as a worksite, and why."""

    id: str
    reason: str


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if hasattr(value, "value"):
        return value.value
    return value


def _row_to_worksite(row: sa.Row[Any]) -> Worksite:
    m = row._mapping
    return Worksite.model_validate(
        {
            "id": m["id"],
            "owner": m["owner"],
            "title": m["title"],
            "description": m["description"],
            "street": m["street"],
            "work_type": m["work_type"],
            "permit_ref": m["permit_ref"],
            "geometry": orjson.loads(m["geometry"]),
            "planned_start": m["planned_start"],
            "planned_end": m["planned_end"],
            "actual_start": m["actual_start"],
            "actual_end": m["actual_end"],
            "status": Status(m["status"]),
            "impact": orjson.loads(m["impact"]),
            "approval": Approval(m["approval"]),
            "approved_by": m["approved_by"],
            "created_at": m["created_at"],
            "updated_at": m["updated_at"],
            "version": m["version"],
        }
    )


class WorksiteStore:
    """The registry. Thread-safe: each call takes its own connection from the pool."""

    def __init__(self, engine: Engine, *, areas: ServiceAreas | None, orgs: OrgStore | None = None) -> None:
        """`areas`: where worksites may lie (None: no check, for readers such as the rules)."""
        self.engine = engine
        self.areas = areas
        # Owners must be registered organisations: the registry in the same database.
        self.orgs = orgs or OrgStore(engine)

    @classmethod
    def open(cls, url: str, *, areas: ServiceAreas | None) -> WorksiteStore:
        store = cls(make_engine(url), areas=areas)
        store.migrate()
        return store

    def migrate(self) -> list[int]:
        self.orgs.migrate()
        return migrate(self.engine, COMPONENT, MIGRATIONS)

    def close(self) -> None:
        self.engine.dispose()

    # organisations: the registry's own (cloud.io.orgstore), read here for owners and exports

    def organisations(self) -> list[Organisation]:
        return self.orgs.organisations()

    def feature_collection(self) -> dict[str, Any]:
        """Every worksite as GeoJSON (the console's map: `cloud.core.worksites.WorksiteBook`)."""
        return feature_collection(self.search())

    # reads ----------------------------------------------------------------------------

    def get(self, worksite_id: str) -> Worksite:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(worksites).where(worksites.c.id == worksite_id)).first()
        if row is None:
            raise NotFoundError("worksite", worksite_id)
        return _row_to_worksite(row)

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(worksites)).scalar_one())

    def search(self, query: Query | None = None) -> list[Worksite]:
        q = query or Query()
        with self.engine.connect() as conn:
            rows = conn.execute(self._select(q)).all()
        found = [_row_to_worksite(r) for r in rows]
        if q.bbox is not None:
            box = q.bbox.polygon()
            found = [w for w in found if parse_geojson(w.geometry).intersects(box)]
        return found[q.offset : q.offset + q.limit]

    def search_readable(self, query: Query | None = None) -> tuple[list[Worksite], list[UnreadableRow]]:
        """As `search()` (bbox aside), but a row that no longer reads as a worksite (edited by
        hand, written by another version) is set apart with the reason instead of failing all."""
        q = query or Query()
        with self.engine.connect() as conn:
            rows = conn.execute(self._select(q)).all()
        good: list[Worksite] = []
        bad: list[UnreadableRow] = []
        for r in rows:
            try:
                good.append(_row_to_worksite(r))
            except (ValidationError, ValueError) as exc:
                reason = (
                    "; ".join(p.message for p in problems_from(exc))
                    if isinstance(exc, ValidationError)
                    else str(exc)
                )
                bad.append(UnreadableRow(str(r._mapping["id"]), reason[:300]))
        return good[q.offset : q.offset + q.limit], bad

    def _select(self, q: Query) -> sa.Select[Any]:
        stmt = sa.select(worksites)
        start_col = sa.func.coalesce(worksites.c.actual_start, worksites.c.planned_start)
        end_col = sa.func.coalesce(worksites.c.actual_end, worksites.c.planned_end)
        if q.start is not None:
            stmt = stmt.where(end_col > q.start)
        if q.end is not None:
            stmt = stmt.where(start_col < q.end)
        if q.statuses:
            stmt = stmt.where(worksites.c.status.in_([s.value for s in q.statuses]))
        if q.owners:
            stmt = stmt.where(worksites.c.owner.in_(q.owners))
        if q.street:
            stmt = stmt.where(sa.func.lower(worksites.c.street) == q.street.lower())
        if q.bbox is not None:
            b = q.bbox
            stmt = stmt.where(
                worksites.c.max_lon >= b.min_lon,
                worksites.c.min_lon <= b.max_lon,
                worksites.c.max_lat >= b.min_lat,
                worksites.c.min_lat <= b.max_lat,
            )
        return stmt.order_by(worksites.c.planned_start, worksites.c.id)

    def history(self, worksite_id: str) -> list[HistoryEntry]:
        self.get(worksite_id)
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(history).where(history.c.worksite_id == worksite_id).order_by(history.c.id)
            ).all()
        return [
            HistoryEntry(
                worksite_id=r.worksite_id,
                version=r.version,
                at=r.at,
                actor=r.actor,
                action=r.action,
                changes=orjson.loads(r.changes),
            )
            for r in rows
        ]

    # writes ---------------------------------------------------------------------------

    def publisher(self) -> str:
        """Who publishes the registry's feeds: the municipality of the first configured area."""
        if self.areas is None:
            return "Situation Room"
        municipality = next(iter(self.areas)).municipality
        try:
            return self.orgs.organisation(municipality).name
        except NotFoundError:
            return municipality

    @property
    def projection(self) -> LocalProjection | None:
        """Metres around the configured areas (conflict detection); None: around the worksites."""
        return self.areas.projection if self.areas is not None else None

    def _check_area(self, geometry: dict[str, Any], owner: str) -> None:
        """Inside a configured area and, when its owner belongs to given areas, inside one of them."""
        if self.areas is None:
            return
        try:
            found = self.areas.check(parse_geojson(geometry))
        except GeometryError as exc:
            raise InvalidWorksiteError([FieldProblem("geometry", exc.reason)]) from None
        try:
            theirs = self.orgs.organisation(owner).areas
        except NotFoundError:
            return  # reported as an unknown owner by the caller's own check
        if theirs and not set(found) & set(theirs):
            raise InvalidWorksiteError(
                [
                    FieldProblem(
                        "geometry",
                        f"lies in {', '.join(found)}, outside the areas of {owner} ({', '.join(theirs)})",
                    )
                ]
            )

    def _values(self, fields: WorksiteFields) -> dict[str, Any]:
        geom = parse_geojson(fields.geometry)
        min_lon, min_lat, max_lon, max_lat = geom.bounds
        return {
            "title": fields.title,
            "description": fields.description,
            "street": fields.street,
            "work_type": fields.work_type.value,
            "permit_ref": fields.permit_ref,
            "status": fields.status.value,
            "geometry": _json(fields.geometry),
            "min_lon": min_lon,
            "min_lat": min_lat,
            "max_lon": max_lon,
            "max_lat": max_lat,
            "planned_start": fields.planned_start,
            "planned_end": fields.planned_end,
            "actual_start": fields.actual_start,
            "actual_end": fields.actual_end,
            "impact": _json(fields.impact.model_dump(mode="json")),
        }

    def _check_owner_exists(self, conn: Connection, owner: str) -> None:
        if conn.execute(sa.select(organisations.c.id).where(organisations.c.id == owner)).first() is None:
            raise InvalidWorksiteError([FieldProblem("owner", "unknown organisation", owner)])

    def create(self, caller: Caller, data: WorksiteCreate, *, now: datetime | None = None) -> Worksite:
        with self.engine.begin() as conn:
            return self._create_in(conn, caller, data, now or datetime.now(UTC), "create")

    def _create_in(
        self, conn: Connection, caller: Caller, data: WorksiteCreate, now: datetime, action: str
    ) -> Worksite:
        owner = data.owner or caller.org
        if owner != caller.org and not caller.is_operator:
            raise PermissionDeniedError(caller.org, f"may not create worksites for {owner!r}")
        self._check_area(data.geometry, owner)
        ws_id = data.id or f"ws-{uuid.uuid4().hex[:16]}"
        values = self._values(data) | {
            "id": ws_id,
            "owner": owner,
            "approval": Approval.PENDING.value,
            "approved_by": None,
            "created_at": now,
            "updated_at": now,
            "version": 1,
        }
        self._check_owner_exists(conn, owner)
        if conn.execute(sa.select(worksites.c.id).where(worksites.c.id == ws_id)).first():
            raise ConflictError(f"worksite {ws_id!r} already exists")
        conn.execute(worksites.insert().values(**values))
        created = self.get_in(conn, ws_id)
        self._record(conn, created, caller.org, action, _changes(None, created), now)
        return created

    def get_in(self, conn: Connection, worksite_id: str) -> Worksite:
        found = self._find_in(conn, worksite_id)
        if found is None:
            raise NotFoundError("worksite", worksite_id)
        return found

    def _find_in(self, conn: Connection, worksite_id: str) -> Worksite | None:
        row = conn.execute(sa.select(worksites).where(worksites.c.id == worksite_id)).first()
        return None if row is None else _row_to_worksite(row)

    def update(
        self,
        caller: Caller,
        worksite_id: str,
        patch: dict[str, Any],
        *,
        expected_version: int | None = None,
        now: datetime | None = None,
    ) -> Worksite:
        """Apply `patch` (field → new value, JSON shapes); the merged worksite is validated whole."""
        with self.engine.begin() as conn:
            return self._update_in(
                conn, caller, worksite_id, patch, expected_version, now or datetime.now(UTC), "update"
            )

    def _update_in(
        self,
        conn: Connection,
        caller: Caller,
        worksite_id: str,
        patch: dict[str, Any],
        expected_version: int | None,
        now: datetime,
        action: str,
    ) -> Worksite:
        current = self.get_in(conn, worksite_id)
        _check_may_write(caller, current)
        if expected_version is not None and expected_version != current.version:
            raise ConflictError(
                f"worksite {worksite_id!r} is at version {current.version}, not {expected_version}"
            )
        merged = current.writable() | patch
        try:
            fields = WorksiteFields.model_validate(merged)
        except ValidationError as exc:
            raise InvalidWorksiteError(problems_from(exc)) from None
        self._check_area(fields.geometry, current.owner)
        values = self._values(fields)
        changes = _changes(current, fields)
        if not changes:
            return current
        # A change of place or time after approval needs approving again.
        replan = {"geometry", "planned_start", "planned_end", "street"} & set(changes)
        if replan and current.approval is not Approval.PENDING:
            values |= {"approval": Approval.PENDING.value, "approved_by": None}
            changes["approval"] = [current.approval.value, Approval.PENDING.value]
        values |= {"updated_at": now, "version": current.version + 1}
        conn.execute(worksites.update().where(worksites.c.id == worksite_id).values(**values))
        updated = self.get_in(conn, worksite_id)
        self._record(conn, updated, caller.org, action, changes, now)
        return updated

    def decide(
        self, caller: Caller, worksite_id: str, *, approve: bool, now: datetime | None = None
    ) -> Worksite:
        with self.engine.begin() as conn:
            return self._decide_in(conn, caller, worksite_id, approve, now or datetime.now(UTC))

    def _decide_in(
        self, conn: Connection, caller: Caller, worksite_id: str, approve: bool, now: datetime
    ) -> Worksite:
        if not caller.is_operator:
            raise PermissionDeniedError(caller.org, "only the municipality's operators approve worksites")
        decision = Approval.APPROVED if approve else Approval.REJECTED
        current = self.get_in(conn, worksite_id)
        if current.approval is decision:
            return current
        conn.execute(
            worksites.update()
            .where(worksites.c.id == worksite_id)
            .values(
                approval=decision.value, approved_by=caller.org, updated_at=now, version=current.version + 1
            )
        )
        updated = self.get_in(conn, worksite_id)
        self._record(
            conn,
            updated,
            caller.org,
            "approve" if approve else "reject",
            {"approval": [current.approval.value, decision.value]},
            now,
        )
        return updated

    def import_many(
        self, caller: Caller, items: Sequence[WorksiteImport], *, now: datetime | None = None
    ) -> tuple[int, int]:
        """Create or change each worksite exactly as the API would, all in one transaction (a
        refusal anywhere changes nothing); `(created, updated)`.

        The same rules as the API (docs/decisions/0015-security-hardening.md): a utility writes
        only its own worksites; a new worksite is pending approval; a change of place or time
        sends an approved one back to pending; the file's `version` is the one it was exported
        at, so a worksite changed since is a conflict; an `approval` in the file counts only as
        the municipality's own decision, recorded as made by the caller. Created and changed
        dates and versions are this registry's own, never the file's.
        """
        now = now or datetime.now(UTC)
        created = updated = 0
        with self.engine.begin() as conn:
            for item in items:
                existing = None if item.id is None else self._find_in(conn, item.id)
                if existing is None:
                    ws = self._create_in(conn, caller, item, now, "import")
                    created += 1
                else:
                    _check_may_write(caller, existing)
                    owner = item.owner or caller.org
                    if owner != existing.owner:
                        raise ConflictError(
                            f"worksite {existing.id!r} belongs to {existing.owner!r}, not {owner!r}: "
                            "an import does not change owners"
                        )
                    patch = {name: getattr(item, name) for name in WorksiteFields.model_fields}
                    ws = self._update_in(conn, caller, existing.id, patch, item.version, now, "import")
                claim = item.approval
                if (
                    caller.is_operator
                    and claim in (Approval.APPROVED, Approval.REJECTED)
                    and claim != ws.approval
                ):
                    ws = self._decide_in(conn, caller, ws.id, claim is Approval.APPROVED, now)
                if existing is not None and ws.version != existing.version:
                    updated += 1
        return created, updated

    def _record(
        self,
        conn: Connection,
        ws: Worksite,
        actor: str,
        action: str,
        changes: dict[str, list[Any]],
        at: datetime,
    ) -> None:
        conn.execute(
            history.insert().values(
                worksite_id=ws.id,
                version=ws.version,
                at=at,
                actor=actor,
                action=action,
                changes=_json(changes),
            )
        )


def _check_may_write(caller: Caller, current: Worksite) -> None:
    """A utility writes its own worksites; the municipality's operators write all."""
    if current.owner != caller.org and not caller.is_operator:
        raise PermissionDeniedError(caller.org, f"worksite {current.id!r} belongs to {current.owner!r}")


_TRACKED = (*WorksiteFields.model_fields, "owner")


def _changes(before: Worksite | None, after: WorksiteFields) -> dict[str, list[Any]]:
    """field → [old, new] as JSON values, for the fields that differ."""
    out: dict[str, list[Any]] = {}
    for name in _TRACKED:
        if not hasattr(after, name):
            continue
        new = _jsonable(getattr(after, name))
        old = None if before is None else _jsonable(getattr(before, name))
        if isinstance(old, dict) or isinstance(new, dict):
            old = orjson.loads(_json(old))
            new = orjson.loads(_json(new))
        if old != new:
            out[name] = [old, new]
    return out
