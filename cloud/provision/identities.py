"""Onboarding operations: add a gateway, a utility or a cloud service; idempotent by design.

Running an `add` again with the same arguments changes nothing and keeps the secrets: a
technician can repeat a command that timed out without locking a gateway out. Secrets change
only when asked (`rotate`), or when a revoked identity is brought back.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509

from cloud.core.directory import FLEET_GATEWAY
from cloud.provision.ca import CertificateAuthority
from cloud.provision.files import ensure_dir, write_private
from cloud.provision.passwords import hash_password, new_password, verify
from cloud.provision.registry import (
    AuthMethod,
    Identity,
    IdentityRegistry,
    RegistryError,
    Role,
    ServiceRole,
    gateway_username,
    now_utc,
    service_username,
    utility_username,
)
from edge.contract import is_id
from edge.contract.areas import Areas, OutsideAreasError, load_areas
from edge.contract.ids import RESERVED_ORGS


@dataclass(slots=True)
class Outcome:
    identity: Identity
    created: bool = False
    changed: list[str] = field(default_factory=list)  # what this call changed, for the user
    password: str | None = None  # the cleartext, for `--show-secret` only
    folder: Path | None = None
    config_path: Path | None = None

    @property
    def credentials_path(self) -> Path | None:
        return self.folder / "credentials.json" if self.folder else None


def _check_id(kind: str, value: str) -> None:
    if not is_id(value):
        raise RegistryError(f"{kind} {value!r} must match [a-z0-9][a-z0-9-]{{0,62}}", value)


def _check_org(org: str) -> None:
    _check_id("org", org)
    if org in RESERVED_ORGS:
        raise RegistryError(f"org {org!r} is reserved for the cloud's topics", org)


def default_broker_url(reg: IdentityRegistry, auth: AuthMethod = AuthMethod.PASSWORD) -> str:
    """TLS when the broker has a TLS listener (a password never crosses the street in clear),
    unless that listener asks for a certificate this identity does not have."""
    s = reg.data.broker
    if s is None:
        return "mqtt://127.0.0.1:1883"
    host = s.server_names[0] if s.server_names else s.bind_address
    tls_usable = s.tls_port is not None and (s.client_certs != "required" or auth.has_cert)
    if tls_usable or s.port is None:
        return f"mqtts://{host}:{s.tls_port}"
    return f"mqtt://{host}:{s.port}"


def _read_json(path: Path) -> dict[str, Any]:
    with contextlib.suppress(FileNotFoundError, ValueError):
        data = json.loads(path.read_text())
        if isinstance(data, dict):
            return data
    return {}


def _ensure_secrets(
    reg: IdentityRegistry, identity: Identity, outcome: Outcome, *, rotate: bool, broker_url: str
) -> None:
    ensure_dir(reg.identity_dir(identity.username).parent)
    folder = ensure_dir(reg.identity_dir(identity.username))
    outcome.folder = folder
    creds_path = folder / "credentials.json"
    old = _read_json(creds_path)
    creds: dict[str, Any] = {"username": identity.username, "broker_url": broker_url}

    password = old.get("password") if isinstance(old.get("password"), str) else None
    if identity.auth.has_password:
        keep = (
            not rotate
            and password is not None
            and identity.password_hash is not None
            and verify(password, identity.password_hash)
        )
        if not keep:
            password = new_password()
            identity.password_hash = hash_password(password)
            outcome.changed.append("password")
        assert password is not None
        creds["password"] = password
        write_private(folder / "password", password + "\n")
        outcome.password = password
    else:
        identity.password_hash = None
        (folder / "password").unlink(missing_ok=True)
        creds["password"] = None

    ca = CertificateAuthority(reg.ca_dir)
    if ca.exists:
        write_private(folder / "ca.crt", ca.cert_pem)
        creds["ca"] = str((folder / "ca.crt").resolve())
    if identity.auth.has_cert:
        cert_path, key_path = folder / "client.crt", folder / "client.key"
        current = None
        with contextlib.suppress(FileNotFoundError, ValueError):
            current = x509.load_pem_x509_certificate(cert_path.read_bytes()).serial_number
        if rotate or current is None or current != identity.cert_serial or not key_path.exists():
            issued = ca.issue(identity.username)
            if identity.cert_serial is not None:
                identity.revoked_serials.append(identity.cert_serial)
            identity.cert_serial, identity.cert_not_after = issued.serial, issued.not_after
            write_private(key_path, issued.key_pem)
            write_private(cert_path, issued.cert_pem)
            outcome.changed.append("certificate")
        creds["cert"] = str(cert_path.resolve())
        creds["key"] = str(key_path.resolve())
    elif identity.cert_serial is not None:
        identity.revoked_serials.append(identity.cert_serial)
        identity.cert_serial = identity.cert_not_after = None
        (folder / "client.crt").unlink(missing_ok=True)
        (folder / "client.key").unlink(missing_ok=True)
    if write_private(creds_path, json.dumps(creds, indent=2) + "\n") and "password" not in outcome.changed:
        outcome.changed.append("credentials.json")


def _upsert(
    reg: IdentityRegistry,
    *,
    username: str,
    role: Role,
    ident: str,
    org: str | None,
    name: str,
    auth: AuthMethod,
    service_role: ServiceRole | None,
    rotate: bool,
    broker_url: str | None,
) -> Outcome:
    if auth.has_cert and not CertificateAuthority(reg.ca_dir).exists:
        raise RegistryError("certificate auth needs the CA: run `sitroom provision ca init` first", username)
    existing = reg.get(username)
    now = now_utc()
    if existing is None:
        identity = Identity(
            username=username,
            role=role,
            id=ident,
            org=org,
            name=name,
            auth=auth,
            service_role=service_role,
            created_at=now,
            updated_at=now,
        )
        reg.upsert(identity)
        outcome = Outcome(identity, created=True)
    else:
        if (existing.role, existing.org) != (role, org):
            reg.upsert(
                Identity(username=username, role=role, id=ident, org=org, created_at=now, updated_at=now)
            )
        identity = existing
        outcome = Outcome(identity)
        if identity.is_revoked:
            # Back from revocation: with new secrets, never the ones that were revoked.
            identity.revoked_at = None
            rotate = True
            outcome.changed.append("reinstated")
        for attr, value in (("name", name), ("auth", auth), ("service_role", service_role)):
            if value is not None and value != "" and getattr(identity, attr) != value:
                setattr(identity, attr, value)
                outcome.changed.append(attr)
    _ensure_secrets(
        reg, identity, outcome, rotate=rotate, broker_url=broker_url or default_broker_url(reg, auth)
    )
    if outcome.changed and not outcome.created:
        identity.updated_at = now
    return outcome


def gateway_config(
    *,
    gateway: str,
    org: str,
    name: str,
    base: dict[str, Any] | None,
    sensors: list[dict[str, Any]],
    location: dict[str, Any] | None,
    broker_url: str,
    username: str,
    files: dict[str, str],
) -> dict[str, Any]:
    """The gateway's YAML config: the base config's sensors and settings, our identity and broker."""
    config: dict[str, Any] = dict(base or {})
    config["id"], config["org"] = gateway, org
    if name:
        config["name"] = name
    if location:
        config["location"] = location
    if sensors:
        config["sensors"] = sensors
    if not config.get("sensors"):
        raise RegistryError(
            f"gateway {gateway!r} needs at least one sensor: give --sensor or --from a config file", gateway
        )
    broker: dict[str, Any] = dict(config.get("broker") or {})
    broker.update(url=broker_url, username=username)
    broker.pop("password", None)
    for key in ("password_file", "ca_file", "cert_file", "key_file"):
        if key in files:
            broker[key] = files[key]
        else:
            broker.pop(key, None)
    config["broker"] = broker
    # Key order as a person would write it: identity first, sensors last.
    order = ["id", "org", "name", "location", "broker"]
    return (
        {k: config[k] for k in order if k in config}
        | {k: v for k, v in config.items() if k not in order and k != "sensors"}
        | {"sensors": config["sensors"]}
    )


def add_gateway(
    reg: IdentityRegistry,
    *,
    gateway: str,
    org: str,
    name: str = "",
    auth: AuthMethod = AuthMethod.PASSWORD,
    base: dict[str, Any] | None = None,
    sensors: list[dict[str, Any]] | None = None,
    location: dict[str, Any] | None = None,
    broker_url: str | None = None,
    install_dir: Path | None = None,
    rotate: bool = False,
    areas: Areas | None = None,
) -> Outcome:
    """Register a gateway, issue its secrets and write its config (`identities/{id}/gateway.yaml`).
    Its location must lie in one of `areas` (None: the default areas, Prato)."""
    _check_id("gateway", gateway)
    _check_org(org)
    if location:
        try:
            (areas or load_areas()).require(float(location["lat"]), float(location["lon"]))
        except OutsideAreasError as exc:
            raise RegistryError(f"gateway {gateway!r}: location {exc}", gateway) from None
    if gateway == FLEET_GATEWAY:
        raise RegistryError(f"{FLEET_GATEWAY!r} is the utilities' topic prefix, not a gateway id", gateway)
    url = broker_url or default_broker_url(reg, auth)
    # Fail on a config without sensors before any secret is issued.
    gateway_config(
        gateway=gateway,
        org=org,
        name=name,
        base=base,
        sensors=sensors or [],
        location=location,
        broker_url=url,
        username=gateway,
        files={},
    )
    outcome = _upsert(
        reg,
        username=gateway_username(gateway),
        role=Role.GATEWAY,
        ident=gateway,
        org=org,
        name=name,
        auth=auth,
        service_role=None,
        rotate=rotate,
        broker_url=url,
    )
    assert outcome.folder is not None
    where = install_dir if install_dir is not None else outcome.folder.resolve()
    files: dict[str, str] = {}
    if auth.has_password:
        files["password_file"] = str(where / "password")
    if url.startswith("mqtts://") or auth.has_cert:
        files["ca_file"] = str(where / "ca.crt")
    if auth.has_cert:
        files["cert_file"] = str(where / "client.crt")
        files["key_file"] = str(where / "client.key")
    config = gateway_config(
        gateway=gateway,
        org=org,
        name=name,
        base=base,
        sensors=sensors or [],
        location=location,
        broker_url=url,
        username=outcome.identity.username,
        files=files,
    )
    outcome.config_path = outcome.folder / "gateway.yaml"
    text = f"# Written by `sitroom provision gateway add` for {org}/{gateway}.\n" + yaml.safe_dump(
        config, sort_keys=False, allow_unicode=True, width=100
    )
    if write_private(outcome.config_path, text):
        outcome.changed.append("gateway.yaml")
    return outcome


def add_utility(
    reg: IdentityRegistry,
    *,
    org: str,
    name: str = "",
    auth: AuthMethod = AuthMethod.PASSWORD,
    rotate: bool = False,
    broker_url: str | None = None,
) -> Outcome:
    """A utility feeding its fleet's telemetry under `sr/v1/{org}/fleet/...`."""
    _check_org(org)
    return _upsert(
        reg,
        username=utility_username(org),
        role=Role.UTILITY,
        ident=org,
        org=org,
        name=name,
        auth=auth,
        service_role=None,
        rotate=rotate,
        broker_url=broker_url,
    )


def add_service(
    reg: IdentityRegistry,
    *,
    service: str,
    role: ServiceRole,
    auth: AuthMethod = AuthMethod.PASSWORD,
    rotate: bool = False,
    broker_url: str | None = None,
    org: str | None = None,
) -> Outcome:
    """A cloud service (ingest, rules, the config publisher, monitoring, a feed reader) with its
    role's rights. A feed reader (`ServiceRole.FEED`) publishes for one organisation, `org`, as
    the source named by its id; the other roles are the whole city's and take no `org`."""
    _check_id("service", service)
    if (role is ServiceRole.FEED) != (org is not None):
        why = "only a feed reader has one"
        if org is None:
            why = "a feed reader needs the organisation it reads for"
        raise RegistryError(f"service {service!r} ({role.value}): {why} (org {org!r})", service)
    if org is not None:
        _check_org(org)
    return _upsert(
        reg,
        username=service_username(service),
        role=Role.SERVICE,
        ident=service,
        org=org,
        name="",
        auth=auth,
        service_role=role,
        rotate=rotate,
        broker_url=broker_url,
    )
