"""`sitroom provision`: idempotent commands, tight files, no secret printed unless asked.

What the broker does with the generated files is proved in tests/e2e/test_broker_security.py;
here the files and the commands themselves.
"""

from __future__ import annotations

import base64
import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cloud.apps.cli.provision import group as provision
from cloud.provision.acl import acl_file
from cloud.provision.csv_onboarding import CsvError, read_rows
from cloud.provision.passwords import PasswordHashError, hash_password, verify
from cloud.provision.registry import IdentityRegistry

REPO = Path(__file__).resolve().parents[2]
SENSOR = "driver=sim_parking,id=p-1,place=mercatale"
QUOTED = f'"{SENSOR}"'  # a CSV cell with commas is quoted


def run(folder: Path, *args: str, ok: bool = True) -> Result:
    result = CliRunner().invoke(provision, ["--dir", str(folder), *args], catch_exceptions=False)
    assert (result.exit_code == 0) == ok, result.output
    return result


def creds(folder: Path, username: str) -> dict[str, str]:
    data: dict[str, str] = json.loads((folder / "identities" / username / "credentials.json").read_text())
    return data


def check_config(*files: Path) -> subprocess.CompletedProcess[str]:
    # A subprocess, as a technician runs it: `cloud` may not import `gateway` (test_architecture).
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", "gateway", "check-config", *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "prov"
    run(d, "ca", "init")
    run(d, "broker", "--port", "18830", "--tls-port", "18883")
    return d


# --- passwords ------------------------------------------------------------------------------


def test_our_hash_is_byte_for_byte_what_mosquitto_passwd_writes(tmp_path: Path) -> None:
    passwd = tmp_path / "passwd"
    subprocess.run(
        ["mosquitto_passwd", "-c", "-b", str(passwd), "alice", "s3cret pass"], check=True, timeout=30
    )
    theirs = passwd.read_text().strip().split(":", 1)[1]
    _, seven, iterations, salt_b64, _ = theirs.split("$")

    ours = hash_password("s3cret pass", salt=base64.b64decode(salt_b64), iterations=int(iterations))

    assert seven == "7"
    assert ours == theirs
    assert verify("s3cret pass", theirs)
    assert not verify("s3cret pasS", theirs)


def test_a_fresh_hash_has_mosquitto_2_parameters_and_a_new_salt() -> None:
    first, second = hash_password("pw"), hash_password("pw")

    assert first.startswith("$7$101$")
    assert first != second
    assert verify("pw", first)
    assert verify("pw", second)


@pytest.mark.parametrize("bad", ["plain", "$7$101$!!$??", "$9$x$y$z"])
def test_a_malformed_hash_is_an_error_not_a_match(bad: str) -> None:
    with pytest.raises(PasswordHashError):
        verify("pw", bad)


# --- idempotence, secrets, permissions -------------------------------------------------------


def test_adding_a_gateway_twice_changes_nothing_and_keeps_its_password(folder: Path) -> None:
    first = run(folder, "gateway", "add", "--id", "gw-a", "--org", "comune-prato", "--sensor", SENSOR)
    password = creds(folder, "gw-a")["password"]
    registry = (folder / "registry.json").read_text()
    passwd = (folder / "mosquitto" / "passwd").read_text()

    second = run(folder, "gateway", "add", "--id", "gw-a", "--org", "comune-prato", "--sensor", SENSOR)

    assert "gateway gw-a: added" in first.output
    assert "gateway gw-a: unchanged" in second.output
    assert "broker files updated" not in second.output
    assert creds(folder, "gw-a")["password"] == password
    assert (folder / "registry.json").read_text() == registry
    assert (folder / "mosquitto" / "passwd").read_text() == passwd


def test_rotating_issues_a_new_password_and_the_old_one_stops_matching(folder: Path) -> None:
    run(folder, "gateway", "add", "--id", "gw-a", "--org", "comune-prato", "--sensor", SENSOR)
    old = creds(folder, "gw-a")["password"]

    out = run(
        folder, "gateway", "add", "--id", "gw-a", "--org", "comune-prato", "--sensor", SENSOR, "--rotate"
    )

    new = creds(folder, "gw-a")["password"]
    line = next(
        x for x in (folder / "mosquitto" / "passwd").read_text().splitlines() if x.startswith("gw-a:")
    )
    assert "updated: password" in out.output
    assert new != old
    assert verify(new, line.split(":", 1)[1])
    assert not verify(old, line.split(":", 1)[1])


def test_secrets_are_printed_only_when_asked(folder: Path) -> None:
    quiet = run(folder, "gateway", "add", "--id", "gw-a", "--org", "comune-prato", "--sensor", SENSOR)
    password = creds(folder, "gw-a")["password"]
    shown = run(folder, "show", "gw-a")
    loud = run(
        folder, "gateway", "add", "--id", "gw-a", "--org", "comune-prato", "--sensor", SENSOR, "--show-secret"
    )
    listed = run(folder, "list", "--json")

    assert password not in quiet.output
    assert password not in shown.output
    assert "--show-secret" in shown.output
    assert password not in listed.output
    assert password in loud.output
    assert password in run(folder, "show", "gw-a", "--show-secret").output


def test_every_file_is_0600_and_every_folder_0700(folder: Path) -> None:
    run(
        folder,
        "gateway",
        "add",
        "--id",
        "gw-a",
        "--org",
        "comune-prato",
        "--sensor",
        SENSOR,
        "--auth",
        "both",
    )
    run(folder, "org", "add", "--id", "alia")
    run(folder, "service", "add", "--id", "ingest")

    modes = {p.relative_to(folder): stat.S_IMODE(p.stat().st_mode) for p in [folder, *folder.rglob("*")]}

    assert {p: m for p, m in modes.items() if (folder / p).is_dir() and m != 0o700} == {}
    assert {p: m for p, m in modes.items() if (folder / p).is_file() and m != 0o600} == {}
    assert Path("ca/ca.key") in modes
    assert Path("identities/gw-a/client.key") in modes
    assert Path("mosquitto/certs/server.key") in modes


def test_the_broker_config_turns_anonymous_off_and_sets_the_queue_limits(folder: Path) -> None:
    conf = (folder / "mosquitto" / "mosquitto.conf").read_text().splitlines()

    assert "allow_anonymous false" in conf
    assert "listener 18830 127.0.0.1" in conf
    assert "listener 18883 127.0.0.1" in conf
    assert f"password_file {folder / 'mosquitto' / 'passwd'}" in conf
    assert f"acl_file {folder / 'mosquitto' / 'acl'}" in conf
    # shared/NOTES.md: the defaults (1000 queued, 20 in flight) drop data silently.
    assert any(line.startswith("max_queued_messages 100000") for line in conf)
    assert any(line.startswith("max_queued_bytes ") for line in conf)
    assert any(line.startswith("max_inflight_messages ") for line in conf)


def test_broker_settings_given_once_are_kept_by_later_commands(folder: Path) -> None:
    run(folder, "broker", "--client-certs", "required")
    run(folder, "gateway", "add", "--id", "gw-a", "--org", "comune-prato", "--sensor", SENSOR)

    conf = (folder / "mosquitto" / "mosquitto.conf").read_text().splitlines()

    assert "listener 18830 127.0.0.1" in conf
    assert "require_certificate true" in conf
    assert "use_identity_as_username true" in conf


# --- gateway configs --------------------------------------------------------------------------


def test_the_written_gateway_config_passes_the_gateway_check(folder: Path) -> None:
    run(folder, "gateway", "add", "--id", "gw-pw", "--org", "comune-prato", "--sensor", SENSOR,
        "--lat", "43.88", "--lon", "11.10", "--location", "lamp post")  # fmt: skip
    run(folder, "gateway", "add", "--id", "gw-cert", "--org", "comune-prato", "--auth", "cert",
        "--from", str(REPO / "firmware_configs" / "gw-stazione.yaml"))  # fmt: skip
    run(folder, "gateway", "add", "--id", "gw-plain", "--org", "comune-prato", "--sensor", SENSOR,
        "--broker-url", "mqtt://127.0.0.1:18830", "--install-dir", "/etc/sitroom")  # fmt: skip
    files = [folder / "identities" / g / "gateway.yaml" for g in ("gw-pw", "gw-cert", "gw-plain")]

    checked = check_config(*files)

    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.count(": ok (comune-prato/") == 3
    plain = (folder / "identities" / "gw-plain" / "gateway.yaml").read_text()
    assert "password_file: /etc/sitroom/password" in plain
    assert "ca_file" not in plain
    cert = (folder / "identities" / "gw-cert" / "gateway.yaml").read_text()
    assert "cert_file:" in cert
    assert "p-serraglio" in cert  # the sensors of the draft it started from


def test_a_gateway_without_sensors_is_refused_before_any_secret_is_issued(folder: Path) -> None:
    out = run(folder, "gateway", "add", "--id", "gw-empty", "--org", "comune-prato", ok=False)

    assert "at least one sensor" in out.output
    assert not (folder / "identities" / "gw-empty").exists()
    assert IdentityRegistry(folder).load().get("gw-empty") is None


def test_a_gateway_id_cannot_move_to_another_org_silently(folder: Path) -> None:
    run(folder, "gateway", "add", "--id", "gw-a", "--org", "comune-prato", "--sensor", SENSOR)

    out = run(folder, "gateway", "add", "--id", "gw-a", "--org", "alia", "--sensor", SENSOR, ok=False)

    assert "already registered as gateway of org 'comune-prato'" in out.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--id", "GW A", "--org", "comune-prato"], "must match"),
        (["--id", "gw-a", "--org", "alerts"], "reserved"),
        (["--id", "fleet", "--org", "comune-prato"], "utilities' topic prefix"),
    ],
)
def test_bad_ids_are_refused_with_the_value(folder: Path, args: list[str], message: str) -> None:
    out = run(folder, "gateway", "add", *args, "--sensor", SENSOR, ok=False)

    assert message in out.output


def test_a_revoked_gateway_leaves_the_broker_files_and_comes_back_only_with_new_secrets(folder: Path) -> None:
    run(folder, "gateway", "add", "--id", "gw-a", "--org", "comune-prato", "--sensor", SENSOR)
    old = creds(folder, "gw-a")["password"]

    run(folder, "revoke", "gw-a")
    revoked_acl = (folder / "mosquitto" / "acl").read_text()
    revoked_passwd = (folder / "mosquitto" / "passwd").read_text()
    back = run(folder, "gateway", "add", "--id", "gw-a", "--org", "comune-prato", "--sensor", SENSOR)

    assert "user gw-a" not in revoked_acl
    assert "gw-a:" not in revoked_passwd
    assert "reinstated" in back.output
    assert creds(folder, "gw-a")["password"] != old
    assert "user gw-a" in (folder / "mosquitto" / "acl").read_text()


def test_list_shows_roles_and_states(folder: Path) -> None:
    run(folder, "gateway", "add", "--id", "gw-a", "--org", "comune-prato", "--sensor", SENSOR)
    run(folder, "org", "add", "--id", "alia")
    run(folder, "service", "add", "--id", "ingest")
    run(folder, "revoke", "alia")

    rows = {r["username"]: r for r in json.loads(run(folder, "list", "--json").output)}

    assert rows["gw-a"]["role"] == "gateway"
    assert rows["org.alia"]["state"] == "revoked"
    assert rows["svc.ingest"]["service_role"] == "ingest"


def test_each_role_gets_exactly_its_topics(folder: Path) -> None:
    run(folder, "gateway", "add", "--id", "gw-a", "--org", "comune-prato", "--sensor", SENSOR)
    run(folder, "org", "add", "--id", "alia")
    run(folder, "service", "add", "--id", "rules")
    reg = IdentityRegistry(folder).load()

    acl = acl_file(reg.active())

    assert "user gw-a\ntopic write sr/v1/comune-prato/gw-a/data/+\n" in acl
    assert "topic read sr/v1/comune-prato/gw-a/config\n" in acl
    assert "topic write sr/v1/comune-prato/gw-a/config" not in acl
    assert "user org.alia\ntopic write sr/v1/alia/fleet/data/+\n" in acl
    assert "topic write sr/v1/alerts/#" in acl  # rules
    assert "pattern" not in acl  # explicit lines only: nothing follows from a username's spelling


def test_a_feed_reader_publishes_only_as_its_operator_s_source_with_its_dead_letters_and_alerts(
    folder: Path,
) -> None:
    out = run(
        folder, "service", "add", "--id", "gtfs-rt-prato", "--role", "feed", "--org", "autolinee-toscane"
    )
    reg = IdentityRegistry(folder).load()

    acl = acl_file(reg.active())

    assert acl.endswith(
        "user svc.gtfs-rt-prato\n"
        "topic write sr/v1/autolinee-toscane/gtfs-rt-prato/data/+\n"
        "topic write sr/v1/autolinee-toscane/gtfs-rt-prato/status\n"
        "topic write sr/v1/autolinee-toscane/gtfs-rt-prato/health\n"
        "topic write sr/v1/deadletter/autolinee-toscane/gtfs-rt-prato\n"
        "topic write sr/v1/alerts/autolinee-toscane/#\n"
    )  # and nothing to read: no config comes to a feed reader
    assert "sr/v1/deadletter/autolinee-toscane/gtfs-rt-prato" in out.output
    assert reg.get("svc.gtfs-rt-prato").org == "autolinee-toscane"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--id", "gtfs-rt", "--role", "feed"], "a feed reader needs the organisation it reads for"),
        (["--id", "ingest", "--org", "alia"], "only a feed reader has one"),
        (["--id", "gtfs-rt", "--role", "feed", "--org", "alerts"], "reserved"),
    ],
    ids=["feed-without-org", "org-for-ingest", "reserved-org"],
)
def test_an_organisation_goes_with_a_feed_reader_and_only_with_one(
    folder: Path, args: list[str], message: str
) -> None:
    out = run(folder, "service", "add", *args, ok=False)

    assert message in out.output


# --- CSV --------------------------------------------------------------------------------------


def test_a_csv_onboards_every_gateway_and_a_second_import_changes_nothing(
    folder: Path, tmp_path: Path
) -> None:
    sheet = tmp_path / "gateways.csv"
    sheet.write_text(
        "id,org,name,lat,lon,location,from,sensors,auth\n"
        f"gw-1,comune-prato,Uno,43.88,11.10,pole 1,,{QUOTED},password\n"
        f"gw-2,comune-prato,Due,,,,{REPO / 'firmware_configs' / 'gw-traffico.yaml'},,cert\n"
        'gw-3,alia,Tre,,,,,"driver=sim_fleet,id=v-1,route=raccolta-centro,speed_kmh=15",\n'
    )

    first = run(folder, "gateway", "import", str(sheet))
    second = run(folder, "gateway", "import", str(sheet))

    assert "3 gateways: 3 added, 0 updated, 0 unchanged" in first.output
    assert "3 gateways: 0 added, 0 updated, 3 unchanged" in second.output
    checked = check_config(*(folder / "identities" / g / "gateway.yaml" for g in ("gw-1", "gw-2", "gw-3")))
    assert checked.returncode == 0, checked.stderr


def test_a_csv_with_bad_rows_onboards_nothing_and_names_every_bad_cell(folder: Path, tmp_path: Path) -> None:
    sheet = tmp_path / "gateways.csv"
    sheet.write_text(
        "id,org,lat,lon,sensors\n"
        f"gw-1,comune-prato,43.88,11.10,{QUOTED}\n"
        f"GW 2,comune-prato,,,{QUOTED}\n"
        f"gw-3,alerts,,,{QUOTED}\n"
        f"gw-4,comune-prato,95,11,{QUOTED}\n"
        "gw-5,comune-prato,,,\n"
        f"gw-1,comune-prato,,,{QUOTED}\n"
        "gw-7,comune-prato,,,driver-only\n"
    )

    with pytest.raises(CsvError) as caught:
        read_rows(sheet)
    out = run(folder, "gateway", "import", str(sheet), ok=False)

    problems = caught.value.problems
    assert [p.split(": ")[0].rsplit(":", 1)[1] for p in problems] == ["3", "4", "5", "6", "7", "8"]
    assert f"{sheet}:3: id: must match" in problems[0]
    assert "'GW 2'" in problems[0]
    assert "org" in problems[1]
    assert "lat/lon" in problems[2]
    assert "at least one sensor" in problems[3]
    assert "already on line 2" in problems[4]
    assert "key=value" in problems[5]
    assert "gw-1" not in run(folder, "list").output
    assert f"{sheet}:3" in out.output


def test_a_csv_with_an_unknown_column_is_refused(tmp_path: Path) -> None:
    sheet = tmp_path / "gateways.csv"
    sheet.write_text("id,org,colour\ngw-1,comune-prato,red\n")

    with pytest.raises(CsvError, match="unknown: colour"):
        read_rows(sheet)


def test_a_certificate_identity_is_warned_when_the_broker_does_not_ask_for_certificates(folder: Path) -> None:
    warned = run(
        folder,
        "gateway",
        "add",
        "--id",
        "gw-c",
        "--org",
        "comune-prato",
        "--sensor",
        SENSOR,
        "--auth",
        "cert",
    )
    run(folder, "broker", "--client-certs", "required")
    fine = run(
        folder,
        "gateway",
        "add",
        "--id",
        "gw-d",
        "--org",
        "comune-prato",
        "--sensor",
        SENSOR,
        "--auth",
        "cert",
    )

    assert "--client-certs required" in warned.output
    assert "warning" not in fine.output


def test_a_password_gateway_dials_the_plain_listener_when_tls_asks_for_certificates(folder: Path) -> None:
    run(folder, "broker", "--client-certs", "required")
    run(folder, "gateway", "add", "--id", "gw-p", "--org", "comune-prato", "--sensor", SENSOR)
    run(
        folder,
        "gateway",
        "add",
        "--id",
        "gw-c",
        "--org",
        "comune-prato",
        "--sensor",
        SENSOR,
        "--auth",
        "cert",
    )

    assert creds(folder, "gw-p")["broker_url"] == "mqtt://localhost:18830"
    assert creds(folder, "gw-c")["broker_url"] == "mqtts://localhost:18883"


def test_compose_env_draws_every_missing_secret_once_and_keeps_them(tmp_path: Path) -> None:
    template = REPO / "deploy" / "compose.env.example"
    env = tmp_path / ".env"
    args = ["compose-env", "--template", str(template), "--out", str(env)]

    first = run(tmp_path / "prov", *args)
    values = env.read_text()
    second = run(tmp_path / "prov", *args)

    names = [line.split("=", 1)[0] for line in template.read_text().splitlines() if line and line[0] != "#"]
    filled = dict(line.split("=", 1) for line in values.splitlines() if line and line[0] != "#")
    assert sorted(filled) == sorted(names)
    assert all(len(v) >= 24 for v in filled.values())
    assert len(set(filled.values())) == len(names)
    assert "every secret already set" in second.output
    assert env.read_text() == values
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    assert not any(v in first.output for v in filled.values())
