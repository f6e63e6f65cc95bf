"""InfluxDB v1 HTTP API: `/write` with errors sorted by kind, `/query`, `/ping`.

Errors are sorted as Telegraf's InfluxDB output does: a 4xx means InfluxDB refused (some of)
the points and retrying the same bytes cannot help, so `write_isolating` bisects the batch to
find the refused points and writes the rest; 5xx, timeouts and network errors are retryable.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import orjson


class InfluxError(RuntimeError):
    pass


class RetryableWriteError(InfluxError):
    """InfluxDB is down, overloaded or unreachable; the same write may succeed later."""


class RejectedWriteError(InfluxError):
    """InfluxDB refused the write (4xx): bad points, type conflict, missing database."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(f"InfluxDB refused the write ({status}): {message}")


class QueryError(InfluxError):
    pass


def is_missing_database(exc: RejectedWriteError) -> bool:
    """InfluxDB answered that the database of the write does not exist."""
    return exc.status == 404 or "database not found" in exc.message


@dataclass(frozen=True, slots=True)
class RejectedLine:
    index: int
    line: str
    message: str


def _error_message(resp: httpx.Response) -> str:
    try:
        body = orjson.loads(resp.content)
        return str(body.get("error", resp.text))
    except orjson.JSONDecodeError:
        return resp.text[:500]


class InfluxClient:
    def __init__(
        self,
        url: str,
        database: str,
        *,
        timeout_s: float = 10.0,
        gzip_min_bytes: int = 64 * 1024,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.database = database
        self.gzip_min_bytes = gzip_min_bytes
        auth = (username, password or "") if username else None
        # trust_env=False: we talk to one known server; a user's HTTP_PROXY must not reroute it.
        self._http = httpx.Client(base_url=self.url, timeout=timeout_s, trust_env=False, auth=auth)

    def close(self) -> None:
        self._http.close()

    def ping(self) -> bool:
        try:
            return self._http.get("/ping").status_code == 204
        except httpx.HTTPError:
            return False

    def write(
        self, lines: Sequence[str], *, database: str | None = None, retention_policy: str | None = None
    ) -> None:
        """Write line-protocol lines (nanosecond timestamps) in one request, into `database`
        (default: the client's) and `retention_policy` (default: the database's)."""
        if not lines:
            return
        body = "\n".join(lines).encode()
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if len(body) >= self.gzip_min_bytes:
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        try:
            params = {"db": database or self.database, "precision": "ns"}
            if retention_policy:
                params["rp"] = retention_policy
            resp = self._http.post(
                "/write",
                params=params,
                content=body,
                headers=headers,
            )
        except httpx.HTTPError as exc:
            raise RetryableWriteError(f"InfluxDB unreachable: {exc!r}") from exc
        if resp.status_code == 204:
            return
        message = _error_message(resp)
        if resp.status_code >= 500 or resp.status_code == 429:
            raise RetryableWriteError(f"InfluxDB {resp.status_code}: {message}")
        raise RejectedWriteError(resp.status_code, message)

    def write_isolating(self, lines: Sequence[str], *, database: str | None = None) -> list[RejectedLine]:
        """Write `lines` (into `database`, default the client's); return the ones InfluxDB
        refuses, having written all the others.

        On a refusal the batch is split in halves until each refused line stands alone. Rewriting
        an accepted point is harmless (same series and timestamp collapse), so the accepted part
        of a partial write may be written twice. Retryable errors propagate unchanged.
        """
        rejected: list[RejectedLine] = []
        stack: list[tuple[int, int]] = [(0, len(lines))]
        while stack:
            lo, hi = stack.pop()
            if lo >= hi:
                continue
            try:
                self.write(lines[lo:hi], database=database)
            except RejectedWriteError as exc:
                if is_missing_database(exc):
                    raise  # not the points' fault: every line would be "rejected"
                if hi - lo == 1:
                    rejected.append(RejectedLine(lo, lines[lo], exc.message))
                else:
                    mid = (lo + hi) // 2
                    stack.extend(((mid, hi), (lo, mid)))
        rejected.sort(key=lambda r: r.index)
        return rejected

    def query(self, q: str, *, database: str | None = None, epoch: str | None = "ms") -> list[dict[str, Any]]:
        """Run InfluxQL; return the `results` list. Raises QueryError on any statement error."""
        params = {"q": q, "db": database or self.database}
        if epoch:
            params["epoch"] = epoch
        try:
            resp = self._http.post("/query", data=params)
        except httpx.HTTPError as exc:
            raise QueryError(f"InfluxDB unreachable: {exc!r}") from exc
        if resp.status_code != 200:
            raise QueryError(f"InfluxDB {resp.status_code}: {_error_message(resp)}")
        results: list[dict[str, Any]] = orjson.loads(resp.content).get("results", [])
        for result in results:
            if "error" in result:
                raise QueryError(f"{q!r}: {result['error']}")
        return results

    def series(self, q: str, *, database: str | None = None) -> list[dict[str, Any]]:
        """The series of the first statement's result, [] when it returned none."""
        results = self.query(q, database=database)
        series: list[dict[str, Any]] = results[0].get("series", []) if results else []
        return series

    def create_database(self, name: str | None = None) -> None:
        # CREATE DATABASE is idempotent in InfluxDB 1.x.
        self.query(f'CREATE DATABASE "{_ident(name or self.database)}"', database="")

    def drop_database(self, name: str | None = None) -> None:
        self.query(f'DROP DATABASE "{_ident(name or self.database)}"', database="")


def _ident(name: str) -> str:
    """A double-quoted InfluxQL identifier body: refuse what could break out of the quotes."""
    if not name or any(c in name for c in '"\\\n'):
        raise ValueError(f"database: invalid name {name!r}")
    return name
