"""Fetching one feed URL: conditional GETs, a timeout, a size cap, and what went wrong by kind.

A feed that has not changed answers 304 to `If-None-Match` (its last ETag) or
`If-Modified-Since` (its last `Last-Modified`), RFC 9110 §13.1, and costs neither side a body.
The validators are remembered only once the body was processed (`accept`), so a body the
reader could not keep is fetched again, whole, next time.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Literal

import httpx

from cloud.transit.realtime.config import FeedUrl
from edge.contract.gtfs.realtime import MAX_BODY_BYTES

FailureKind = Literal["timeout", "network", "http", "too_large"]


@dataclass(frozen=True, slots=True)
class Fetched:
    url: str
    body: bytes | None  # None: 304 Not Modified
    etag: str | None
    last_modified: str | None


class FetchError(Exception):
    """The URL gave no body to read; `kind` sorts it, `retry_after_s` is the server's wish."""

    def __init__(self, url: str, kind: FailureKind, message: str, retry_after_s: float | None = None) -> None:
        self.url = url
        self.kind = kind
        self.retry_after_s = retry_after_s
        super().__init__(f"{url}: {message}")


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    date = response.headers.get("date")
    now = parsedate_to_datetime(date) if date else None
    return max(0.0, (when - now).total_seconds()) if now is not None else None


class FeedPoller:
    def __init__(
        self,
        feed: FeedUrl,
        *,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        etag: str | None = None,
        last_modified: str | None = None,
        max_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self.feed = feed
        self.headers = dict(headers or {})
        self.params = dict(params or {})
        self.etag = etag
        self.last_modified = last_modified
        self.max_bytes = max_bytes

    @property
    def url(self) -> str:
        return self.feed.url

    def fetch(self, client: httpx.Client, timeout_s: float) -> Fetched:
        headers = {"Accept": "application/x-protobuf, application/octet-stream", **self.headers}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        try:
            with client.stream(
                "GET", self.url, headers=headers, params=self.params or None, timeout=timeout_s
            ) as response:
                if response.status_code == httpx.codes.NOT_MODIFIED:
                    return Fetched(self.url, None, self.etag, self.last_modified)
                if response.status_code != httpx.codes.OK:
                    raise FetchError(
                        self.url,
                        "http",
                        f"HTTP {response.status_code} {response.reason_phrase}",
                        _retry_after(response),
                    )
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > self.max_bytes:
                        raise FetchError(self.url, "too_large", f"body over {self.max_bytes} bytes")
                return Fetched(
                    self.url, bytes(body), response.headers.get("etag"), response.headers.get("last-modified")
                )
        except httpx.TimeoutException as exc:
            raise FetchError(
                self.url, "timeout", f"no answer within {timeout_s:g} s ({type(exc).__name__})"
            ) from None
        except httpx.HTTPError as exc:
            raise FetchError(self.url, "network", f"{type(exc).__name__}: {exc}") from None

    def accept(self, fetched: Fetched) -> None:
        """The body was processed: ask with its validators from now on."""
        self.etag, self.last_modified = fetched.etag, fetched.last_modified
