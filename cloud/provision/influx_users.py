"""InfluxDB 1.x users for a deployment with `[http] auth-enabled = true`, created idempotently.

Three users: an admin (creates databases and users), a writer (ingest: WRITE on the database
only) and a reader (Grafana, the API: READ only). Running it again converges passwords and
privileges instead of failing on "user already exists". On a server with no user yet, InfluxDB
accepts exactly one unauthenticated statement: creating the first admin (InfluxDB 1.x docs,
"Authentication and authorization": "create admin user first or disable authentication").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

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
