"""The identity registry: who may connect to the broker, as what, and where its secrets are.

Stored as one JSON document, `DIR/registry.json` (0600), rewritten atomically under a lock so
that two technicians' commands never interleave. Secrets are not in it: only password hashes
and certificate serials. Each identity's cleartext credentials sit in
`DIR/identities/{username}/credentials.json`, readable by the owner of DIR alone.

Identities and their MQTT usernames (never ambiguous: ids match `[a-z0-9-]`, which has no dot):

- a gateway: its gateway id (`gw-mercatale`), publishing under `sr/v1/{org}/{gateway}/`;
- a utility feeding fleet telemetry: `org.{org}` (`org.alia`), publishing under `sr/v1/{org}/fleet/`;
- a cloud service: `svc.{id}` (`svc.ingest`), with the rights of its role.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cloud.provision.files import ensure_dir, write_private
from edge.contract import Id

REGISTRY_VERSION = 1


class Role(StrEnum):
    GATEWAY = "gateway"
    UTILITY = "utility"
    SERVICE = "service"


class ServiceRole(StrEnum):
    INGEST = "ingest"  # reads every gateway topic, writes dead letters and its own health
    RULES = "rules"  # reads every gateway topic, writes alerts and its own health
    CONTROL = "control"  # writes gateways' desired configs (retained), reads everything
    MONITOR = "monitor"  # reads everything, $SYS included; writes nothing
    ALERTS = "alerts"  # writes alerts only (the worksite API's coordination findings); reads nothing
    PROBE = "probe"  # reads the broker's uptime in $SYS, nothing else: a container health check


class AuthMethod(StrEnum):
    PASSWORD = "password"  # noqa: S105 (the name of a method, not a secret)
    CERT = "cert"
    BOTH = "both"

    @property
    def has_password(self) -> bool:
        return self in (AuthMethod.PASSWORD, AuthMethod.BOTH)

    @property
    def has_cert(self) -> bool:
        return self in (AuthMethod.CERT, AuthMethod.BOTH)


class RegistryError(ValueError):
    """A registry operation that cannot be done as asked; `subject` is the id concerned."""

    def __init__(self, message: str, subject: str) -> None:
        self.subject = subject
        super().__init__(message)


class Identity(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str
    role: Role
    id: Id  # the gateway id, the org id (utilities) or the service id
    org: Id | None = None
    service_role: ServiceRole | None = None
    name: str = ""
    auth: AuthMethod = AuthMethod.PASSWORD
    password_hash: str | None = None
    cert_serial: int | None = None
    cert_not_after: datetime | None = None
    created_at: datetime
    updated_at: datetime
    revoked_at: datetime | None = None
    revoked_serials: list[int] = Field(default_factory=list)  # earlier certificates, rotated or revoked

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


ClientCerts = Literal["off", "optional", "required"]


class BrokerSettings(BaseModel):
    """How `DIR/mosquitto/mosquitto.conf` is generated; kept so every regeneration agrees."""

    model_config = ConfigDict(extra="forbid")

    port: int | None = Field(default=1883, ge=1, le=65535)  # None: no plain listener
    tls_port: int | None = Field(default=8883, ge=1, le=65535)  # None: no TLS listener
    bind_address: str = "127.0.0.1"
    # The names clients dial, written into the server certificate's SubjectAltName.
    server_names: list[str] = Field(default_factory=lambda: ["localhost", "127.0.0.1"])
    # off: TLS with passwords only; optional: a client may present a certificate from our CA
    # instead of a password; required: the TLS listener accepts only certificates from our CA.
    client_certs: ClientCerts = "optional"
    user: str | None = None  # mosquitto's `user`: who the broker runs as after binding
    # Where the broker reads the files of DIR/mosquitto when it does not run beside them (a
    # container mounting a copy, `provision apply` exports): the paths written into
    # mosquitto.conf. None: DIR/mosquitto itself, and the broker can be reloaded from here.
    broker_dir: str | None = Field(default=None, pattern=r"^/")
    # Its persistence folder (default: `data/` beside its files); with broker_dir, a writable
    # volume of its own, since the files are mounted read-only.
    data_dir: str | None = Field(default=None, pattern=r"^/")
    max_queued_messages: int = Field(default=100_000, ge=1)
    max_queued_bytes: int = Field(default=268_435_456, ge=0)
    # Above the rules service's SITROOM_RULES_CHECKPOINT_MESSAGES (500): it acknowledges only
    # after a checkpoint, and the broker sends no more than this unacknowledged (decision 0018).
    max_inflight_messages: int = Field(default=1000, ge=1)
    max_packet_size: int = Field(default=2_097_152, ge=1024)


class RegistryData(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1  # REGISTRY_VERSION
    broker: BrokerSettings | None = None
    identities: dict[str, Identity] = Field(default_factory=dict)


def now_utc() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def gateway_username(gateway: str) -> str:
    return gateway


def utility_username(org: str) -> str:
    return f"org.{org}"


def service_username(service: str) -> str:
    return f"svc.{service}"


class IdentityRegistry:
    """The provisioning folder DIR: registry, CA, identities' secrets and broker files."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.data = RegistryData()

    @property
    def path(self) -> Path:
        return self.folder / "registry.json"

    @property
    def ca_dir(self) -> Path:
        return self.folder / "ca"

    @property
    def mosquitto_dir(self) -> Path:
        return self.folder / "mosquitto"

    def identity_dir(self, username: str) -> Path:
        return self.folder / "identities" / username

    @contextlib.contextmanager
    def transaction(self) -> Iterator[IdentityRegistry]:
        """Load under an exclusive lock, yield, and save when the block ends without error."""
        ensure_dir(self.folder)
        lock_path = self.folder / ".lock"
        with lock_path.open("a") as lock:
            lock_path.chmod(0o600)
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                self.load()
                yield self
                self.save()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def load(self) -> IdentityRegistry:
        try:
            raw = self.path.read_text()
        except FileNotFoundError:
            self.data = RegistryData()
            return self
        try:
            self.data = RegistryData.model_validate_json(raw)
        except ValidationError as exc:
            raise RegistryError(f"{self.path} is not a valid registry: {exc}", str(self.path)) from None
        return self

    def save(self) -> bool:
        return write_private(self.path, self.data.model_dump_json(indent=2) + "\n")

    # --- queries -----------------------------------------------------------------------------

    def get(self, username: str) -> Identity | None:
        return self.data.identities.get(username)

    def find(self, ident: str) -> Identity:
        """By username, gateway id, `org.{id}` / org id of a utility, or `svc.{id}` / service id."""
        for candidate in (ident, utility_username(ident), service_username(ident)):
            found = self.data.identities.get(candidate)
            if found is not None:
                return found
        raise RegistryError(f"no identity {ident!r} in {self.path}", ident)

    def identities(self, *, include_revoked: bool = True) -> list[Identity]:
        return [i for _, i in sorted(self.data.identities.items()) if include_revoked or not i.is_revoked]

    def active(self) -> list[Identity]:
        return self.identities(include_revoked=False)

    def revoked_serials(self) -> list[int]:
        out: set[int] = set()
        for i in self.data.identities.values():
            out.update(i.revoked_serials)
            if i.is_revoked and i.cert_serial is not None:
                out.add(i.cert_serial)
        return sorted(out)

    # --- changes -----------------------------------------------------------------------------

    def upsert(self, identity: Identity) -> None:
        existing = self.data.identities.get(identity.username)
        if existing is not None and (existing.role, existing.org) != (identity.role, identity.org):
            raise RegistryError(
                f"{identity.username!r} is already registered as {existing.role.value}"
                + (f" of org {existing.org!r}" if existing.org else "")
                + "; revoke it and choose another id",
                identity.username,
            )
        self.data.identities[identity.username] = identity

    def revoke(self, ident: str) -> tuple[Identity, bool]:
        """Mark revoked; `(identity, changed)` so that revoking twice is harmless."""
        identity = self.find(ident)
        if identity.is_revoked:
            return identity, False
        identity.revoked_at = now_utc()
        identity.updated_at = identity.revoked_at
        return identity, True
