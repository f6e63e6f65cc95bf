"""InfluxDB users for an authenticated deployment, on a real influxd with `auth-enabled = true`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from cloud.apps.cli.provision import group
from cloud.dev.servers import Influxd
from cloud.provision.influx_users import InfluxAuthError, InfluxUser, ensure_users

ADMIN = InfluxUser("admin", "adm'in\\pw")  # a quote and a backslash: the escaping is exercised
WRITER = InfluxUser("sitroom-writer", "w-pass")
READER = InfluxUser("grafana-reader", "r-pass")


class AuthInfluxd(Influxd):
    """influxd as a deployment runs it: every request must authenticate."""

    def write_config(self) -> Path:
        path = super().write_config()
        text = path.read_text()
        assert "[http]\n  enabled = true\n" in text
        path.write_text(
            text.replace("[http]\n  enabled = true\n", "[http]\n  enabled = true\n  auth-enabled = true\n")
        )
        return path


@pytest.fixture
def influxd(tmp_path: Path) -> Iterator[AuthInfluxd]:
    """A fresh server per test (it starts in well under a second): each starts with no user."""
    server = AuthInfluxd(tmp_path / "influxd-auth").start()
    yield server
    server.stop()


def write(url: str, user: InfluxUser | None, line: str = "m,sensor=s v=1") -> int:
    auth = httpx.BasicAuth(user.name, user.password) if user else None
    r = httpx.post(
        f"{url}/write", params={"db": "sitroom"}, content=line, auth=auth, trust_env=False, timeout=10
    )
    return r.status_code


def query(url: str, user: InfluxUser | None, q: str) -> httpx.Response:
    auth = httpx.BasicAuth(user.name, user.password) if user else None
    return httpx.get(f"{url}/query", params={"db": "sitroom", "q": q}, auth=auth, trust_env=False, timeout=10)


def refused(r: httpx.Response) -> bool:
    body = r.json()
    return r.status_code >= 400 or "error" in body or any("error" in x for x in body.get("results", []))


def test_users_are_created_once_and_each_can_do_only_its_job(influxd: AuthInfluxd) -> None:
    first = ensure_users(influxd.url, "sitroom", admin=ADMIN, writer=WRITER, reader=READER)
    second = ensure_users(influxd.url, "sitroom", admin=ADMIN, writer=WRITER, reader=READER)

    assert first == [
        "created admin admin",
        "created write user sitroom-writer",
        "created read user grafana-reader",
    ]
    assert second == []  # idempotent: nothing left to do
    assert write(influxd.url, WRITER) == 204
    assert write(influxd.url, READER) == 403
    assert write(influxd.url, None) == 401
    assert query(influxd.url, READER, "SELECT * FROM m").json()["results"][0]["series"][0]["values"]
    assert refused(query(influxd.url, WRITER, "SELECT * FROM m"))
    assert query(influxd.url, None, "SELECT * FROM m").status_code == 401
    assert refused(query(influxd.url, READER, "DROP DATABASE sitroom"))


def test_running_again_converges_a_changed_password_and_removes_stray_admin_rights(
    influxd: AuthInfluxd,
) -> None:
    ensure_users(influxd.url, "sitroom", admin=ADMIN, writer=WRITER, reader=READER)
    httpx.post(
        f"{influxd.url}/query",
        data={"q": 'GRANT ALL PRIVILEGES TO "grafana-reader"'},
        auth=httpx.BasicAuth(ADMIN.name, ADMIN.password),
        trust_env=False,
    )
    new_reader = InfluxUser(READER.name, "rotated")

    done = ensure_users(influxd.url, "sitroom", admin=ADMIN, writer=WRITER, reader=new_reader)

    assert done == ["revoked admin rights of grafana-reader"]
    assert query(influxd.url, READER, "SHOW DATABASES").status_code == 401
    assert query(influxd.url, new_reader, "SELECT * FROM m").status_code == 200
    assert write(influxd.url, new_reader) == 403


def test_a_wrong_admin_password_is_an_error_that_names_no_secret(influxd: AuthInfluxd) -> None:
    ensure_users(influxd.url, "sitroom", admin=ADMIN, writer=WRITER, reader=READER)

    with pytest.raises(InfluxAuthError) as caught:
        ensure_users(influxd.url, "sitroom", admin=InfluxUser("admin", "wrong"), writer=WRITER, reader=READER)

    assert caught.value.status == 401
    assert "wrong" not in str(caught.value)
    assert "w-pass" not in str(caught.value)
    assert "password=***" in repr(WRITER)


def test_the_cli_takes_passwords_from_the_environment_and_prints_none(influxd: AuthInfluxd) -> None:
    env = {
        "SITROOM_INFLUX_ADMIN_PASSWORD": ADMIN.password,
        "SITROOM_INFLUX_WRITE_PASSWORD": WRITER.password,
        "SITROOM_INFLUX_READ_PASSWORD": READER.password,
    }
    args = ["influx-users", "--url", influxd.url, "--writer-user", WRITER.name, "--reader-user", READER.name]

    first = CliRunner().invoke(group, args, env=env, catch_exceptions=False)
    second = CliRunner().invoke(group, args, env=env, catch_exceptions=False)

    assert first.exit_code == 0, first.output
    assert "created write user sitroom-writer" in first.output
    assert second.exit_code == 0, second.output
    assert "created" not in second.output
    assert not any(p in first.output + second.output for p in env.values())
    assert write(influxd.url, WRITER) == 204
