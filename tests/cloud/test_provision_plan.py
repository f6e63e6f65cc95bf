"""`sitroom provision apply PLAN`: a deployment's provisioning from one file, run again and again.

What the broker does with the result is proved on Debian's mosquitto in
tests/test_docker_compose.py (the compose plan); here the command and its files.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from cloud.apps.cli.provision import group as provision

from support import REPO

SENSOR = "driver=sim_parking,id=p-1,place=mercatale"


def run(folder: Path, *args: str, ok: bool = True) -> Result:
    result = CliRunner().invoke(provision, ["--dir", str(folder), *args], catch_exceptions=False)
    assert (result.exit_code == 0) == ok, result.output
    return result


def write_plan(tmp_path: Path, plan: dict[str, object]) -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan), encoding="utf-8")
    return path


PLAN: dict[str, object] = {
    "broker": {
        "port": 1883,
        "tls_port": None,
        "bind_address": "0.0.0.0",
        "user": "nobody-here",
        "broker_dir": "/etc/sitroom/mosquitto",
        "data_dir": "/mosquitto/data/",
    },
    "services": [{"id": "ingest"}, {"id": "healthcheck", "role": "probe"}],
    "gateways": [
        {"id": "gw-a", "from": "/configs/gw-mercatale.yaml", "install_dir": "/run/sitroom/mqtt"},
        {"id": "gw-b", "org": "comune-prato", "sensors": [SENSOR]},
    ],
    "exports": [
        {"to": "/export/broker", "broker": True, "owner": "1883:1883"},
        {"to": "/export/ingest", "identity": "svc.ingest", "owner": "10001:10001"},
        {"to": "/export/gw-a", "identity": "gw-a", "owner": "10001:10001"},
        {"to": "/export/health", "identity": "healthcheck", "mosquitto_clients": True},
    ],
}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A stand-in for the container's file system: the plan's absolute paths live under it."""
    r = tmp_path / "root"
    (r / "configs").mkdir(parents=True)
    (r / "configs" / "gw-mercatale.yaml").write_bytes(
        (REPO / "firmware_configs" / "gw-mercatale.yaml").read_bytes()
    )
    return r


def snapshot(*folders: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for f in folders for p in sorted(f.rglob("*")) if p.is_file()}


def test_applying_a_plan_twice_changes_nothing_and_keeps_every_secret(tmp_path: Path, root: Path) -> None:
    plan = write_plan(tmp_path, PLAN)
    first = run(tmp_path / "prov", "apply", str(plan), "--root", str(root))
    before = snapshot(tmp_path / "prov", root / "export")

    second = run(tmp_path / "prov", "apply", str(plan), "--root", str(root))

    assert "service svc.ingest: added" in first.output
    assert "gateway gw-a: added" in first.output
    assert "export /export/ingest (svc.ingest): updated: password" in first.output
    assert "service svc.ingest: unchanged" in second.output
    assert "broker files updated" not in second.output
    assert "export /export/gw-a (gw-a): unchanged" in second.output
    assert second.output.rstrip().endswith("4 identities, 4 exports, nothing changed")
    assert snapshot(tmp_path / "prov", root / "export") == before


def test_each_export_holds_only_what_its_container_needs_in_private_files(tmp_path: Path, root: Path) -> None:
    run(tmp_path / "prov", "apply", str(write_plan(tmp_path, PLAN)), "--root", str(root))
    export = root / "export"
    ingest_pw = (tmp_path / "prov" / "identities" / "svc.ingest" / "password").read_text()

    assert sorted(p.name for p in (export / "ingest").iterdir()) == ["password"]
    assert (export / "ingest" / "password").read_text() == ingest_pw
    assert sorted(p.name for p in (export / "gw-a").iterdir()) == ["gateway.yaml", "password"]
    assert sorted(p.name for p in (export / "broker").iterdir()) == ["acl", "mosquitto.conf", "passwd"]
    for path in export.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), f"{path}: {mode:o}"
    if os.geteuid() == 0:  # only root may hand files over; a rehearsal as a user keeps them
        assert (export / "broker" / "passwd").stat().st_uid == 1883
        assert (export / "ingest").stat().st_uid == 10001
        assert (export / "gw-a" / "password").stat().st_gid == 10001


def test_a_gateway_config_names_its_org_from_the_draft_and_its_password_where_it_is_mounted(
    tmp_path: Path, root: Path
) -> None:
    run(tmp_path / "prov", "apply", str(write_plan(tmp_path, PLAN)), "--root", str(root))
    config = yaml.safe_load((root / "export" / "gw-a" / "gateway.yaml").read_text())

    assert config["org"] == "comune-prato"  # from firmware_configs/gw-mercatale.yaml
    assert config["broker"]["username"] == "gw-a"
    assert config["broker"]["password_file"] == "/run/sitroom/mqtt/password"
    assert "password" not in config["broker"]


def test_the_broker_config_names_the_paths_the_broker_sees_and_no_pid_file(
    tmp_path: Path, root: Path
) -> None:
    run(tmp_path / "prov", "apply", str(write_plan(tmp_path, PLAN)), "--root", str(root))
    conf = (root / "export" / "broker" / "mosquitto.conf").read_text()

    assert "allow_anonymous false" in conf
    assert "password_file /etc/sitroom/mosquitto/passwd" in conf
    assert "acl_file /etc/sitroom/mosquitto/acl" in conf
    assert "persistence_location /mosquitto/data/" in conf
    assert "user nobody-here" in conf  # a user of the broker's machine, not of this one
    assert "listener 1883 0.0.0.0" in conf
    assert "pid_file" not in conf
    assert "cafile" not in conf  # no TLS listener


def test_mosquitto_client_options_carry_the_identity_and_nothing_else(tmp_path: Path, root: Path) -> None:
    run(tmp_path / "prov", "apply", str(write_plan(tmp_path, PLAN)), "--root", str(root))
    password = (tmp_path / "prov" / "identities" / "svc.healthcheck" / "password").read_text().strip()

    options = (root / "export" / "health" / "mosquitto_sub").read_text()

    assert options == f"-u svc.healthcheck\n-P {password}\n"
    assert (root / "export" / "health" / "mosquitto_pub").read_text() == options


def test_a_rotated_password_reaches_the_export_on_the_next_apply(tmp_path: Path, root: Path) -> None:
    plan = write_plan(tmp_path, PLAN)
    run(tmp_path / "prov", "apply", str(plan), "--root", str(root))
    old = (root / "export" / "ingest" / "password").read_text()
    run(tmp_path / "prov", "service", "add", "--id", "ingest", "--rotate")

    out = run(tmp_path / "prov", "apply", str(plan), "--root", str(root)).output

    assert "export /export/ingest (svc.ingest): updated: password" in out
    assert (root / "export" / "ingest" / "password").read_text() != old


def test_a_plan_never_revokes_an_identity_it_no_longer_lists(tmp_path: Path, root: Path) -> None:
    run(tmp_path / "prov", "apply", str(write_plan(tmp_path, PLAN)), "--root", str(root))
    smaller = dict(PLAN, gateways=[], exports=[])

    run(tmp_path / "prov", "apply", str(write_plan(tmp_path, smaller)), "--root", str(root))

    assert "user gw-a\n" in (tmp_path / "prov" / "mosquitto" / "acl").read_text()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"servces": []}, "servces: Extra inputs are not permitted"),
        ({"services": [{"id": "indexer"}]}, "service 'indexer' needs a role"),
        ({"exports": [{"to": "relative/x", "broker": True}]}, "exports.0.to: String should match pattern"),
        ({"exports": [{"to": "/x", "broker": True, "identity": "svc.ingest"}]}, "either `broker: true`"),
        ({"exports": [{"to": "/x", "identity": "svc.ingest", "owner": "sitroom"}]}, "exports.0.owner"),
    ],
)
def test_a_bad_plan_is_refused_with_the_path_and_value(
    tmp_path: Path, root: Path, change: dict[str, object], message: str
) -> None:
    result = run(
        tmp_path / "prov", "apply", str(write_plan(tmp_path, PLAN | change)), "--root", str(root), ok=False
    )

    assert message in result.output
    assert not (tmp_path / "prov" / "registry.json").exists()


def test_an_export_of_an_unknown_identity_is_refused_and_nothing_is_saved(tmp_path: Path, root: Path) -> None:
    plan = PLAN | {"exports": [{"to": "/export/x", "identity": "svc.nobody"}]}

    result = run(tmp_path / "prov", "apply", str(write_plan(tmp_path, plan)), "--root", str(root), ok=False)

    assert "no identity 'svc.nobody'" in result.output
    assert not (tmp_path / "prov" / "registry.json").exists()


def test_the_broker_command_can_drop_the_tls_listener(tmp_path: Path) -> None:
    run(tmp_path / "prov", "ca", "init")
    run(tmp_path / "prov", "broker", "--port", "18830", "--tls-port", "18883")

    out = run(tmp_path / "prov", "broker", "--no-tls").output

    conf = (tmp_path / "prov" / "mosquitto" / "mosquitto.conf").read_text()
    assert "mqtts://" not in out
    assert "listener 18830 127.0.0.1" in conf
    assert "cafile" not in conf
    assert "no listener" in run(tmp_path / "prov", "broker", "--no-plain", "--no-tls", ok=False).output
