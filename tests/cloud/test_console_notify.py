"""A post that mentions an organisation with no console open reaches it through the rules
engine's notification channels (here a real webhook receiver); one that is watching gets it
on screen only."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from cloud.apps.demo import running_console
from cloud.console.auth import ConsoleRole
from cloud.console.notify import RULE, notifier_hook
from cloud.core.geo import ServiceAreas
from cloud.dev.demo_data import DEMO_PASSWORD, load_demo
from cloud.notify import NotificationsConfig, Notifier, build_channels
from cloud.worksites.store import WorksiteStore

from support import wait_until

HDR = {"X-Sitroom-Console": "1"}


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(orjson.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()


def test_a_mention_of_an_organisation_not_watching_goes_out_by_webhook(
    tmp_path: Path, webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = webhook
    config = NotificationsConfig.model_validate(
        {
            "channels": [{"name": "hooks", "type": "webhook", "url": url, "secret": "s3cret-s3cret"}],
            "routes": [{"org": "open-fiber", "channels": ["hooks"]}, {"org": "alia", "channels": ["hooks"]}],
        }
    )
    notifier = Notifier(config, build_channels(config))
    worksites = WorksiteStore.open(f"sqlite:///{tmp_path / 'ws.db'}", areas=ServiceAreas.load())
    load_demo(worksites, datetime.now(UTC))
    try:
        with running_console(tmp_path / "console", worksites=worksites, alerts=None, influx=None) as (
            base,
            console,
        ):
            console.notify_posts = notifier_hook(notifier, f"{base}/console/")
            with httpx.Client(base_url=base, headers=HDR, timeout=30) as luca:
                luca.post("/console/api/login", json={"username": "luca", "password": DEMO_PASSWORD})
                # Luca (alia) has a console open: alia is watching, open-fiber is not.
                with luca.stream(
                    "GET", "/console/api/events", timeout=httpx.Timeout(30, read=None)
                ) as events:
                    lines = events.iter_lines()  # kept: a dropped iterator closes the stream
                    assert next(lines).startswith("retry:")
                    wait_until(
                        lambda: "alia" in console.broadcaster.watching_orgs(), 30, what="alia watching"
                    )
                    console.store.add_operator(
                        "anna2", DEMO_PASSWORD, "comune-prato", ConsoleRole.MUNICIPALITY_OPERATOR
                    )
                    with httpx.Client(base_url=base, headers=HDR, timeout=30) as anna:
                        anna.post("/console/api/login", json={"username": "anna2", "password": DEMO_PASSWORD})
                        r = anna.post(
                            "/console/api/threads/city/posts",
                            json={"text": "@open-fiber @alia scavo non autorizzato in Via Bologna"},
                        )
                        assert r.status_code == 201
                    assert notifier.wait_idle(30)
    finally:
        notifier.close()
    assert len(received) == 1
    (alert,) = received[0]["alerts"]
    assert alert["org"] == "open-fiber"
    assert alert["rule"] == RULE
    assert "scavo non autorizzato" in alert["message"]
    assert alert["context"]["thread"] == "city"
