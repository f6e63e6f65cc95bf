"""`sitroom cloud api --push` as production starts it: the CLI, SITROOM_* settings, a real port."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from cloud.core.geo import ServiceAreas
from cloud.core.orgs import Organisation, Role
from cloud.dev.servers import env_without_proxies, free_port
from cloud.io.influx.client import InfluxClient
from cloud.worksites.store import WorksiteStore

from .ways import UTILITY, batch, fix
from support import REPO, wait_until


@pytest.fixture
def api(tmp_path: Path, influx_db: InfluxClient) -> Iterator[tuple[str, str]]:
    db = f"sqlite:///{tmp_path / 'api.db'}"
    store = WorksiteStore.open(db, areas=ServiceAreas.load())
    store.orgs.add(Organisation(id=UTILITY, name="Alia", role=Role.UTILITY))
    store.close()
    port = free_port()
    env = {
        **env_without_proxies(),
        "SITROOM_INFLUX_URL": influx_db.url,
        "SITROOM_INFLUX_DB": influx_db.database,
        # The installation records, as in production: the utility's fleet may send, and no
        # vehicle another organisation installed.
        "SITROOM_SENSOR_DIRECTORY": str(REPO / "firmware_configs"),
    }
    log = tmp_path / "api.log"
    cmd = [sys.executable, "-m", "edge.cli", "cloud", "api", "--push", "--port", str(port), "--db", db,
           "--token-for", UTILITY]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"

    def ready() -> str | None:
        found = re.search(rf"token {UTILITY} (srt_\S+)", log.read_text(errors="replace"))
        try:
            up = httpx.get(url + "/openapi.json", timeout=1, trust_env=False).status_code == 200
        except httpx.HTTPError:
            up = False
        return found.group(1) if found and up else None

    try:
        token = wait_until(ready, 60, what=f"the API on {url}")
        yield url, token
    finally:
        proc.terminate()
        proc.wait(30)


def test_sitroom_cloud_api_push_stores_a_utility_s_batch_in_the_configured_influxdb_with_ingest_s_verdict(
    api: tuple[str, str], influx_db: InfluxClient
) -> None:
    url, token = api
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "wiring-1"}

    response = httpx.post(
        url + "/push/v1/readings",
        content=orjson.dumps(batch([fix("v-alia-01")])),
        headers=headers,
        trust_env=False,
    )

    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 1
    assert influx_db.series('SELECT count("lat") FROM "fleet"')[0]["values"][0][1] == 1
    foreign = httpx.post(
        url + "/push/v1/readings",
        content=orjson.dumps(batch([fix("v-bus-101")])),
        headers={**headers, "Idempotency-Key": "wiring-2"},
        trust_env=False,
    ).json()
    assert (foreign["refused"], foreign["verdicts"][0]["reason"]) == (1, "forbidden")
    assert "autolinee-toscane" in foreign["verdicts"][0]["message"]
    notify = httpx.post(url + "/exchange/ngsi-ld/notify", content=b"{}", headers=headers, trust_env=False)
    assert notify.status_code == 422  # the receiver is served too
