"""Helpers shared by the tests: waiting without bare sleeps, running the pipeline in-process."""

from __future__ import annotations

import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from aiosmtpd.controller import Controller
from paho.mqtt.enums import CallbackAPIVersion

from cloud.core.alerts import Alert
from cloud.core.settings import CloudSettings
from cloud.dev.servers import free_port
from cloud.ingest.consumer import Ingest
from cloud.io.influx.client import InfluxClient
from cloud.rules.engine import Engine, load_rules
from cloud.rules.service import RulesService
from cloud.rules.store import AlertStore
from cloud.worksites.snapshot import WorksiteSnapshots
from edge.contract import KINDS

# The repository root. Import it from here, not from conftest: pytest loads several conftest
# modules under that one name, so `from conftest import ...` depends on collection order.
REPO = Path(__file__).resolve().parent.parent


def wait_until(
    predicate: Callable[[], Any], timeout_s: float, interval_s: float = 0.05, what: str = ""
) -> Any:
    """Poll `predicate` until it returns something truthy; fail the test with `what` on timeout."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(
        f"timed out after {timeout_s} s waiting for {what or predicate}; last value {last!r}"
    )


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims `width` x `height` pixels in its header and holds one empty row: a
    decompression bomb's calling card, a few dozen bytes on the wire."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    # PNG spec 11.2.2 IHDR: width, height, bit depth 8, colour type 2 (RGB), then 0, 0, 0.
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00"))
        + chunk(b"IEND", b"")
    )


def unique(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@dataclass
class Recorder:
    """A plain MQTT subscriber that keeps every message it receives, in order."""

    url_host: str
    url_port: int
    filters: list[str]
    messages: list[tuple[str, bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=unique("rec-"), clean_session=True)
        self.client.on_connect = lambda c, *_: c.subscribe([(f, 1) for f in self.filters])
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._on_message

    def _on_message(self, _c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((msg.topic, bytes(msg.payload)))

    def start(self) -> Recorder:
        self.client.connect(self.url_host, self.url_port)
        self.client.loop_start()
        assert self.subscribed.wait(10), "recorder could not subscribe"
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def on(self, prefix: str) -> list[tuple[str, bytes]]:
        with self.lock:
            return [(t, p) for t, p in self.messages if t.startswith(prefix)]


def count_points(influx: InfluxClient) -> int:
    total = 0
    for spec in KINDS.values():
        for s in influx.series(f'SELECT count("{spec.fields[0].name}") FROM "{spec.kind.value}"'):
            total += int(s["values"][0][1])
    return total


@contextmanager
def cloud_services(
    settings: CloudSettings,
    *,
    rules_file: Path | None = None,
    alert_store: AlertStore | None = None,
    worksites: WorksiteSnapshots | None = None,
) -> Iterator[tuple[Ingest, RulesService]]:
    """Ingest and rules in threads of this process, stopped (and joined) on exit. With an
    `alert_store` the rules service keeps alerts there (and relays operators' acks); with
    `worksites` it writes the worksite registry's state to InfluxDB."""
    ingest = Ingest(settings)
    engine = Engine(load_rules(rules_file) if rules_file else load_rules())
    rules = RulesService(settings, engine, store=alert_store, periodic=[worksites] if worksites else ())
    threads = [threading.Thread(target=s.run, daemon=True) for s in (ingest, rules)]
    for t in threads:
        t.start()
    try:
        wait_until(
            lambda: ingest.conn.connected.is_set() and rules.conn.connected.is_set(), 10, what="services"
        )
        yield ingest, rules
    finally:
        ingest.stop()
        rules.stop()
        for t in threads:
            t.join(20)


def parking_full(at: datetime, **changes: Any) -> Alert:
    """The tests' usual alert: Piazza Mercatale's car park full, firing since `at`."""
    fields: dict[str, Any] = {
        "rule": "parking-full",
        "org": "comune-prato",
        "entity": "p-mercatale",
        "gateway": "gw-mercatale",
        "kind": "parking",
        "severity": "warning",
        "state": "firing",
        "since": at,
        "ts": at,
        "message": "occupancy_pct 99 above 95 for 15 min",
        "value": 99.0,
        "threshold": 95.0,
    }
    return Alert(**(fields | changes))


@dataclass
class Hooks:
    """What a webhook receiver got: each POST's headers (lower-case) and body, and its path."""

    url: str = ""
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # replies to give, then 200


@contextmanager
def webhook_receiver() -> Iterator[Hooks]:
    """A real HTTP server on loopback that records webhook deliveries."""
    state = Hooks()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            payload = self.rfile.read(int(self.headers["Content-Length"]))
            state.requests.append(({k.lower(): v for k, v in self.headers.items()}, payload))
            state.paths.append(self.path)
            self.send_response(state.statuses.pop(0) if state.statuses else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


class Inbox:
    """An aiosmtpd handler that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802  (aiosmtpd hook)
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@contextmanager
def smtp_server() -> Iterator[tuple[int, Inbox]]:
    """A real SMTP server (aiosmtpd) on loopback: its port and its inbox."""
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller.port, inbox
    finally:
        controller.stop()


def case_params(names: list[str], count: Callable[[str], int]) -> list[Any]:
    """`(name, index)` for every case of every registered plug-in, for `parametrize`. A missing
    or broken cases.yaml counts no case: its plug-in's own test fails then, not the collection."""
    out = []
    for name in names:
        try:
            n = count(name)
        except (OSError, ValueError, yaml.YAMLError):
            n = 0
        out.extend(pytest.param(name, i, id=f"{name}[{i}]") for i in range(n))
    return out


def undocumented(readme: Path, name: str, options: list[str]) -> list[str]:
    """What a plug-in's README fails to name in backticks: the plug-in itself, or its options."""
    text = readme.read_text(encoding="utf-8")
    return [f"`{word}`" for word in (name, *options) if f"`{word}`" not in text]
