"""InfluxDB per the data policy (decision 0017): databases, the writer and one reader per
organisation, converged idempotently on a real influxd with authentication."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cloud.dev.servers import Influxd
from cloud.io.influx.policy import DataPolicy
from cloud.provision.influx_users import InfluxUser, OrgReader, ensure_org_access

from support import REPO

ADMIN, WRITER = InfluxUser("admin", "a-pw"), InfluxUser("sitroom-writer", "w-pw")
POLICY = DataPolicy.load(REPO / "deploy" / "data-policy.yaml", "sitroom")


@pytest.fixture
def influxd(tmp_path: Path) -> Iterator[Influxd]:
    server = Influxd(tmp_path / "influxd", auth=True).start()
    yield server
    server.stop()


def readers(city_is_municipality: bool = True) -> list[OrgReader]:
    return [
        OrgReader("alia", InfluxUser("reader.alia", "r1"), is_municipality=False),
        OrgReader(
            "comune-prato", InfluxUser("reader.comune-prato", "r2"), is_municipality=city_is_municipality
        ),
    ]


def grants(url: str, user: str) -> dict[str, str]:
    r = httpx.post(f"{url}/query", data={"q": f'SHOW GRANTS FOR "{user}"'}, auth=(ADMIN.name, ADMIN.password))
    rows = [row for s in r.json()["results"][0].get("series", []) for row in s["values"]]
    return {db: privilege for db, privilege in rows if privilege != "NO PRIVILEGES"}  # what a revoke leaves


def test_each_organisation_gets_its_database_and_a_reader_of_it_and_of_the_shared_one(
    influxd: Influxd,
) -> None:
    first = ensure_org_access(influxd.url, POLICY, admin=ADMIN, writer=WRITER, readers=readers())

    assert "created admin admin" in first
    assert grants(influxd.url, "reader.alia") == {"sitroom": "READ", "sitroom_alia": "READ"}
    assert grants(influxd.url, "reader.comune-prato") == {
        "sitroom": "READ", "sitroom_alia": "READ", "sitroom_comune-prato": "READ",
    }  # fmt: skip
    assert set(grants(influxd.url, "sitroom-writer").values()) == {"WRITE"}
    assert ensure_org_access(influxd.url, POLICY, admin=ADMIN, writer=WRITER, readers=readers()) == []


def test_a_reader_loses_what_the_policy_no_longer_gives_it(influxd: Influxd) -> None:
    ensure_org_access(influxd.url, POLICY, admin=ADMIN, writer=WRITER, readers=readers())

    done = ensure_org_access(influxd.url, POLICY, admin=ADMIN, writer=WRITER, readers=readers(False))

    assert "revoked READ on sitroom_alia from reader.comune-prato" in done
    assert grants(influxd.url, "reader.comune-prato") == {"sitroom": "READ", "sitroom_comune-prato": "READ"}


def test_every_database_has_the_raw_and_rollup_policies_and_the_rollups(influxd: Influxd) -> None:
    ensure_org_access(influxd.url, POLICY, admin=ADMIN, writer=WRITER, readers=readers())

    for db in ("sitroom", "sitroom_alia"):
        r = httpx.post(
            f"{influxd.url}/query",
            data={"q": f'SHOW RETENTION POLICIES ON "{db}"'},
            auth=(ADMIN.name, ADMIN.password),
        )
        names = {row[0] for row in r.json()["results"][0]["series"][0]["values"]}
        assert {"raw", "rollup", "meta"} <= names, db
