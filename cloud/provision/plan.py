"""`sitroom provision apply PLAN`: a whole deployment's provisioning from one file, idempotently.

A plan lists the broker's settings, the identities that must exist and the *exports*: copies
of the broker's files and of one identity's secrets into folders that another machine or
container mounts (docker-compose.yml: one volume per container, each holding only what that
container needs). Applying it again changes nothing: identities keep their secrets, and every
file is rewritten only when its content changes, so running clients are never disturbed.

The plan adds and updates; it never revokes (`sitroom provision revoke` does, by name), so
removing a line cannot lock a device out by accident. `root` reroots the paths the command
itself reads and writes (`from`, export folders), to rehearse a container's run on a
workstation; the paths written *into* files (`install_dir`, `broker_dir`) are those of the
machine that reads them and are never rerooted.

    ca: false
    broker: {port: 1883, tls_port: null, bind_address: 0.0.0.0, broker_dir: /etc/mosquitto/x}
    services: [{id: ingest}, {id: healthcheck, role: probe}]
    gateways: [{id: gw-a, from: /etc/sitroom/firmware_configs/gw-a.yaml, install_dir: /run/s}]
    exports: [{to: /export/broker, broker: true, owner: "1883:1883"},
              {to: /export/ingest, identity: svc.ingest, owner: "10001:10001"}]
    influx: {url: "http://influxdb:8086", policy: data-policy.yaml,
             registry: "sqlite:////var/lib/sitroom/worksites.db"}

With `influx`, InfluxDB is brought in line with the data policy (decision 0017): the shared
database and each registered organisation's private one, the writer on all of them, one reader
per organisation (`reader.{org}`, its password generated once and kept in
DIR/influx/readers.json, which `sitroom dashboards push --readers` hands to Grafana). The admin's
and the writer's passwords come from SITROOM_INFLUX_ADMIN_PASSWORD and
SITROOM_INFLUX_WRITE_PASSWORD, never from the plan.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cloud.core.orgs import Role
from cloud.io.influx.policy import DataPolicy, DataPolicyError
from cloud.io.orgstore import OrgStore
from cloud.provision.ca import CertificateAuthority
from cloud.provision.files import ensure_dir, write_private
from cloud.provision.identities import Outcome, add_gateway, add_service, add_utility
from cloud.provision.influx_users import InfluxUser, OrgReader, ensure_org_access, reader_name
from cloud.provision.passwords import new_password
from cloud.provision.registry import AuthMethod, BrokerSettings, IdentityRegistry, RegistryError, ServiceRole
from cloud.provision.specs import load_base_config, parse_sensor
from edge.contract import Id
from edge.contract.areas import AreasFileError, load_areas

# What an identity's export may hold; anything else in the folder is left alone.
IDENTITY_FILES = ("password", "gateway.yaml", "ca.crt", "client.crt", "client.key")
# mosquitto_sub and mosquitto_pub read their default options from $XDG_CONFIG_HOME/<name>
# (mosquitto_sub(1), "Config"): a health check then needs no password on its command line.
CLIENT_OPTION_FILES = ("mosquitto_sub", "mosquitto_pub")
BROKER_FILES = (
    "mosquitto.conf",
    "passwd",
    "acl",
    "certs/ca.crt",
    "certs/ca.crl",
    "certs/server.crt",
    "certs/server.key",
)


class PlanError(ValueError):
    """A plan that cannot be read or applied; `problems` are `path: problem: value` lines."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class PlanService(_Strict):
    id: Id
    role: ServiceRole | None = None  # default: the id, when it names a role
    org: Id | None = None  # a feed reader's organisation (role feed), none for the others
    auth: AuthMethod = AuthMethod.PASSWORD
    broker_url: str | None = None

    @model_validator(mode="after")
    def _role(self) -> Self:
        if self.role is None:
            if self.id not in {r.value for r in ServiceRole}:
                raise ValueError(f"service {self.id!r} needs a role (one of {', '.join(ServiceRole)})")
            self.role = ServiceRole(self.id)
        return self


class PlanUtility(_Strict):
    id: Id
    name: str = ""
    auth: AuthMethod = AuthMethod.PASSWORD
    broker_url: str | None = None


class PlanGateway(_Strict):
    id: Id
    org: Id | None = None  # default: the `from` config's org
    name: str = ""
    from_: str | None = Field(default=None, alias="from")  # a config draft (sensors, batching)
    sensors: list[str] = []  # `driver=...,id=...` specs, as `gateway add --sensor`
    auth: AuthMethod = AuthMethod.PASSWORD
    broker_url: str | None = None
    install_dir: str | None = None  # where its secrets are on the gateway (or in its container)


class PlanExport(_Strict):
    to: str = Field(pattern=r"^/")
    broker: bool = False  # the broker's files (DIR/mosquitto without its data)
    identity: str | None = None  # or one identity's secrets (and its gateway config)
    owner: str | None = Field(default=None, pattern=r"^[0-9]+:[0-9]+$")  # uid:gid, applied as root
    mosquitto_clients: bool = False  # also mosquitto_sub/mosquitto_pub option files (-u, -P)

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if self.broker == (self.identity is not None):
            raise ValueError("an export is either `broker: true` or `identity: NAME`")
        if self.mosquitto_clients and self.identity is None:
            raise ValueError("mosquitto_clients needs an identity")
        return self


class PlanInflux(_Strict):
    url: str = "http://127.0.0.1:8086"
    database: str = Field(default="sitroom", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    policy: str  # the data policy file, relative to the plan
    registry: str | None = None  # the organisation registry's URL (default: SITROOM_WORKSITES_DB)
    admin_user: str = "admin"
    writer_user: str = "sitroom-writer"
    raw_retention: str = Field(default="30d", pattern=r"^(INF|[1-9][0-9]*[hdw])$")
    rollup_retention: str = Field(default="INF", pattern=r"^(INF|[1-9][0-9]*[hdw])$")


class Plan(_Strict):
    ca: bool = False  # create the CA (TLS listeners, certificate identities)
    broker: BrokerSettings | None = None
    services: list[PlanService] = []
    orgs: list[PlanUtility] = []
    gateways: list[PlanGateway] = []
    exports: list[PlanExport] = []
    influx: PlanInflux | None = None
    areas: str | None = None  # the areas file gateways must stand in (default: Prato alone)

    @model_validator(mode="after")
    def _distinct_exports(self) -> Self:
        seen: set[str] = set()
        for e in self.exports:
            if e.to in seen:
                raise ValueError(f"two exports write {e.to}")
            seen.add(e.to)
        return self


def load_plan(path: Path) -> Plan:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise PlanError(str(path), [f"cannot read it ({exc})"]) from None
    try:
        return Plan.model_validate(raw or {})
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}: {err.get('input')!r}"
            for err in exc.errors()
        ]
        raise PlanError(str(path), problems) from None


def reroot(root: Path, path: str) -> Path:
    return root / path.lstrip("/") if path.startswith("/") else Path(path)


@dataclass(slots=True)
class Export:
    to: str
    what: str  # "broker" or the username
    changed: list[str] = field(default_factory=list)


def apply_identities(reg: IdentityRegistry, plan: Plan, *, plan_dir: Path, root: Path) -> list[Outcome]:
    """Bring the CA, the broker settings and every identity of the plan into the registry."""
    if plan.ca:
        CertificateAuthority(reg.ca_dir).init("Situation Room private CA")
    if plan.broker is not None:
        if plan.broker.tls_port is not None and not CertificateAuthority(reg.ca_dir).exists:
            raise RegistryError("the plan's broker has a TLS listener: set `ca: true`", "broker")
        reg.data.broker = plan.broker
    outcomes = [
        add_service(
            reg,
            service=s.id,
            role=s.role or ServiceRole(s.id),
            auth=s.auth,
            broker_url=s.broker_url,
            org=s.org,
        )
        for s in plan.services
    ]
    outcomes += [
        add_utility(reg, org=o.id, name=o.name, auth=o.auth, broker_url=o.broker_url) for o in plan.orgs
    ]
    areas = None
    if plan.areas is not None:
        try:
            where = reroot(root, plan.areas) if plan.areas.startswith("/") else plan_dir / plan.areas
            areas = load_areas(where)
        except AreasFileError as exc:
            raise PlanError(exc.source, exc.problems) from None
    for g in plan.gateways:
        base: dict[str, Any] | None = None
        if g.from_ is not None:
            draft = reroot(root, g.from_) if g.from_.startswith("/") else plan_dir / g.from_
            base = load_base_config(draft)
        org = g.org or (base or {}).get("org")
        if not isinstance(org, str):
            raise RegistryError(f"gateway {g.id!r}: give `org`, or `from` a config that names one", g.id)
        outcomes.append(
            add_gateway(
                reg,
                gateway=g.id,
                org=org,
                name=g.name,
                auth=g.auth,
                base=base,
                sensors=[parse_sensor(s) for s in g.sensors],
                broker_url=g.broker_url,
                install_dir=Path(g.install_dir) if g.install_dir else None,
                areas=areas,
            )
        )
    return outcomes


def _owner(spec: str | None) -> tuple[int, int] | None:
    # Only root may hand a file to another user; unprivileged (a rehearsal), files stay ours.
    if spec is None or os.geteuid() != 0:
        return None
    uid, gid = spec.split(":")
    return int(uid), int(gid)


def _folder(path: Path, owner: tuple[int, int] | None) -> None:
    ensure_dir(path)
    path.chmod(0o700)
    if owner is not None:
        os.chown(path, *owner)


def _client_options(username: str, password: str) -> str:
    return f"-u {username}\n-P {password}\n"


def _contents(reg: IdentityRegistry, spec: PlanExport) -> tuple[str, tuple[str, ...], dict[str, bytes]]:
    """(what, the names this export may hold, the contents it must hold now)."""
    wanted: dict[str, bytes] = {}
    if spec.broker:
        if reg.data.broker is None:
            raise RegistryError(f"export {spec.to}: the plan has no broker", spec.to)
        source, known, what = reg.mosquitto_dir, BROKER_FILES, "broker"
    else:
        assert spec.identity is not None
        identity = reg.find(spec.identity)
        if identity.is_revoked:
            raise RegistryError(f"export {spec.to}: {identity.username} is revoked", identity.username)
        source, what = reg.identity_dir(identity.username), identity.username
        known = IDENTITY_FILES + CLIENT_OPTION_FILES
        if spec.mosquitto_clients:
            password = (source / "password").read_text().strip()
            for name in CLIENT_OPTION_FILES:
                wanted[name] = _client_options(identity.username, password).encode()
    for name in known:
        if (source / name).is_file() and name not in wanted:
            wanted[name] = (source / name).read_bytes()
    return what, known, wanted


def export(reg: IdentityRegistry, spec: PlanExport, root: Path) -> Export:
    """Copy the broker's files, or one identity's, into `spec.to` (0700, files 0600)."""
    what, known, wanted = _contents(reg, spec)
    out = Export(spec.to, what)
    target = reroot(root, spec.to)
    owner = _owner(spec.owner)
    _folder(target, owner)
    for name in known:
        path = target / name
        if name not in wanted:
            if path.is_file():
                path.unlink()
                out.changed.append(f"-{name}")
            continue
        if "/" in name:
            _folder(path.parent, owner)
        if write_private(path, wanted[name], owner=owner):
            out.changed.append(name)
    return out


READERS_FILE = Path("influx") / "readers.json"  # in the provisioning folder


def reader_passwords(reg: IdentityRegistry, orgs: list[str]) -> dict[str, InfluxUser]:
    """Each organisation's reader, with the password generated for it once (kept, 0600)."""
    path = reg.folder / READERS_FILE
    try:
        kept: dict[str, dict[str, str]] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        kept = {}
    readers = {}
    for org in orgs:
        entry = kept.setdefault(org, {"username": reader_name(org), "password": new_password()})
        readers[org] = InfluxUser(entry["username"], entry["password"])
    write_private(path, json.dumps(kept, indent=2, sort_keys=True) + "\n")
    return readers


def apply_influx(
    reg: IdentityRegistry,
    spec: PlanInflux,
    *,
    plan_dir: Path,
    root: Path,
    admin_password: str,
    writer_password: str,
    registry_url: str | None,
) -> list[str]:
    """The plan's `influx`: databases, writer and readers as the data policy says."""
    policy_path = reroot(root, spec.policy) if spec.policy.startswith("/") else plan_dir / spec.policy
    try:
        policy = DataPolicy.load(policy_path, spec.database)
    except DataPolicyError as exc:
        raise PlanError(str(policy_path), exc.problems) from None
    url = spec.registry or registry_url
    if url is None:
        raise PlanError("influx.registry", ["give the organisation registry's URL, or SITROOM_WORKSITES_DB"])
    store = OrgStore.open(url)
    try:
        orgs = store.organisations()
    finally:
        store.close()
    passwords = reader_passwords(reg, [o.id for o in orgs])
    readers = [OrgReader(o.id, passwords[o.id], o.role is Role.MUNICIPALITY) for o in orgs]
    return ensure_org_access(
        spec.url,
        policy,
        admin=InfluxUser(spec.admin_user, admin_password),
        writer=InfluxUser(spec.writer_user, writer_password),
        readers=readers,
        raw_retention=spec.raw_retention,
        rollup_retention=spec.rollup_retention,
    )
