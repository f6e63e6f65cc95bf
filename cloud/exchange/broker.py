"""A context broker's NGSI-LD API: the two operations we use (ETSI GS CIM 009, "Batch Entity Upsert"
and "Create Subscription").

- batch upsert, `POST /ngsi-ld/v1/entityOperations/upsert`: 201 (created, the ids in the body),
  204 (all updated) or 207 (Multi-Status: `success` ids and per-entity `errors`);
- subscriptions, `POST /ngsi-ld/v1/subscriptions` (201, or 409 when the id exists, which
  `subscribe` turns into `PATCH /ngsi-ld/v1/subscriptions/{id}`, 204), so subscribing twice
  leaves one subscription.

Bodies are `application/ld+json` with each entity's own `@context`. Errors are sorted as the
ingest's InfluxDB client sorts them: a 4xx means the broker refused what we sent and retrying it
unchanged cannot help; 5xx, timeouts and network errors are `RetryableBrokerError`. The
transport is httpx's, so tests may hand in another (httpx `BaseTransport`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from cloud.exchange.context import CORE_CONTEXT, PARKING_CONTEXT, TRANSPORTATION_CONTEXT

LD_JSON = "application/ld+json"
UPSERT_PATH = "/ngsi-ld/v1/entityOperations/upsert"
SUBSCRIPTIONS_PATH = "/ngsi-ld/v1/subscriptions"


class BrokerError(RuntimeError):
    def __init__(self, message: str, status: int | None = None, detail: str = "") -> None:
        self.status = status
        self.detail = detail
        super().__init__(message)


class RetryableBrokerError(BrokerError):
    """The broker is down, overloaded or unreachable; the same request may succeed later."""


@dataclass(slots=True)
class UpsertResult:
    succeeded: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # entity id -> the broker's reason


def _problem(response: httpx.Response) -> str:
    """An NGSI-LD ProblemDetails (RFC 7807) as one line."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.text[:300]
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("title") or body.get("type") or body)[:300]
    return str(body)[:300]


class ContextBroker:
    def __init__(
        self,
        url: str,
        *,
        tenant: str | None = None,
        token: str | None = None,
        timeout_s: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Accept": "application/json"}
        if tenant:
            headers["NGSILD-Tenant"] = tenant
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.url = url.rstrip("/")
        # trust_env=False: we talk to one configured broker; a user's HTTP_PROXY must not reroute it.
        self._http = httpx.Client(
            base_url=self.url, timeout=timeout_s, headers=headers, transport=transport, trust_env=False
        )

    def close(self) -> None:
        self._http.close()

    def _post(self, path: str, body: Any, method: str = "POST") -> httpx.Response:
        try:
            response = self._http.request(
                method, path, content=orjson.dumps(body), headers={"Content-Type": LD_JSON}
            )
        except httpx.HTTPError as exc:
            raise RetryableBrokerError(f"context broker unreachable: {exc!r}") from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise RetryableBrokerError(
                f"context broker {response.status_code}: {_problem(response)}", response.status_code
            )
        return response

    def upsert(self, entities: Sequence[dict[str, Any]]) -> UpsertResult:
        """Create or replace `entities` (normalized, each with its `@context`)."""
        ids = [str(e["id"]) for e in entities]
        response = self._post(UPSERT_PATH, list(entities))
        if response.status_code in (201, 204):
            return UpsertResult(succeeded=ids)
        if response.status_code == 207:
            body = orjson.loads(response.content)
            failed = {
                str(e.get("entityId")): str((e.get("error") or {}).get("detail") or e.get("error"))
                for e in body.get("errors", [])
            }
            return UpsertResult([i for i in ids if i not in failed], failed)
        raise BrokerError(
            f"context broker refused the upsert ({response.status_code}): {_problem(response)}",
            response.status_code,
            _problem(response),
        )

    def subscribe(self, subscription: dict[str, Any]) -> str:
        """Create the subscription, or bring the one with its id up to date; returns its id."""
        sub_id = str(subscription["id"])
        response = self._post(SUBSCRIPTIONS_PATH, subscription)
        if response.status_code == 201:
            return sub_id
        if response.status_code == 409:
            patch = {k: v for k, v in subscription.items() if k not in ("id", "type")}
            updated = self._post(f"{SUBSCRIPTIONS_PATH}/{quote(sub_id, safe='')}", patch, method="PATCH")
            if updated.status_code == 204:
                return sub_id
            response = updated
        raise BrokerError(
            f"context broker refused the subscription ({response.status_code}): {_problem(response)}",
            response.status_code,
            _problem(response),
        )


def subscription(
    *,
    sub_id: str,
    types: Sequence[str],
    notify_url: str,
    token: str,
    description: str = "",
    throttling_s: int | None = None,
) -> dict[str, Any]:
    """A subscription asking the broker to send every change of `types`, in normalized form, to our
    receiver with our token (`receiverInfo`, NGSI-LD v1.4+: key-value pairs sent as headers)."""
    sub: dict[str, Any] = {
        "id": sub_id,
        "type": "Subscription",
        "description": description or "Situation Room: partner entities for the control room",
        "entities": [{"type": t} for t in types],
        "notification": {
            "format": "normalized",
            "endpoint": {
                "uri": notify_url,
                "accept": "application/json",
                "receiverInfo": [{"key": "Authorization", "value": f"Bearer {token}"}],
            },
        },
        "@context": [PARKING_CONTEXT, TRANSPORTATION_CONTEXT, CORE_CONTEXT],
    }
    if throttling_s:
        sub["throttling"] = throttling_s
    return sub


__all__ = [
    "LD_JSON",
    "SUBSCRIPTIONS_PATH",
    "UPSERT_PATH",
    "BrokerError",
    "ContextBroker",
    "RetryableBrokerError",
    "UpsertResult",
    "subscription",
]
