"""InfluxDB 1.x users for a deployment with `[http] auth-enabled = true`, created idempotently.

Three users: an admin (creates databases and users), a writer (ingest: WRITE on the database
only) and a reader (Grafana, the API: READ only). With a data policy (decision 0017,
`ensure_org_access`), one reader per organisation instead, reading the shared database and its
own (a municipality's, every organisation's), and the writer writing to all of them.
Running it again converges passwords and privileges instead of failing on "user already
exists". On a server with no user yet, InfluxDB accepts exactly one unauthenticated statement:
creating the first admin (InfluxDB 1.x docs, "Authentication and authorization": "create admin
user first or disable authentication").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from cloud.io.influx import retention
from cloud.io.influx.client import InfluxClient
from cloud.io.influx.policy import DataPolicy

NO_ADMIN_YET = "create admin user first"


class InfluxAuthError(RuntimeError):
    def __init__(self, statement: str, status: int, message: str) -> None:
        self.statement = statement
        self.status = status
        super().__init__(
            f"InfluxDB refused {statement.split(' WITH PASSWORD', maxsplit=1)[0]!r} ({status}): {message}"
        )


@dataclass(frozen=True, slots=True)
class InfluxUser:
    name: str
    password: str

    def __repr__(self) -> str:  # never a password in a log line or a traceback
        return f"InfluxUser({self.name!r}, password=***)"


def _string(value: str) -> str:
    """An InfluxQL string literal: single quotes, with backslash and quote escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _ident(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class InfluxAdmin:
    def __init__(self, url: str, admin: InfluxUser, *, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.admin = admin
        self.client = httpx.Client(timeout=timeout_s, trust_env=False)

    def close(self) -> None:
        self.client.close()

    def query(self, statement: str, *, authenticated: bool = True) -> list[dict[str, Any]]:
        auth = httpx.BasicAuth(self.admin.name, self.admin.password) if authenticated else None
        response = self.client.post(
            f"{self.url}/query", data={"q": statement}, auth=auth or httpx.USE_CLIENT_DEFAULT
        )
        try:
            body = response.json()
        except ValueError:
            body = {"error": response.text}
        error = body.get("error") or next((r["error"] for r in body.get("results", []) if "error" in r), None)
        if response.status_code >= 400 or error:
            raise InfluxAuthError(statement, response.status_code, str(error))
        return list(body.get("results", []))

    def users(self) -> dict[str, bool]:
        """name -> is admin."""
        results = self.query("SHOW USERS")
        out: dict[str, bool] = {}
        for series in results[0].get("series", []) if results else []:
            for name, is_admin in series.get("values", []):
                out[str(name)] = bool(is_admin)
        return out

    def ensure_admin(self) -> bool:
        """Create the admin when the server has no user at all; True when it was created."""
        try:
            self.users()
        except InfluxAuthError as exc:
            if NO_ADMIN_YET not in str(exc):
                raise
            self.query(
                f"CREATE USER {_ident(self.admin.name)} WITH PASSWORD {_string(self.admin.password)} "
                "WITH ALL PRIVILEGES",
                authenticated=False,
            )
            return True
        return False


def ensure_users(
    url: str, database: str, *, admin: InfluxUser, writer: InfluxUser, reader: InfluxUser
) -> list[str]:
    """Create or converge admin, writer and reader; returns what was done (no secrets in it)."""
    done: list[str] = []
    influx = InfluxAdmin(url, admin)
    try:
        if influx.ensure_admin():
            done.append(f"created admin {admin.name}")
        influx.query(f"CREATE DATABASE {_ident(database)}")  # a no-op when it exists
        users = influx.users()
        for user, privilege in ((writer, "WRITE"), (reader, "READ")):
            if user.name == admin.name:
                raise InfluxAuthError(f"GRANT {privilege}", 0, f"{user.name!r} must not be the admin")
            if user.name not in users:
                influx.query(f"CREATE USER {_ident(user.name)} WITH PASSWORD {_string(user.password)}")
                done.append(f"created {privilege.lower()} user {user.name}")
            else:
                influx.query(f"SET PASSWORD FOR {_ident(user.name)} = {_string(user.password)}")
                if users[user.name]:
                    influx.query(f"REVOKE ALL PRIVILEGES FROM {_ident(user.name)}")
                    done.append(f"revoked admin rights of {user.name}")
            # GRANT replaces the user's privilege on the database, so READ after ALL means READ.
            influx.query(f"GRANT {privilege} ON {_ident(database)} TO {_ident(user.name)}")
    finally:
        influx.close()
    return done


@dataclass(frozen=True, slots=True)
class OrgReader:
    """An organisation's InfluxDB reader (its Grafana data source's user)."""

    org: str
    user: InfluxUser
    is_municipality: bool


def reader_name(org: str) -> str:
    return f"reader.{org}"


def _granted(influx: InfluxAdmin, user: str) -> dict[str, str]:
    """database -> privilege of `user` (SHOW GRANTS)."""
    results = influx.query(f"SHOW GRANTS FOR {_ident(user)}")
    return {
        str(db): str(privilege)
        for series in (results[0].get("series", []) if results else [])
        for db, privilege in series.get("values", [])
    }


def _converge(
    influx: InfluxAdmin, users: dict[str, bool], user: InfluxUser, privileges: dict[str, str]
) -> list[str]:
    """`user` exists with its password and exactly `privileges` (database -> WRITE or READ)."""
    done = []
    if user.name == influx.admin.name:
        raise InfluxAuthError("GRANT", 0, f"{user.name!r} must not be the admin")
    if user.name not in users:
        influx.query(f"CREATE USER {_ident(user.name)} WITH PASSWORD {_string(user.password)}")
        done.append(f"created user {user.name}")
    else:
        influx.query(f"SET PASSWORD FOR {_ident(user.name)} = {_string(user.password)}")
        if users[user.name]:
            influx.query(f"REVOKE ALL PRIVILEGES FROM {_ident(user.name)}")
            done.append(f"revoked admin rights of {user.name}")
    have = _granted(influx, user.name)
    for db, privilege in privileges.items():
        if have.get(db) != privilege:
            influx.query(f"GRANT {privilege} ON {_ident(db)} TO {_ident(user.name)}")
            done.append(f"granted {privilege} on {db} to {user.name}")
    for db, privilege in have.items():
        if db not in privileges and privilege != "NO PRIVILEGES":
            influx.query(f"REVOKE ALL ON {_ident(db)} FROM {_ident(user.name)}")
            done.append(f"revoked {privilege} on {db} from {user.name}")
    return done


def ensure_org_access(
    url: str,
    policy: DataPolicy,
    *,
    admin: InfluxUser,
    writer: InfluxUser,
    readers: list[OrgReader],
    raw_retention: str = "30d",
    rollup_retention: str = "INF",
) -> list[str]:
    """Converge InfluxDB on the data policy (decision 0017), idempotently: the shared database
    and each organisation's private one exist with their retention policies and rollups; the
    writer (ingest, rules) may WRITE to all of them; each organisation's reader may READ the
    shared database and its own, a municipality's every one, and nothing else (a privilege on
    one of them that the policy does not give is revoked). Returns what was done."""
    done: list[str] = []
    orgs = [r.org for r in readers]
    databases = policy.databases(orgs)
    influx = InfluxAdmin(url, admin)
    try:
        if influx.ensure_admin():
            done.append(f"created admin {admin.name}")
        for db in databases:
            influx.query(f"CREATE DATABASE {_ident(db)}")  # a no-op when it exists
        managed = InfluxClient(url, policy.database, username=admin.name, password=admin.password)
        try:
            for db in databases:
                issued = retention.ensure(
                    managed, raw_retention=raw_retention, rollup_retention=rollup_retention, database=db
                )
                done += [f"{db}: {statement.split(' ON ', 1)[0]}" for statement in issued]
        finally:
            managed.close()
        users = influx.users()
        done += _converge(influx, users, writer, dict.fromkeys(databases, "WRITE"))
        for r in readers:
            readable = policy.readable_by(r.org, is_municipality=r.is_municipality, orgs=orgs)
            done += _converge(influx, users, r.user, dict.fromkeys(readable, "READ"))
    finally:
        influx.close()
    return done
