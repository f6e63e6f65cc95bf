"""docker-compose.yml, the Dockerfile and the broker config they mount, checked without Docker.

The compose file is validated against the Compose Specification JSON schema vendored in
tests/data/ (see tests/data/README.md for where it comes from), then every reference in it is
followed: host paths, build context, named volumes, dependencies, healthchecks, the settings of
the cloud processes, the `sitroom` command lines and Grafana's provisioning mounts.

The broker's security is proved for real: the `provision` service's own command runs here on
a stand-in of its container (each mount a folder), Debian's `mosquitto` starts on the config it
exports, and each service's identity, read from the volume that service mounts, does what the
service needs and no more; anonymous clients are refused; provisioning again changes nothing.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import signal
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from cloud.core.alerts import Alert
from cloud.core.settings import CloudSettings, broker_address
from cloud.dev.servers import Mosquitto, ServerStartError
from cloud.worksites.alerts import publish_alerts

from support import REPO, unique, wait_until

ROOT = REPO
COMPOSE_FILE = ROOT / "docker-compose.yml"
COMPOSE_SCHEMA = Path(__file__).resolve().parent / "data" / "compose-spec.json"
PROVISION_PLAN = ROOT / "deploy" / "provision" / "compose.yaml"
DOCKERIGNORE = ROOT / ".dockerignore"
DATASOURCES = ROOT / "dashboards" / "provisioning" / "datasources" / "influxdb.yaml"
DASHBOARD_PROVIDERS = ROOT / "dashboards" / "provisioning" / "dashboards" / "sitroom.yaml"

# Mosquitto's own default for max_queued_messages; NOTES.md measured it dropping messages.
MOSQUITTO_DEFAULT_MAX_QUEUED = 1000


def compose() -> dict[str, Any]:
    # safe_load resolves the file's anchors and `<<` merge keys as Compose does.
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def sitroom_services() -> dict[str, dict[str, Any]]:
    """Services built from this repository's Dockerfile, i.e. running the `sitroom` CLI."""
    return {name: s for name, s in services().items() if "build" in s}


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def mounts(service: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(type, source, target) of each entry of `volumes`, short or long syntax."""
    for entry in service.get("volumes", []):
        if isinstance(entry, dict):
            yield entry["type"], entry.get("source", ""), entry["target"]
            continue
        source, target, *_ = entry.split(":")
        kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        yield kind, source, target


def host_path(source: str) -> Path:
    return (ROOT / source).resolve()


def mosquitto_options(conf: Path) -> dict[str, list[str]]:
    options: dict[str, list[str]] = {}
    for raw in conf.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            options.setdefault(key, []).append(value.strip())
    return options


def plan() -> dict[str, Any]:
    return yaml.safe_load(PROVISION_PLAN.read_text(encoding="utf-8"))


def mqtt_clients() -> dict[str, dict[str, Any]]:
    """Services that talk MQTT: a broker URL in their settings or on their command line."""
    return {
        name: s
        for name, s in sitroom_services().items()
        if "SITROOM_MQTT_URL" in environment(s) or {"--broker", "--mqtt-url"} & set(s["command"])
    }


# --- the Compose Specification -----------------------------------------------------------------


def compose_validator() -> jsonschema.protocols.Validator:
    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    # The schema names draft 2019-09 as `http://json-schema.org/draft/2019-09/schema#`, a URI
    # jsonschema does not recognise (it would fall back to the latest draft with a warning).
    jsonschema.Draft201909Validator.check_schema(schema)
    return jsonschema.Draft201909Validator(schema)


def schema_errors(document: object) -> list[str]:
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '(top)'}: {error.message}"
        for error in compose_validator().iter_errors(document)
    ]


def test_compose_file_is_valid_against_the_compose_specification() -> None:
    assert schema_errors(compose()) == []


@pytest.mark.parametrize(
    ("mistake", "document"),
    [
        ("misspelt top-level key", {"servics": {"a": {"image": "x"}}}),
        ("misspelt service key", {"services": {"a": {"image": "x", "depends": ["b"]}}}),
        (
            "unknown depends_on condition",
            {
                "services": {
                    "a": {"image": "x", "depends_on": {"b": {"condition": "service_ready"}}},
                    "b": {"image": "x"},
                }
            },
        ),
        ("healthcheck retries as text", {"services": {"a": {"healthcheck": {"retries": "5"}}}}),
    ],
)
def test_the_compose_schema_rejects_a_mistake(mistake: str, document: dict[str, Any]) -> None:
    assert schema_errors(document), f"the vendored schema accepted a {mistake}"


# --- references inside the compose file --------------------------------------------------------


def test_every_bind_mounted_host_path_exists() -> None:
    for name, service in services().items():
        for kind, source, target in mounts(service):
            if kind == "bind":
                assert host_path(source).exists(), f"{name}: {source} (mounted at {target})"


def test_every_build_context_and_dockerfile_exist() -> None:
    built = sitroom_services()
    assert built, "no service is built from this repository"
    for name, service in built.items():
        build = service["build"]
        context = host_path(build if isinstance(build, str) else build.get("context", "."))
        dockerfile = build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile"
        assert context.is_dir(), f"{name}: build context {context}"
        assert (context / dockerfile).is_file(), f"{name}: {dockerfile} in {context}"


def test_every_named_volume_is_declared_and_every_declared_volume_is_used() -> None:
    declared = set(compose().get("volumes") or {})
    used = {
        source for service in services().values() for kind, source, _ in mounts(service) if kind == "volume"
    }
    assert used <= declared, f"undeclared volumes: {sorted(used - declared)}"
    assert declared <= used, f"declared but unused volumes: {sorted(declared - used)}"


def test_every_dependency_is_a_service_and_healthy_ones_have_a_healthcheck() -> None:
    all_services = services()
    for name, service in all_services.items():
        depends = service.get("depends_on", {})
        if isinstance(depends, list):
            depends = {target: {"condition": "service_started"} for target in depends}
        for target, spec in depends.items():
            assert target in all_services, f"{name} depends on unknown service {target!r}"
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in all_services[target], (
                    f"{name} waits for {target} to be healthy, but {target} has no healthcheck"
                )


def test_dependencies_have_no_cycle() -> None:
    graph = {name: set(s.get("depends_on", {})) for name, s in services().items()}
    done: set[str] = set()
    while graph.keys() - done:
        ready = {name for name in graph.keys() - done if graph[name] <= done}
        assert ready, f"dependency cycle among {sorted(graph.keys() - done)}"
        done |= ready


def test_every_image_is_pinned_to_a_version() -> None:
    for name, service in services().items():
        image = service.get("image", "")
        if "build" in service:
            continue  # tagged locally, built from this repository
        repository, _, tag = image.rpartition(":")
        assert repository, f"{name}: image {image!r} has no tag"
        assert tag != "latest", f"{name}: image {image!r} floats on latest"
        assert re.match(r"\d", tag), f"{name}: image {image!r} is not pinned to a version"


def test_published_ports_are_the_documented_ones_on_loopback() -> None:
    published = {name: [str(p) for p in service.get("ports", [])] for name, service in services().items()}
    assert published["mosquitto"] == ["127.0.0.1:1883:1883"]
    assert published["influxdb"] == ["127.0.0.1:8086:8086"]
    assert published["grafana"] == ["127.0.0.1:3000:3000"]
    # Grafana's map layers are fetched by the viewer's browser from the API (dashboards/json).
    assert published["api"] == ["127.0.0.1:8080:8080"]


# --- the sitroom services ----------------------------------------------------------------------


def test_cloud_services_set_only_settings_that_cloud_settings_declares(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prefix = CloudSettings.model_config.get("env_prefix", "")
    known = {f"{prefix}{field}".upper() for field in CloudSettings.model_fields}
    cloud = {n: s for n, s in sitroom_services().items() if s["command"][0] == "cloud"}
    assert {"ingest", "rules"} <= cloud.keys()
    for name, service in cloud.items():
        env = environment(service)
        unknown = sorted(set(env) - known)
        assert not unknown, f"{name}: {unknown} are not CloudSettings fields ({sorted(known)})"
        # And the values pass CloudSettings' own validation, as at the process's start-up.
        for key in known:
            monkeypatch.delenv(key, raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        CloudSettings()


def test_service_addresses_point_at_services_of_this_file() -> None:
    all_services = services()
    listener_port = plan()["broker"]["port"]
    assert {"ingest", "rules", "api", "gw-mercatale"} <= mqtt_clients().keys()
    for name, service in mqtt_clients().items():
        env = environment(service)
        command = service["command"]
        broker_urls = [env["SITROOM_MQTT_URL"]] if "SITROOM_MQTT_URL" in env else []
        for option in ("--broker", "--mqtt-url"):
            if option in command:
                broker_urls.append(command[command.index(option) + 1])
        assert broker_urls, f"{name}: no broker address"
        for url in broker_urls:
            parts = urlsplit(url)
            assert parts.hostname == "mosquitto", f"{name}: {url}"
            assert parts.port == listener_port, f"{name}: {url} vs listener {listener_port}"
        if "SITROOM_INFLUX_URL" in env:
            assert urlsplit(env["SITROOM_INFLUX_URL"]).hostname in all_services, name
            assert env["SITROOM_INFLUX_DB"] == environment(all_services["influxdb"])["INFLUXDB_DB"]


def help_options(command_path: list[str]) -> set[str]:
    sitroom = Path(sys.executable).parent / "sitroom"
    assert sitroom.exists(), f"{sitroom} is missing: run `make setup` (pip install -e .)"
    result = subprocess.run(
        [str(sitroom), *command_path, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"sitroom {' '.join(command_path)}: {result.stderr}"
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", result.stdout))


def test_every_sitroom_command_line_names_real_subcommands_and_options() -> None:
    for name, service in sitroom_services().items():
        command = [str(part) for part in service["command"]]
        first_option = next((i for i, part in enumerate(command) if part.startswith("-")), None)
        path = command[:first_option]
        used = {part.split("=", 1)[0] for part in command if part.startswith("--")}
        unknown = used - help_options(path)
        assert not unknown, f"{name}: `sitroom {' '.join(path)}` has no option {sorted(unknown)}"


def test_gateways_run_the_config_provisioning_wrote_from_their_firmware_config() -> None:
    gateways = {n: s for n, s in sitroom_services().items() if s["command"][:2] == ["gateway", "run"]}
    planned = {g["id"]: g for g in plan()["gateways"]}
    exports = {e["to"]: e for e in plan()["exports"]}
    provision_mounts = {source: target for _, source, target in mounts(services()["provision"])}
    assert len(gateways) >= 2
    for name, service in gateways.items():
        config = PurePosixPath(service["command"][service["command"].index("--config") + 1])
        volumes = {PurePosixPath(t): s for kind, s, t in mounts(service) if kind == "volume"}
        mount = next((t for t in volumes if config.is_relative_to(t)), None)
        assert mount is not None, f"{name}: {config} is not on a volume"
        # That volume is the provision export of this very gateway ...
        export = exports[provision_mounts[volumes[mount]]]
        assert export["identity"] == name, f"{name} runs the config of {export['identity']}"
        # ... whose config is generated from firmware_configs/<name>.yaml, installed where mounted.
        gateway = planned[name]
        draft = PurePosixPath(gateway["from"])
        assert (ROOT / "firmware_configs" / draft.name).is_file(), draft
        assert draft.parent == PurePosixPath("/etc/sitroom/firmware_configs")
        assert PurePosixPath(gateway["install_dir"]) == mount
        assert config == mount / "gateway.yaml"


def test_gateways_start_only_once_ingest_has_subscribed() -> None:
    # A fresh broker keeps nothing for a session it never saw: batches published before ingest's
    # first SUBACK would be lost. Ingest's healthcheck is the file it creates after that SUBACK.
    ingest = services()["ingest"]
    ready = ingest["environment"]["SITROOM_READY_FILE"]
    assert ingest["healthcheck"]["test"] == ["CMD", "test", "-f", ready]
    gateways = {n: s for n, s in sitroom_services().items() if s["command"][:2] == ["gateway", "run"]}
    for name, service in gateways.items():
        assert service["depends_on"]["ingest"] == {"condition": "service_healthy"}, name


def test_every_gateway_keeps_its_state_on_a_volume_of_its_own() -> None:
    seen: dict[str, str] = {}
    for name, service in sitroom_services().items():
        if service["command"][:2] != ["gateway", "run"]:
            continue
        command = service["command"]
        state_dir = PurePosixPath(command[command.index("--state-dir") + 1])
        volumes = {PurePosixPath(t): s for kind, s, t in mounts(service) if kind == "volume"}
        owner = next((s for t, s in volumes.items() if state_dir.is_relative_to(t)), None)
        assert owner is not None, f"{name}: state dir {state_dir} is not on a named volume"
        assert owner not in seen, f"{name} and {seen.get(owner)} share volume {owner}"
        seen[owner] = name


# --- Grafana provisioning ----------------------------------------------------------------------


def test_grafana_mounts_what_its_provisioning_files_point_at() -> None:
    grafana = services()["grafana"]
    binds = {target: host_path(source) for kind, source, target in mounts(grafana) if kind == "bind"}
    assert binds["/etc/grafana/provisioning/datasources"] == DATASOURCES.parent
    assert binds["/etc/grafana/provisioning/dashboards"] == DASHBOARD_PROVIDERS.parent
    providers = yaml.safe_load(DASHBOARD_PROVIDERS.read_text(encoding="utf-8"))["providers"]
    for provider in providers:
        folder = binds.get(provider["options"]["path"])
        assert folder is not None, f"provider {provider['name']}: path is not mounted"
        assert list(folder.glob("*.json")), f"provider {provider['name']}: no dashboard in {folder}"
    home = PurePosixPath(environment(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert (binds[str(home.parent)] / home.name).is_file(), home


def test_the_datasource_points_at_the_influxdb_service_and_database() -> None:
    (source,) = yaml.safe_load(DATASOURCES.read_text(encoding="utf-8"))["datasources"]
    influxdb = services()["influxdb"]
    assert source["uid"] == "sitroom-influx"
    assert source["type"] == "influxdb"
    assert source["jsonData"]["version"] == "InfluxQL"
    assert urlsplit(source["url"]).hostname == "influxdb"
    assert urlsplit(source["url"]).port == 8086
    database = environment(influxdb)["INFLUXDB_DB"]
    assert source["jsonData"]["dbName"] == database
    assert source["database"] == database


# --- Mosquitto and provisioning -----------------------------------------------------------------

PROVISIONED = {"condition": "service_completed_successfully"}
SECRETS_DIR = PurePosixPath("/run/sitroom/mqtt")


def exports_by_volume() -> dict[str, dict[str, Any]]:
    """The plan's exports, by the named volume the `provision` service writes each into."""
    by_target = {e["to"]: e for e in plan()["exports"]}
    out = {}
    for kind, source, target in mounts(services()["provision"]):
        if target in by_target:
            assert kind == "volume", f"export {target} is not a named volume"
            out[source] = by_target.pop(target)
    assert not by_target, f"exports the provision service does not mount: {sorted(by_target)}"
    return out


def read_only_mounts(service: dict[str, Any]) -> dict[str, str]:
    """target -> source of the service's `:ro` mounts (short syntax, as this file writes them)."""
    return {
        str(e).split(":")[1]: str(e).split(":")[0]
        for e in service.get("volumes", [])
        if str(e).endswith(":ro")
    }


def test_the_provision_service_is_a_one_shot_run_of_the_plan() -> None:
    service = services()["provision"]
    command = service["command"]
    binds = {t: host_path(s) for kind, s, t in mounts(service) if kind == "bind"}
    plan_path = PurePosixPath(command[command.index("apply") + 1])

    assert command[0] == "provision"
    assert binds[str(plan_path.parent)] / plan_path.name == PROVISION_PLAN
    assert service["restart"] == "no"  # `unless-stopped` would run it again and again
    # Its registry and secrets outlive the container: on a named volume of their own.
    state = command[command.index("--dir") + 1]
    assert any(kind == "volume" and t == state for kind, _, t in mounts(service)), state


def test_every_mqtt_client_and_the_broker_wait_for_provisioning() -> None:
    waiting = {"mosquitto", *mqtt_clients()}
    for name in waiting:
        assert services()[name]["depends_on"]["provision"] == PROVISIONED, name


def test_the_broker_reads_the_exported_config_read_only_and_persists_on_its_own_volume() -> None:
    mosquitto = services()["mosquitto"]
    broker_export = next(v for v, e in exports_by_volume().items() if e.get("broker"))
    settings = plan()["broker"]
    ro = read_only_mounts(mosquitto)
    conf = PurePosixPath(mosquitto["command"][mosquitto["command"].index("-c") + 1])

    assert ro[settings["broker_dir"]] == broker_export
    assert conf == PurePosixPath(settings["broker_dir"]) / "mosquitto.conf"
    volumes = {t: s for kind, s, t in mounts(mosquitto) if kind == "volume" and t not in ro}
    assert PurePosixPath(settings["data_dir"]) in {PurePosixPath(t) for t in volumes}
    assert settings["tls_port"] is None  # decision 0009: plain MQTT on the private network
    # Queue limits set on purpose (NOTES.md: the defaults drop messages silently).
    assert settings["max_queued_messages"] > MOSQUITTO_DEFAULT_MAX_QUEUED
    assert settings["max_queued_bytes"] > 0
    assert settings["max_inflight_messages"] > 0


def test_every_mqtt_client_authenticates_with_its_own_identity_from_its_own_export() -> None:
    exports = exports_by_volume()
    seen: dict[str, str] = {}
    for name, service in mqtt_clients().items():
        ro = read_only_mounts(service)
        secret_volume = ro.get(str(SECRETS_DIR))
        assert secret_volume in exports, f"{name}: no provision export mounted read-only at {SECRETS_DIR}"
        identity = exports[secret_volume]["identity"]
        env = environment(service)
        if service["command"][:2] == ["gateway", "run"]:
            username = name  # the provisioned gateway.yaml names it (test above)
        else:
            username = env["SITROOM_MQTT_USERNAME"]
            assert env["SITROOM_MQTT_PASSWORD_FILE"] == str(SECRETS_DIR / "password"), name
        assert identity == username, f"{name} logs in as {username} with the secret of {identity}"
        assert username not in seen, f"{name} and {seen.get(username)} share the identity {username}"
        seen[username] = name
        assert services()[name]["depends_on"]["provision"] == PROVISIONED, name


def test_the_healthcheck_logs_in_as_a_probe_without_a_password_on_its_command_line() -> None:
    mosquitto = services()["mosquitto"]
    test = mosquitto["healthcheck"]["test"]
    xdg = next(a.split("=", 1)[1] for a in test if a.startswith("XDG_CONFIG_HOME="))
    export = exports_by_volume()[read_only_mounts(mosquitto)[xdg]]
    role = {s["id"]: s.get("role", s["id"]) for s in plan()["services"]}

    assert export["mosquitto_clients"] is True
    assert role[export["identity"].removeprefix("svc.")] == "probe"
    assert not {"-u", "-P", "--pw", "--username"} & set(test)


def test_no_broker_secret_is_in_the_compose_file_or_the_plan() -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8") + PROVISION_PLAN.read_text(encoding="utf-8")
    # Passwords are generated into volumes; the files only name where they are.
    assert "allow_anonymous" not in text
    assert not re.search(r"mqtts?://[^/\s\"]*:[^/\s\"]*@", text), "credentials in a broker URL"
    for name, service in services().items():
        for key in environment(service):
            assert not (key.startswith("SITROOM_MQTT_") and key.endswith("PASSWORD")), f"{name}: {key}"
        assert "-P" not in service.get("command", []), name


@dataclass
class ComposeRun:
    """The compose file's containers on this machine: every mount is a folder here (a bind mount
    its host path, a named volume a folder of its own, shared by the services mounting it)."""

    base: Path

    def volume(self, name: str) -> Path:
        folder = self.base / "volumes" / name
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def host(self, service: str, path: str) -> Path:
        """Where `path`, as `service`'s container sees it, is on this machine."""
        wanted = PurePosixPath(path)
        for kind, source, target in sorted(mounts(services()[service]), key=lambda m: -len(m[2])):
            if wanted.is_relative_to(target):
                side = host_path(source) if kind == "bind" else self.volume(source)
                return side / wanted.relative_to(target)
        raise AssertionError(f"{service}: {path} is on no mount")

    def root(self, service: str) -> Path:
        """A stand-in for the container's file system: each mount target a link to its side here."""
        root = self.base / "roots" / service
        for _, _, target in mounts(services()[service]):
            link = root / target.lstrip("/")
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.is_symlink():
                link.symlink_to(self.host(service, target), target_is_directory=True)
        return root

    def provision(self) -> subprocess.CompletedProcess[str]:
        """The `provision` service's command, as is, with `--root` for its container's paths."""
        root = self.root("provision")
        command = [
            str(root / a.lstrip("/")) if a.startswith("/") else a for a in services()["provision"]["command"]
        ]
        result = subprocess.run(
            [str(Path(sys.executable).parent / "sitroom"), *command, "--root", str(root)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result

    def files(self) -> dict[str, bytes]:
        return {
            str(p.relative_to(self.base)): p.read_bytes()
            for p in sorted((self.base / "volumes").rglob("*"))
            if p.is_file() and "mosquitto-data" not in p.parts
        }


class ComposeBroker(Mosquitto):
    """Debian's mosquitto on the config `provision` exported, adapted only where this machine
    differs from the container: loopback port, the mounts' paths here, and the user."""

    def __init__(self, run: ComposeRun, data_dir: Path) -> None:
        super().__init__(data_dir)
        self.run = run
        conf = services()["mosquitto"]["command"][-1]
        self.exported = run.host("mosquitto", conf)

    def write_config(self) -> Path:
        lines = []
        for raw in self.exported.read_text(encoding="utf-8").splitlines():
            line = raw
            key, _, value = raw.partition(" ")
            if key == "listener":
                line = f"listener {self.port} 127.0.0.1"
            elif key in ("password_file", "acl_file"):
                line = f"{key} {self.run.host('mosquitto', value)}"
            elif key == "persistence_location":
                line = f"{key} {self.run.host('mosquitto', value)}/"
            elif key == "user":
                # Started as root, mosquitto drops to this user: the one running the tests.
                line = f"user {getpass.getuser()}"
            lines.append(line)
        self.config_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return self.config_path


NOT_AUTHORIZED = 0x87  # MQTT 5 PUBACK reason code [MQTT-3.4.2.1]
ACCEPTED = (0x00, 0x10)  # success, or "no matching subscribers"


@dataclass
class Client:
    """A paho MQTT 5 client recording the broker's answers."""

    port: int
    username: str | None
    password: str | None
    messages: list[tuple[str, bytes]] = field(default_factory=list)
    pubacks: dict[int, int] = field(default_factory=dict)
    verdict: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.mqtt = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=unique("compose-"), protocol=mqtt.MQTTv5
        )
        if self.username is not None:
            self.mqtt.username_pw_set(self.username, self.password)
        self.mqtt.on_connect = lambda _c, _u, _f, rc, _p=None: self.verdict.append(str(rc))
        self.mqtt.on_message = self._on_message
        self.mqtt.on_publish = self._on_publish

    def _on_message(self, _c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((msg.topic, bytes(msg.payload)))

    def _on_publish(self, _c: object, _u: object, mid: int, rc: ReasonCode, _p: object) -> None:
        with self.lock:
            self.pubacks[mid] = rc.value

    def start(self) -> str:
        """Connect and return the CONNACK's verdict ("Success", "Not authorized", ...)."""
        self.mqtt.connect("127.0.0.1", self.port, keepalive=30)
        self.mqtt.loop_start()
        verdict = str(wait_until(lambda: self.verdict[:1], 20, what="CONNACK")[0])
        if verdict != "Success":
            self.stop()
        return verdict

    def stop(self) -> None:
        self.mqtt.disconnect()
        self.mqtt.loop_stop()

    def publish(self, topic: str, payload: bytes = b"x") -> int:
        info = self.mqtt.publish(topic, payload, qos=1)
        return int(wait_until(lambda: self.pubacks.get(info.mid, -1) + 1, 20, what=f"PUBACK {topic}")) - 1

    def subscribe(self, topic_filter: str) -> None:
        subscribed = threading.Event()
        self.mqtt.on_subscribe = lambda *_: subscribed.set()
        self.mqtt.subscribe(topic_filter, qos=1)
        assert subscribed.wait(20), f"no SUBACK for {topic_filter}"

    def received(self, topic: str) -> list[bytes]:
        with self.lock:
            return [p for t, p in self.messages if t == topic]


@dataclass
class Deployment:
    run: ComposeRun
    broker: ComposeBroker
    first_output: str

    def settings(self, service: str) -> CloudSettings:
        """The service's CloudSettings from its compose environment, its paths and port mapped."""
        env = environment(services()[service])
        return CloudSettings(
            mqtt_url=f"mqtt://127.0.0.1:{self.broker.port}",
            mqtt_username=env["SITROOM_MQTT_USERNAME"],
            mqtt_password_file=str(self.run.host(service, env["SITROOM_MQTT_PASSWORD_FILE"])),
        )

    def cloud_client(self, service: str) -> Client:
        broker = self.settings(service).broker
        return Client(self.broker.port, broker.username, broker.password)

    def gateway_client(self, service: str) -> tuple[Client, dict[str, Any]]:
        command = services()[service]["command"]
        config_path = self.run.host(service, command[command.index("--config") + 1])
        config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
        password = self.run.host(service, config["broker"]["password_file"]).read_text().strip()
        return Client(self.broker.port, config["broker"]["username"], password), config


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """`provision` as compose runs it first, then the broker on what it exported."""
    run = ComposeRun(tmp_path_factory.mktemp("compose"))
    first = run.provision()
    broker = ComposeBroker(run, tmp_path_factory.mktemp("mosquitto"))
    try:
        broker.start()
    except ServerStartError as exc:
        pytest.fail(f"mosquitto rejected the provisioned config: {exc}")
    try:
        yield Deployment(run, broker, first.stdout)
    finally:
        broker.stop()


def test_the_provisioned_broker_refuses_anonymous_clients(deployment: Deployment) -> None:
    options = mosquitto_options(deployment.broker.exported)

    assert options["allow_anonymous"] == ["false"]
    assert Client(deployment.broker.port, None, None).start() == "Not authorized"
    assert Client(deployment.broker.port, "svc.ingest", "wrong").start() == "Not authorized"


def test_the_healthcheck_command_passes_and_would_fail_without_its_identity(
    deployment: Deployment, tmp_path: Path
) -> None:
    test = services()["mosquitto"]["healthcheck"]["test"][1:]  # after "CMD"
    # Compose turns `$$` into `$`; the port is this broker's; the options folder its host side.
    command = [a.replace("$$", "$") for a in test]
    command[command.index("-p") + 1] = str(deployment.broker.port)
    xdg = next(i for i, a in enumerate(command) if a.startswith("XDG_CONFIG_HOME="))
    folder = command[xdg].split("=", 1)[1]
    command[xdg] = f"XDG_CONFIG_HOME={deployment.run.host('mosquitto', folder)}"

    healthy = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    command[xdg] = f"XDG_CONFIG_HOME={tmp_path}"  # no options file: an anonymous client
    anonymous = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)

    assert healthy.returncode == 0, healthy.stderr + deployment.broker.log()
    assert healthy.stdout.strip().endswith("seconds")  # $SYS/broker/uptime: "N seconds"
    assert anonymous.returncode != 0
    assert "not authorised" in anonymous.stderr.lower()


def test_ingest_receives_a_gateways_own_data_and_a_gateway_cannot_write_as_another(
    deployment: Deployment,
) -> None:
    ingest = deployment.cloud_client("ingest")
    mercatale, config = deployment.gateway_client("gw-mercatale")
    stazione, other = deployment.gateway_client("gw-stazione")
    assert ingest.start() == "Success"
    assert mercatale.start() == "Success"
    try:
        ingest.subscribe("sr/v1/+/+/data/+")
        own = f"sr/v1/{config['org']}/{config['id']}/data/parking"
        forged = f"sr/v1/{other['org']}/{other['id']}/data/parking"
        marker = f"sr/v1/{config['org']}/{config['id']}/data/traffic"

        assert mercatale.publish(own, b"mine") in ACCEPTED
        assert mercatale.publish(forged, b"forged") == NOT_AUTHORIZED
        assert mercatale.publish(marker, b"later") in ACCEPTED
        wait_until(lambda: ingest.received(marker), 20, what="the marker at ingest")

        assert ingest.received(own) == [b"mine"]
        assert ingest.received(forged) == []  # never delivered: the marker came after it
    finally:
        ingest.stop()
        mercatale.stop()
    assert stazione.start() == "Success"  # and gw-stazione's own secret works
    stazione.stop()


def test_rules_and_api_publish_alerts_and_neither_can_forge_gateway_data(deployment: Deployment) -> None:
    alert = "sr/v1/alerts/comune-prato/worksite-conflict/w-1"
    data = "sr/v1/comune-prato/gw-mercatale/data/parking"
    for service in ("rules", "api"):
        client = deployment.cloud_client(service)
        assert client.start() == "Success", service
        try:
            assert client.publish(alert) in ACCEPTED, service
            assert client.publish(data) == NOT_AUTHORIZED, service
        finally:
            client.stop()


def test_the_apis_alert_publisher_logs_in_with_the_identity_its_environment_names(
    deployment: Deployment,
) -> None:
    # `sitroom cloud api` reads SITROOM_MQTT_USERNAME and SITROOM_MQTT_PASSWORD_FILE (its
    # --mqtt-username and --mqtt-password-file) and hands them to its worksite alert publisher.
    env = environment(services()["api"])
    broker = broker_address(
        f"mqtt://127.0.0.1:{deployment.broker.port}",
        env["SITROOM_MQTT_USERNAME"],
        str(deployment.run.host("api", env["SITROOM_MQTT_PASSWORD_FILE"])),
    )
    now = datetime.now(UTC)
    alert = Alert(
        rule="worksite-conflict",
        org="comune-prato",
        entity=unique("w-"),
        gateway="worksites",
        kind="worksite",
        severity="warning",
        state="firing",
        since=now,
        ts=now,
        message="two worksites on one street",
    )
    rules = deployment.cloud_client("rules")
    assert rules.start() == "Success"
    try:
        assert publish_alerts(broker, [alert]) == 1
        rules.subscribe(alert.topic)  # retained: delivered on subscription
        wait_until(lambda: rules.received(alert.topic), 20, what="the retained alert")
    finally:
        rules.stop()


def test_provisioning_again_changes_nothing_and_running_clients_stay_connected(
    deployment: Deployment,
) -> None:
    gateway, config = deployment.gateway_client("gw-fleet-alia")
    assert gateway.start() == "Success"
    try:
        before = deployment.run.files()

        again = deployment.run.provision()
        # As `docker compose kill -s HUP mosquitto` after a change: the broker rereads its files.
        assert deployment.broker.proc is not None
        os.kill(deployment.broker.proc.pid, signal.SIGHUP)
        wait_until(lambda: "Reloading config" in deployment.broker.log(), 20, what="the reload")

        assert "added" in deployment.first_output
        assert again.stdout.rstrip().endswith("nothing changed"), again.stdout
        assert deployment.run.files() == before
        assert gateway.publish(f"sr/v1/{config['org']}/{config['id']}/health") in ACCEPTED
        assert gateway.mqtt.is_connected()
    finally:
        gateway.stop()


# --- the image ---------------------------------------------------------------------------------


def dockerignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    """(excludes, regex) per line of .dockerignore, in Docker's (Go filepath.Match) syntax."""
    patterns = []
    for raw in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        excludes = not line.startswith("!")
        text = line.lstrip("!").strip().strip("/")
        regex = ""
        i = 0
        while i < len(text):
            if text.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif text.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif text[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif text[i] == "?":
                regex, i = regex + "[^/]", i + 1
            elif text[i] == "[":
                end = text.index("]", i)
                regex, i = regex + text[i : end + 1], end + 1
            else:
                regex, i = regex + re.escape(text[i]), i + 1
        patterns.append((excludes, re.compile(regex)))
    return patterns


def in_build_context(relative: str) -> bool:
    # Docker (moby/patternmatcher): a pattern matching a path or any of its parent directories
    # applies to it, and the last pattern that applies wins.
    parts = relative.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    included = True
    for excludes, regex in dockerignore_patterns():
        if any(regex.fullmatch(c) for c in candidates):
            included = not excludes
    return included


def test_the_build_context_holds_what_pip_install_needs_and_nothing_else() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    needed = ["pyproject.toml", project["readme"], *project.get("license-files", [])]
    needed += [
        p.relative_to(ROOT).as_posix()
        for package in ("edge", "gateway", "cloud")
        for p in (ROOT / package).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    ]
    missing = [path for path in needed if not in_build_context(path)]
    assert not missing, f".dockerignore keeps out what `pip install .` needs: {missing[:10]}"
    for path in (
        ".venv/bin/python",
        ".git/HEAD",
        "tests/test_docker_compose.py",
        "bench/x.py",
        "edge/__pycache__/x.cpython-311.pyc",
        "sitroom.egg-info/PKG-INFO",
        "firmware_configs/gw-mercatale.yaml",
    ):
        assert not in_build_context(path), f"{path} would be sent to the Docker build"


def test_the_image_runs_the_sitroom_cli_as_an_unprivileged_user() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    stages = re.findall(r"^FROM\s+(\S+)", dockerfile, flags=re.M)
    assert stages
    assert all(image == "python:3.11-slim" for image in stages), stages
    assert re.search(r'^ENTRYPOINT \["sitroom"\]', dockerfile, flags=re.M)
    users = re.findall(r"^USER\s+(\S+)", dockerfile, flags=re.M)
    assert users
    assert users[-1] not in {"root", "0"}


# --- InfluxDB authentication: a writer, a reader, an admin no service uses ----------------------

ENV_EXAMPLE = ROOT / "deploy" / "compose.env.example"
SECRET_REFERENCE = re.compile(r"^\$\{([A-Z][A-Z0-9_]*):\?[^}]+\}$")  # required, never a default


def grafana_env_expanded(value: str) -> str:
    """Grafana expands `$VAR` / `${VAR}` in provisioning files from its own environment."""
    env = environment(services()["grafana"])
    return re.sub(r"\$\{?([A-Z_][A-Z0-9_]*)\}?", lambda m: env[m.group(1)], value)


def test_influxdb_requires_authentication_with_separate_admin_writer_and_reader() -> None:
    env = environment(services()["influxdb"])

    assert env["INFLUXDB_HTTP_AUTH_ENABLED"] == "true"
    users = {env["INFLUXDB_ADMIN_USER"], env["INFLUXDB_WRITE_USER"], env["INFLUXDB_READ_USER"]}
    assert len(users) == 3
    # The image's INFLUXDB_USER would get ALL privileges on the database: nobody needs that.
    assert "INFLUXDB_USER" not in env


def test_influxdbs_debug_endpoints_answer_only_its_admin() -> None:
    # Issue 18 point 7. InfluxDB 1.8 serves /debug/vars and /debug/requests to anybody unless
    # pprof-auth-enabled (which needs pprof-enabled and auth-enabled) routes every /debug/
    # endpoint through authentication, for admins only; pprof-enabled alone off closes only
    # /debug/pprof. docs/decisions/0015-security-hardening.md.
    env = environment(services()["influxdb"])

    assert env["INFLUXDB_HTTP_AUTH_ENABLED"] == "true"
    assert env["INFLUXDB_HTTP_PPROF_ENABLED"] == "true"
    assert env["INFLUXDB_HTTP_PPROF_AUTH_ENABLED"] == "true"


def test_the_cloud_services_write_as_the_write_only_user_and_the_api_reads_as_the_read_only_one() -> None:
    influx = environment(services()["influxdb"])
    cloud = {n: s for n, s in sitroom_services().items() if s["command"][0] == "cloud"}
    assert {"ingest", "rules", "api"} <= cloud.keys()
    for name, service in cloud.items():
        env = environment(service)
        role = "READ" if name == "api" else "WRITE"
        assert env["SITROOM_INFLUX_USERNAME"] == influx[f"INFLUXDB_{role}_USER"], name
        assert env["SITROOM_INFLUX_PASSWORD"] == influx[f"INFLUXDB_{role}_USER_PASSWORD"], name


def test_the_rules_service_reads_the_worksite_registry_the_api_service_keeps() -> None:
    # Same volume, same file: otherwise the Worksites dashboard shows an empty registry.
    def volume_path(service: dict[str, Any], url: str) -> tuple[str, str]:
        path = PurePosixPath(url.removeprefix("sqlite:///"))
        for mount in service["volumes"]:
            volume, target = str(mount).split(":")[:2]
            if path.is_relative_to(target):
                return volume, str(path.relative_to(target))
        raise AssertionError(f"{path} is on no volume of the service")

    api, rules = services()["api"], services()["rules"]
    api_db = api["command"][api["command"].index("--db") + 1]
    assert volume_path(rules, environment(rules)["SITROOM_WORKSITES_DB"]) == volume_path(api, api_db)


def test_grafana_reads_as_the_read_only_user() -> None:
    (source,) = yaml.safe_load(DATASOURCES.read_text(encoding="utf-8"))["datasources"]
    influx = environment(services()["influxdb"])

    assert grafana_env_expanded(source["user"]) == influx["INFLUXDB_READ_USER"]
    assert grafana_env_expanded(source["secureJsonData"]["password"]) == influx["INFLUXDB_READ_USER_PASSWORD"]
    assert "password" not in source  # the plain-text field Grafana 9+ no longer reads


def test_no_secret_is_written_in_the_compose_file_and_each_is_in_the_env_example() -> None:
    example = {
        line.split("=", 1)[0]
        for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    }
    for name, service in services().items():
        for key, value in environment(service).items():
            if "PASSWORD" not in key or key.endswith("_FILE"):
                continue  # a *_FILE names where a provisioned secret is mounted
            match = SECRET_REFERENCE.match(value)
            assert match, f"{name}: {key} must be a required ${{VAR:?...}} reference, not {value!r}"
            assert match.group(1) in example, f"{match.group(1)} is missing from {ENV_EXAMPLE.name}"
