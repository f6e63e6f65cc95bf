"""The console's own tables (operators, posts, attachments, audit) on cloud.io.db's engines.

Threads need no table: a thread is a key — `city`, `alert:<id>` or `worksite:<id>` — and its
posts. Every action an operator takes (log-in, post, acknowledge, edit, refusal) is one row of
`console_audit`, written in the same transaction as the change it records.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from cloud.console.auth import ConsoleRole, Operator, hash_password, verify_password
from cloud.console.uploads import StoredFile
from cloud.io.db import Migration, make_engine, migrate

COMPONENT = "console"
metadata = sa.MetaData()

operators_table = sa.Table(
    "console_operators",
    metadata,
    sa.Column("username", sa.String(64), primary_key=True),
    sa.Column("org", sa.String(64), nullable=False),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("display_name", sa.String(200), nullable=False),
    sa.Column("password_hash", sa.String(300), nullable=False),
)
posts_table = sa.Table(
    "console_posts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("thread", sa.String(200), nullable=False, index=True),
    sa.Column("author", sa.String(64), nullable=False),
    sa.Column("org", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # post | ack | assign | resolve | status
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("mentions", sa.Text, nullable=False, server_default="[]"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
files_table = sa.Table(
    "console_files",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("post_id", sa.Integer, sa.ForeignKey("console_posts.id"), index=True),
    sa.Column("owner", sa.String(64), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("mime", sa.String(64), nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("thumb_path", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
audit_table = sa.Table(
    "console_audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("org", sa.String(64), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("target", sa.String(200), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),  # ok | refused
    sa.Column("detail", sa.Text, nullable=False, server_default="{}"),
)


def _create_v1(conn: Connection) -> None:
    metadata.create_all(conn)


MIGRATIONS = [Migration(1, "operators, posts, files, audit", _create_v1)]
THREAD = re.compile(r"^(city|alert:\d{1,12}|worksite:[A-Za-z0-9._-]{1,100})$")


class ThreadKeyError(ValueError):
    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"thread {key!r} is not 'city', 'alert:<id>' or 'worksite:<id>'")


class UnknownFileError(LookupError):
    def __init__(self, file_id: str) -> None:
        self.file_id = file_id
        super().__init__(f"no attachment {file_id!r} of yours awaiting a post")


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Post:
    id: int
    thread: str
    author: str
    org: str
    kind: str
    text: str
    mentions: list[str]
    created_at: datetime
    files: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "thread": self.thread,
            "author": self.author,
            "org": self.org,
            "kind": self.kind,
            "text": self.text,
            "mentions": self.mentions,
            "created_at": self.created_at.isoformat(),
            "files": self.files,
        }


def _file_dict(m: Any) -> dict[str, Any]:
    return {
        "id": m["id"],
        "name": m["name"],
        "mime": m["mime"],
        "size": m["size"],
        "url": f"/console/api/files/{m['id']}",
        "thumb_url": f"/console/api/files/{m['id']}/thumb" if m["thumb_path"] else None,
    }


class ConsoleStore:
    def __init__(self, url_or_engine: str | Engine) -> None:
        self.engine = make_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
        migrate(self.engine, COMPONENT, MIGRATIONS)

    # --- operators -----------------------------------------------------------------------------

    def add_operator(
        self, username: str, password: str, org: str, role: ConsoleRole, display_name: str = ""
    ) -> Operator:
        if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{1,63}", username):
            raise ValueError(f"username {username!r}: use 2-64 of a-z 0-9 . _ -")
        values = {
            "org": org,
            "role": role.value,
            "display_name": display_name or username,
            "password_hash": hash_password(password),
        }
        with self.engine.begin() as conn:
            exists = conn.execute(
                sa.select(operators_table.c.username).where(operators_table.c.username == username)
            ).first()
            if exists:
                conn.execute(
                    operators_table.update().where(operators_table.c.username == username).values(**values)
                )
            else:
                conn.execute(operators_table.insert().values(username=username, **values))
        return Operator(username, org, role, values["display_name"])

    def operator(self, username: str) -> Operator | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(operators_table).where(operators_table.c.username == username)
            ).first()
        if row is None:
            return None
        m = row._mapping
        return Operator(m["username"], m["org"], ConsoleRole(m["role"]), m["display_name"])

    def authenticate(self, username: str, password: str) -> Operator | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(operators_table).where(operators_table.c.username == username)
            ).first()
        if row is None:
            # Same work as a real check, so timing does not tell which usernames exist.
            verify_password(password, hash_password("x"))
            return None
        m = row._mapping
        if not verify_password(password, m["password_hash"]):
            return None
        return Operator(m["username"], m["org"], ConsoleRole(m["role"]), m["display_name"])

    # --- files and posts -----------------------------------------------------------------------

    def add_file(self, owner: Operator, f: StoredFile) -> dict[str, Any]:
        row = {
            "id": f.id,
            "post_id": None,
            "owner": owner.username,
            "name": f.name,
            "mime": f.mime,
            "size": f.size,
            "path": str(f.path),
            "thumb_path": str(f.thumb_path) if f.thumb_path else None,
            "created_at": datetime.now(UTC),
        }
        with self.engine.begin() as conn:
            conn.execute(files_table.insert().values(**row))
            self._audit(conn, owner, "upload", f"file:{f.id}", "ok", {"name": f.name, "mime": f.mime})
        return _file_dict(row)

    def file(self, file_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(files_table).where(files_table.c.id == file_id)).first()
        return dict(row._mapping) if row else None

    def add_post(
        self,
        author: Operator,
        thread: str,
        text: str,
        *,
        kind: str = "post",
        mentions: list[str] | None = None,
        file_ids: list[str] | None = None,
    ) -> Post:
        if not THREAD.match(thread):
            raise ThreadKeyError(thread)
        now = datetime.now(UTC)
        mentions = mentions or []
        with self.engine.begin() as conn:
            key = conn.execute(
                posts_table.insert().values(
                    thread=thread,
                    author=author.username,
                    org=author.org,
                    kind=kind,
                    text=text,
                    mentions=orjson.dumps(mentions).decode(),
                    created_at=now,
                )
            ).inserted_primary_key
            assert key is not None
            post_id: int = key[0]
            for fid in file_ids or []:
                claimed = conn.execute(
                    files_table.update()
                    .where(
                        files_table.c.id == fid,
                        files_table.c.owner == author.username,
                        files_table.c.post_id.is_(None),
                    )
                    .values(post_id=post_id)
                ).rowcount
                if claimed != 1:
                    raise UnknownFileError(fid)
            self._audit(
                conn,
                author,
                kind,
                thread,
                "ok",
                {"post": post_id, "files": file_ids or [], "mentions": mentions},
            )
            return self._posts(conn, posts_table.c.id == post_id)[0]

    def posts(self, thread: str, limit: int = 200) -> list[Post]:
        with self.engine.connect() as conn:
            return self._posts(conn, posts_table.c.thread == thread, limit)

    def participants(self, thread: str) -> set[str]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(posts_table.c.org).where(posts_table.c.thread == thread).distinct())
            return {r[0] for r in rows}

    def _posts(self, conn: Connection, where: Any, limit: int = 200) -> list[Post]:
        rows = list(
            conn.execute(sa.select(posts_table).where(where).order_by(posts_table.c.id.desc()).limit(limit))
        )
        ids = [r._mapping["id"] for r in rows]
        files: dict[int, list[dict[str, Any]]] = {}
        if ids:
            for f in conn.execute(
                sa.select(files_table)
                .where(files_table.c.post_id.in_(ids))
                .order_by(files_table.c.created_at)
            ):
                files.setdefault(f._mapping["post_id"], []).append(_file_dict(f._mapping))
        out = []
        for r in reversed(rows):
            m = r._mapping
            out.append(
                Post(
                    id=m["id"],
                    thread=m["thread"],
                    author=m["author"],
                    org=m["org"],
                    kind=m["kind"],
                    text=m["text"],
                    mentions=orjson.loads(m["mentions"]),
                    created_at=_utc(m["created_at"]),
                    files=files.get(m["id"], []),
                )
            )
        return out

    # --- audit ---------------------------------------------------------------------------------

    def _audit(
        self,
        conn: Connection,
        who: Operator | str,
        action: str,
        target: str,
        outcome: str,
        detail: dict[str, Any],
    ) -> None:
        actor, org = (who.username, who.org) if isinstance(who, Operator) else (who, "")
        conn.execute(
            audit_table.insert().values(
                ts=datetime.now(UTC),
                actor=actor,
                org=org,
                action=action,
                target=target,
                outcome=outcome,
                detail=orjson.dumps(detail).decode(),
            )
        )

    def audit(
        self, who: Operator | str, action: str, target: str, outcome: str = "ok", **detail: Any
    ) -> None:
        with self.engine.begin() as conn:
            self._audit(conn, who, action, target, outcome, detail)

    def audit_log(self, limit: int = 200, org: str | None = None) -> list[dict[str, Any]]:
        q = sa.select(audit_table).order_by(audit_table.c.id.desc()).limit(limit)
        if org is not None:
            q = q.where(audit_table.c.org == org)
        with self.engine.connect() as conn:
            rows = conn.execute(q)
            return [
                {
                    "id": m["id"],
                    "ts": _utc(m["ts"]).isoformat(),
                    "actor": m["actor"],
                    "org": m["org"],
                    "action": m["action"],
                    "target": m["target"],
                    "outcome": m["outcome"],
                    "detail": orjson.loads(m["detail"]),
                }
                for m in (r._mapping for r in rows)
            ]
