"""The API's OpenAPI document tells the truth: schemathesis sends what the document allows (and
what it does not) to every operation of THE app (`cloud.apps.api.create_app`, with its alert
store, its console and its ways in: the push API and the NGSI-LD receiver, storing in a real
InfluxDB), and finds no 5xx, no undocumented status, no response off its schema.

Issue 18 point 13. Bounded for CI: `MAX_EXAMPLES` per operation, derandomized (the same cases on
every run), no shrinking; about 40 s here (load average ~8 on 2 cores). Another API joins the
run with one line in `COVERED`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from cloud.apps.api import WaysIn, create_app
from cloud.apps.console import open_console
from cloud.console.auth import SessionSigner
from cloud.core.admission import Admission
from cloud.core.alerts import Alert
from cloud.core.geo import ServiceAreas
from cloud.core.settings import CloudSettings
from cloud.dev.apiserver import ThreadedApiServer
from cloud.dev.demo_data import MUNICIPALITY, add_demo_operators, load_demo
from cloud.dev.servers import Influxd
from cloud.ingest.direct import DirectIngest
from cloud.io.influx.client import InfluxClient
from cloud.io.ledger import BatchLedger
from cloud.rules.store import AlertStore
from cloud.worksites.store import WorksiteStore

from support import unique

# The operations under test, by path prefix: the worksite registry and its feeds, the alerts,
# the console's API, the push API and the NGSI-LD receiver. A new router is one more line here.
COVERED = (
    "/worksites",
    "/conflicts",
    "/organisations",
    "/import/",
    "/feeds/",
    "/intermodality/",
    "/alerts",
    "/console/api/",
    "/push/",
    "/exchange/ngsi-ld/notify",
)
# The console's event stream never ends by itself: not a request/response operation.
EXCLUDED = ("/console/api/events",)
# Per operation; SITROOM_API_FUZZ_EXAMPLES=500 for a deeper run by hand (docs/security.md).
MAX_EXAMPLES = int(os.environ.get("SITROOM_API_FUZZ_EXAMPLES", "12"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


# The app is built when the module is collected (schemathesis makes one test per operation of its
# document then); its stores live here until the module's last test is done.
_FOLDER = tempfile.TemporaryDirectory(prefix="sitroom-openapi-")
# Ingest's verdict on what is pushed (time limits, sensor directory), as the API process has it.
_ADMISSION = Admission.from_settings(CloudSettings())
_CLOSE: list[Callable[[], None]] = []


def _app() -> tuple[FastAPI, dict[str, str]]:
    folder = Path(_FOLDER.name)
    worksites = WorksiteStore.open(f"sqlite:///{folder / 'worksites.db'}", areas=ServiceAreas.load())
    load_demo(worksites, datetime.now(UTC))
    alerts = AlertStore(f"sqlite:///{folder / 'alerts.db'}")
    now = datetime.now(UTC)
    for n, org in enumerate(("publiacqua", "alia", MUNICIPALITY)):  # alerts ids 1..3 to act on
        alerts.fire(
            Alert(rule="parking-full", org=org, entity=f"p-{n}", gateway="gw-1", kind="parking",
                  severity="warning", state="firing", since=now, ts=now, message=f"car park {n} full")
        )  # fmt: skip
    console = open_console(
        folder / "console", worksites=worksites, alerts=alerts, influx=None, orgs=worksites.orgs
    )
    add_demo_operators(console.store)
    # The ways in as `sitroom cloud api --push` has them; their InfluxDB is the test server's,
    # which only a fixture knows: `client` puts ways in on it before the first request.
    nowhere = DirectIngest(InfluxClient("http://127.0.0.1:9", "none"), _ADMISSION, instance="http-openapi")
    app = create_app(
        worksites, alerts=alerts, console=console, ways_in=WaysIn.over(nowhere, BatchLedger(worksites.engine))
    )
    _CLOSE.extend([worksites.close, alerts.engine.dispose, console.store.engine.dispose, _FOLDER.cleanup])
    cookie = SessionSigner(console.secret).sign("anna")  # anna, the municipality's operator
    headers = {
        "Authorization": f"Bearer {worksites.orgs.issue_token(MUNICIPALITY, 'openapi-test')}",
        "X-Sitroom-Console": "1",
        "Cookie": f"sitroom_console={cookie}",
    }
    return app, headers


APP, HEADERS = _app()
SCHEMA = (
    schemathesis.openapi.from_dict(APP.openapi())
    .include(path_regex="^(" + "|".join(p.replace("/", "\\/") for p in COVERED) + ")")
    .exclude(path=list(EXCLUDED))
)


@pytest.fixture(scope="module", autouse=True)
def _stores_closed_afterwards() -> Iterator[None]:
    yield
    for close in _CLOSE:
        close()


@pytest.fixture(scope="module")
def client(influxd: Influxd) -> Iterator[httpx.Client]:
    """THE app on a real uvicorn, and an HTTP client on it. (Not schemathesis' own transport:
    requests' pool does not work beside urllib3-future, which grafana-client's niquests installs
    in urllib3's place.) What is pushed is stored in a database of its own on the test InfluxDB."""
    influx = InfluxClient(influxd.url, unique("openapi_"))
    influx.create_database()
    direct = DirectIngest(influx, _ADMISSION, instance="http-openapi")
    ways_in = WaysIn.over(direct, BatchLedger(APP.state.worksite_store.engine))
    APP.state.push, APP.state.ngsi_ld = ways_in.push, ways_in.notifications
    try:
        with ThreadedApiServer(APP) as server, httpx.Client(base_url=server.url, timeout=60) as http:
            yield http
    finally:
        influx.drop_database()
        influx.close()


def _send(http: httpx.Client, case: Any) -> httpx.Response:
    request = case.as_transport_kwargs(base_url=str(http.base_url), headers=HEADERS)
    body: dict[str, Any] = {}
    if "json" in request:
        body["json"] = request["json"]
    elif isinstance(request.get("data"), bytes | str):
        body["content"] = request["data"]
    elif request.get("data") is not None:
        body["data"] = request["data"]
    headers = dict(request.get("headers") or {})
    if request.get("cookies"):
        generated = "; ".join(f"{k}={v}" for k, v in request["cookies"].items())
        headers["Cookie"] = f"{headers['Cookie']}; {generated}" if "Cookie" in headers else generated
    return http.request(
        request["method"], request["url"], params=request.get("params"), headers=headers, **body
    )


def test_a_refusal_is_documented_with_the_shape_it_has() -> None:
    # Issue 18 point 13: FastAPI documented 422 as {"detail": [...]} while the app answers
    # {"detail": "...", "errors": [...]}, and documented no 401, 403, 404, 409 or 413.
    document = APP.openapi()
    patch = document["paths"]["/worksites/{worksite_id}"]["patch"]["responses"]
    assert {"400", "401", "403", "404", "409", "413", "422"} <= patch.keys()
    assert patch["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ValidationRefusal"
    }
    refusal = document["components"]["schemas"]["ValidationRefusal"]
    assert refusal["required"] == ["detail", "errors"]
    assert refusal["properties"]["detail"]["type"] == "string"
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert "429" in document["paths"]["/console/api/login"]["post"]["responses"]


def test_every_covered_router_is_in_the_document() -> None:
    paths = APP.openapi()["paths"]
    for prefix in COVERED:
        assert any(p.startswith(prefix) for p in paths), f"no operation under {prefix}"


@SCHEMA.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_the_api_answers_as_its_openapi_document_says(case: Any, client: httpx.Client) -> None:
    case.validate_response(_send(client, case), checks=CHECKS)
