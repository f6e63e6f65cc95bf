"""A stand-in context broker: the few NGSI-LD endpoints we use, checking every request exactly.

No context broker (Orion-LD, Scorpio, Stellio) can be installed here, so the publisher, the
subscription and the notification receiver are tested against this one, and the demo can run a
partner's broker with it. It implements only:

- `POST /ngsi-ld/v1/entityOperations/upsert`: stores the entities, answers 201 (new ones) or 204;
- `POST /ngsi-ld/v1/subscriptions` (409 if the id exists) and `PATCH .../subscriptions/{id}`;
- after each upsert, a notification of the upserted entities to every subscription whose
  entity types match, in the normalized form, with the subscription's `receiverInfo` as headers.

Every request is checked against what the NGSI-LD API requires of it (`application/ld+json`,
an `@context` ending with the core context, normalized attributes, ids that are URIs, a valid
subscription); what fails is answered 400 with a ProblemDetails body and kept in `violations`,
so a test asserts that there were none. `fail_next` makes it answer 503 to the next requests,
`stop()`/`start()` take it down and up on the same port. It is dev tooling, not a broker: the
tests use it in-process, the demo runs it as a partner's broker (`python -m
cloud.dev.context_broker --port N`).
"""

from __future__ import annotations

import argparse
import re
import signal
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

import httpx
import orjson

from cloud.exchange.broker import LD_JSON, SUBSCRIPTIONS_PATH, UPSERT_PATH
from cloud.exchange.context import CORE_CONTEXT
from cloud.exchange.forms import ATTRIBUTE_TYPES, META

_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S+")
_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
BAD_REQUEST = "https://uri.etsi.org/ngsi-ld/errors/BadRequestData"
ALREADY_EXISTS = "https://uri.etsi.org/ngsi-ld/errors/AlreadyExists"


class ViolationError(ValueError):
    pass


def check_entity(entity: Any, where: str) -> None:
    """An entity as the batch upsert takes it in `application/ld+json`: normalized, with its context."""
    if not isinstance(entity, dict):
        raise ViolationError(f"{where}: an entity must be a JSON object")
    if not isinstance(entity.get("id"), str) or not _URI.fullmatch(entity["id"]):
        raise ViolationError(f"{where}.id: must be a URI, got {entity.get('id')!r}")
    if not isinstance(entity.get("type"), str) or not entity["type"]:
        raise ViolationError(f"{where}.type: missing")
    context = entity.get("@context")
    if not isinstance(context, list) or not context or context[-1] != CORE_CONTEXT:
        raise ViolationError(
            f"{where}.@context: must be a list ending with the core context, got {context!r}"
        )
    for name, attr in entity.items():
        if name not in META:
            _check_attribute(attr, f"{where}.{name}")


def _check_attribute(attr: Any, path: str) -> None:
    if not isinstance(attr, dict) or attr.get("type") not in ATTRIBUTE_TYPES:
        raise ViolationError(f"{path}: not a normalized attribute (Property, GeoProperty, Relationship)")
    if attr["type"] == "Relationship":
        if not isinstance(attr.get("object"), str) or not _URI.fullmatch(attr["object"]):
            raise ViolationError(f"{path}.object: a Relationship needs a URI object")
    elif "value" not in attr:
        raise ViolationError(f"{path}: a {attr['type']} needs a value")
    elif attr["type"] == "GeoProperty":
        value = attr["value"]
        if not isinstance(value, dict) or "coordinates" not in value:
            raise ViolationError(f"{path}.value: a GeoProperty's value is a GeoJSON geometry")
    observed = attr.get("observedAt")
    if observed is not None and not (isinstance(observed, str) and _DATE_TIME.fullmatch(observed)):
        raise ViolationError(f"{path}.observedAt: must be an RFC 3339 date-time, got {observed!r}")


def check_subscription(sub: Any) -> None:
    if not isinstance(sub, dict):
        raise ViolationError("subscription: must be a JSON object")
    if sub.get("type") != "Subscription":
        raise ViolationError(f"type: must be Subscription, got {sub.get('type')!r}")
    if not isinstance(sub.get("id"), str) or not _URI.fullmatch(sub["id"]):
        raise ViolationError(f"id: must be a URI, got {sub.get('id')!r}")
    entities = sub.get("entities")
    if (
        not isinstance(entities, list)
        or not entities
        or not all(isinstance(e, dict) and e.get("type") for e in entities)
    ):
        raise ViolationError("entities: a non-empty list of {type}")
    endpoint = (sub.get("notification") or {}).get("endpoint") or {}
    if not isinstance(endpoint.get("uri"), str) or not endpoint["uri"].startswith(("http://", "https://")):
        raise ViolationError(
            f"notification.endpoint.uri: must be an http(s) URL, got {endpoint.get('uri')!r}"
        )
    if endpoint.get("accept", "application/json") not in ("application/json", LD_JSON):
        raise ViolationError(f"notification.endpoint.accept: {endpoint.get('accept')!r}")
    for i, item in enumerate(endpoint.get("receiverInfo", [])):
        if not (isinstance(item, dict) and set(item) == {"key", "value"}):
            raise ViolationError(f"notification.endpoint.receiverInfo[{i}]: must be {{key, value}}")
    context = sub.get("@context")
    if not isinstance(context, list) or not context or context[-1] != CORE_CONTEXT:
        raise ViolationError("@context: must be a list ending with the core context")


@dataclass
class Delivery:
    subscription: str
    status: int
    body: bytes
    answer: bytes


@dataclass
class StandInBroker:
    host: str = "127.0.0.1"
    port: int = 0
    entities: dict[str, dict[str, Any]] = field(default_factory=dict)
    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    fail_next: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> StandInBroker:
        broker = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                broker._handle(self, "POST")

            def do_PATCH(self) -> None:
                broker._handle(self, "PATCH")

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name=f"standin-{self.port}", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # -- requests ----------------------------------------------------------------------------

    def _handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0))
        headers = {k.lower(): v for k, v in request.headers.items()}
        with self._lock:
            self.requests.append((method, request.path, headers, body))
            if self.fail_next > 0:
                self.fail_next -= 1
                self._reply(request, 503, {"type": "InternalError", "title": "stand-in told to fail"})
                return
        try:
            document = self._document(headers, body)
            status, answer, notify = self._route(method, request.path, document)
        except ViolationError as exc:
            with self._lock:
                self.violations.append(f"{method} {request.path}: {exc}")
            self._reply(request, 400, {"type": BAD_REQUEST, "title": "Bad request", "detail": str(exc)})
            return
        self._reply(request, status, answer)
        for sub_id, entities in notify:
            self._notify(sub_id, entities)

    @staticmethod
    def _document(headers: dict[str, str], body: bytes) -> Any:
        if headers.get("content-type", "").split(";")[0] != LD_JSON:
            raise ViolationError(f"Content-Type must be {LD_JSON}, got {headers.get('content-type')!r}")
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise ViolationError(f"body is not JSON: {exc}") from None

    def _route(self, method: str, path: str, document: Any) -> tuple[int, Any, list[tuple[str, list[Any]]]]:
        if method == "POST" and path == UPSERT_PATH:
            return self._upsert(document)
        if method == "POST" and path == SUBSCRIPTIONS_PATH:
            check_subscription(document)
            with self._lock:
                if document["id"] in self.subscriptions:
                    return (
                        409,
                        {"type": ALREADY_EXISTS, "title": "Already exists", "detail": document["id"]},
                        [],
                    )
                self.subscriptions[document["id"]] = document
            return 201, None, []
        if method == "PATCH" and path.startswith(SUBSCRIPTIONS_PATH + "/"):
            sub_id = unquote(path[len(SUBSCRIPTIONS_PATH) + 1 :])
            with self._lock:
                if sub_id not in self.subscriptions:
                    raise ViolationError(f"no subscription {sub_id!r} to update")
                merged = {**self.subscriptions[sub_id], **document}
            check_subscription(merged)
            with self._lock:
                self.subscriptions[sub_id] = merged
            return 204, None, []
        raise ViolationError(f"not an endpoint of this stand-in: {method} {path}")

    def _upsert(self, document: Any) -> tuple[int, Any, list[tuple[str, list[Any]]]]:
        if not isinstance(document, list) or not document:
            raise ViolationError("the batch upsert takes a non-empty JSON array of entities")
        for i, entity in enumerate(document):
            check_entity(entity, f"[{i}]")
        with self._lock:
            created = [e["id"] for e in document if e["id"] not in self.entities]
            for e in document:
                self.entities[e["id"]] = e
            notify = []
            for sub_id, sub in self.subscriptions.items():
                types = {t["type"] for t in sub["entities"]}
                matching = [e for e in document if e["type"] in types]
                if matching:
                    notify.append((sub_id, matching))
        return (201, created, notify) if created else (204, None, notify)

    def _notify(self, sub_id: str, entities: list[Any]) -> None:
        sub = self.subscriptions[sub_id]
        endpoint = sub["notification"]["endpoint"]
        context = sub["@context"][0]
        headers = {
            "Content-Type": "application/json",
            "Link": f'<{context}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"',
        }
        headers |= {item["key"]: item["value"] for item in endpoint.get("receiverInfo", [])}
        # In application/json, the context goes in a Link header, not in the entities.
        plain = [{k: v for k, v in e.items() if k != "@context"} for e in entities]
        notification = {
            "id": f"urn:ngsi-ld:Notification:{uuid.uuid4()}",
            "type": "Notification",
            "subscriptionId": sub_id,
            "notifiedAt": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "data": plain,
        }
        body = orjson.dumps(notification)
        try:
            response = httpx.post(endpoint["uri"], content=body, headers=headers, timeout=30, trust_env=False)
            delivery = Delivery(sub_id, response.status_code, body, response.content)
        except httpx.HTTPError as exc:
            delivery = Delivery(sub_id, 0, body, str(exc).encode())
        with self._lock:
            self.deliveries.append(delivery)

    @staticmethod
    def _reply(request: BaseHTTPRequestHandler, status: int, body: Any) -> None:
        payload = b"" if body is None else orjson.dumps(body)
        request.send_response(status)
        if payload:
            content_type = "application/json" if status < 400 else "application/problem+json"
            request.send_header("Content-Type", content_type)
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        request.wfile.write(payload)


@contextmanager
def stand_in_broker() -> Iterator[StandInBroker]:
    broker = StandInBroker().start()
    try:
        yield broker
    finally:
        broker.stop()


def main() -> None:
    """`python -m cloud.dev.context_broker --port N`: a partner's broker for a demo, until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    broker = StandInBroker(port=args.port).start()
    print(f"stand-in context broker on {broker.url}", flush=True)  # noqa: T201  (the process's one output)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    broker.stop()


__all__ = [
    "Delivery",
    "StandInBroker",
    "ViolationError",
    "check_entity",
    "check_subscription",
    "stand_in_broker",
]


if __name__ == "__main__":
    main()
