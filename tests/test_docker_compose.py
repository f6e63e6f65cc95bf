"""docker-compose.yml, the Dockerfile and the broker config they mount, checked without Docker.

The compose file is validated against the Compose Specification JSON schema vendored in
tests/data/ (see tests/data/README.md for where it comes from), then every reference in it is
followed: host paths, build context, named volumes, dependencies, healthchecks, the settings of
the cloud processes, the `sitroom` command lines, Grafana's provisioning mounts and the
Mosquitto config, which Debian's real `mosquitto` binary must accept.
"""

from __future__ import annotations

import getpass
import json
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from cloud.devservers import Mosquitto, ServerStartError
from cloud.settings import CloudSettings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
COMPOSE_SCHEMA = Path(__file__).resolve().parent / "data" / "compose-spec.json"
MOSQUITTO_CONF = ROOT / "deploy" / "mosquitto" / "mosquitto.conf"
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


def mosquitto_options() -> dict[str, list[str]]:
    options: dict[str, list[str]] = {}
    for raw in MOSQUITTO_CONF.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            options.setdefault(key, []).append(value.strip())
    return options


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
    listener_port = int(mosquitto_options()["listener"][0].split()[0])
    for name, service in sitroom_services().items():
        env = environment(service)
        command = service["command"]
        broker_urls = [env["SITROOM_MQTT_URL"]] if "SITROOM_MQTT_URL" in env else []
        if "--broker" in command:
            broker_urls.append(command[command.index("--broker") + 1])
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


def test_gateways_read_their_configs_from_the_mounted_firmware_configs() -> None:
    gateways = {n: s for n, s in sitroom_services().items() if s["command"][:2] == ["gateway", "run"]}
    assert len(gateways) >= 2
    for name, service in gateways.items():
        config = PurePosixPath(service["command"][service["command"].index("--config") + 1])
        sources = {
            PurePosixPath(target): source for kind, source, target in mounts(service) if kind == "bind"
        }
        mount = next((t for t in sources if config.is_relative_to(t)), None)
        assert mount is not None, f"{name}: {config} is not under a bind mount"
        local = host_path(sources[mount]) / config.relative_to(mount)
        assert local.is_file(), f"{name}: runs {config}, but {local} does not exist"


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


# --- Mosquitto ---------------------------------------------------------------------------------


def test_mosquitto_config_sets_queue_limits_and_persistence_deliberately() -> None:
    options = mosquitto_options()
    for key in ("max_queued_messages", "max_queued_bytes", "max_inflight_messages"):
        assert key in options, f"{key} is not set (see NOTES.md: the defaults drop messages)"
    assert int(options["max_queued_messages"][0]) > MOSQUITTO_DEFAULT_MAX_QUEUED
    assert int(options["max_queued_bytes"][0]) > 0
    assert int(options["max_inflight_messages"][0]) > 0
    assert options["persistence"] == ["true"]
    assert options["listener"] == ["1883"]


def test_mosquitto_persists_into_the_mounted_data_volume_and_reads_the_mounted_config() -> None:
    options = mosquitto_options()
    binds = {t: s for kind, s, t in mounts(services()["mosquitto"]) if kind == "bind"}
    volumes = {t: s for kind, s, t in mounts(services()["mosquitto"]) if kind == "volume"}
    # The eclipse-mosquitto image starts `mosquitto -c /mosquitto/config/mosquitto.conf`.
    assert host_path(binds["/mosquitto/config/mosquitto.conf"]) == MOSQUITTO_CONF
    location = PurePosixPath(options["persistence_location"][0])
    assert any(location.is_relative_to(target) for target in volumes), location


class ComposeBroker(Mosquitto):
    """Debian's mosquitto on deploy/mosquitto/mosquitto.conf, adapted only where this machine
    differs from the container: loopback port, data folder, log sink and user."""

    def write_config(self) -> Path:
        adapted = {
            "listener": f"listener {self.port} 127.0.0.1",
            "persistence_location": f"persistence_location {self.data_dir}/",
            "log_dest": "log_dest stderr",
        }
        lines = []
        for line in MOSQUITTO_CONF.read_text(encoding="utf-8").splitlines():
            key = line.split(" ", 1)[0]
            lines.append(adapted.pop(key) if key in adapted else line)
        # Started as root, mosquitto would drop to user `mosquitto`, who cannot write here.
        lines.append(f"user {getpass.getuser()}")
        self.config_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return self.config_path


def test_debian_mosquitto_starts_on_the_config(tmp_path: Path) -> None:
    # Mosquitto refuses to start on an unknown or misspelt option, so starting the real binary
    # on the file (ready = it answers an MQTT CONNECT) catches what the key-by-key checks cannot.
    try:
        broker = ComposeBroker(tmp_path).start()
    except ServerStartError as exc:
        pytest.fail(f"mosquitto rejected {MOSQUITTO_CONF.name}: {exc}")
    broker.stop()


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
            if "PASSWORD" not in key:
                continue
            match = SECRET_REFERENCE.match(value)
            assert match, f"{name}: {key} must be a required ${{VAR:?...}} reference, not {value!r}"
            assert match.group(1) in example, f"{match.group(1)} is missing from {ENV_EXAMPLE.name}"
