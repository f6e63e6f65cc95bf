"""The demo's broker, provisioned as production's is: no anonymous client, one identity each.

`sitroom provision` (cloud/provision/) keeps its registry, the identities' secrets and the
broker's files in DATA_DIR/provision, as `sitroom provision apply deploy/provision/compose.yaml`
does for compose: the services ingest, rules and api (role `alerts`), the demo's own watcher
(role `monitor`: it reads, never writes), one gateway identity per gateway config, whose
provisioned config (`identities/{id}/gateway.yaml`: broker URL, username, password file) is
the one the gateway runs, and the misconfigured legacy feed the demo plays. Running it again
keeps every identity and password; only the broker's port may change.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass, field
from pathlib import Path

from cloud.provision.broker import generate, paths
from cloud.provision.identities import add_gateway, add_service
from cloud.provision.registry import BrokerSettings, IdentityRegistry, RegistryError, ServiceRole
from cloud.provision.specs import SpecError, load_base_config
from edge.contract import BrokerAddress

# (service id, its role): what each process of the demo may do on the broker (cloud/provision/acl.py).
SERVICES: tuple[tuple[str, ServiceRole], ...] = (
    ("ingest", ServiceRole.INGEST),
    ("rules", ServiceRole.RULES),
    ("api", ServiceRole.ALERTS),
    ("demo", ServiceRole.MONITOR),
)
LEGACY_SENSOR = {"driver": "sim_parking", "id": "p-legacy", "place": "mercatale"}


class DemoBrokerError(RuntimeError):
    """A gateway config or the provisioning folder the demo cannot use, said in one line."""


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str
    password_file: Path

    def address(self, url: str) -> BrokerAddress:
        b = BrokerAddress.parse(url)
        password = self.password_file.read_text(encoding="utf-8").strip()
        return BrokerAddress(b.host, b.port, b.tls, self.username, password)


@dataclass(slots=True)
class DemoBroker:
    url: str
    config: Path  # mosquitto.conf, runnable as is
    services: dict[str, Credentials] = field(default_factory=dict)
    gateways: dict[str, Path] = field(default_factory=dict)  # config file → its provisioned config
    feed: Credentials | None = None

    def service_address(self, service: str) -> BrokerAddress:
        return self.services[service].address(self.url)

    def service_env(self, service: str) -> dict[str, str]:
        """The `SITROOM_MQTT_*` settings of a cloud service (cloud/core/settings.py)."""
        creds = self.services[service]
        return {
            "SITROOM_MQTT_URL": self.url,
            "SITROOM_MQTT_USERNAME": creds.username,
            "SITROOM_MQTT_PASSWORD_FILE": str(creds.password_file),
        }

    def feed_address(self) -> BrokerAddress:
        assert self.feed is not None
        return self.feed.address(self.url)


def provision_demo_broker(
    folder: Path,
    *,
    port: int,
    persistence: Path,
    configs: list[Path],
    feed: tuple[str, str],
) -> DemoBroker:
    """Register every identity of the demo in `folder` and write the broker's files for `port`.

    `persistence` is the broker's own folder (a run's sessions and retained messages); `feed`
    the (org, gateway) of the legacy feed."""
    url = f"mqtt://127.0.0.1:{port}"
    reg = IdentityRegistry(folder)
    out = DemoBroker(url=url, config=paths(reg)["conf"])
    try:
        with reg.transaction():
            # A plain listener on loopback, as compose's broker on its private network
            # (docs/decisions/0009-compose-broker-security.md): no TLS, passwords and the ACL.
            reg.data.broker = BrokerSettings(
                port=port,
                tls_port=None,
                bind_address="127.0.0.1",
                client_certs="off",
                user=getpass.getuser(),
                data_dir=str(persistence.resolve()),
            )
            for service, role in SERVICES:
                o = add_service(reg, service=service, role=role, broker_url=url)
                out.services[service] = _credentials(o.identity.username, o.folder)
            for path in configs:
                base = load_base_config(path)
                gateway, org = base.get("id"), base.get("org")
                if not isinstance(gateway, str) or not isinstance(org, str):
                    raise DemoBrokerError(f"{path}: a gateway config needs `id` and `org`")
                o = add_gateway(reg, gateway=gateway, org=org, base=base, broker_url=url)
                assert o.config_path is not None
                out.gateways[str(path)] = o.config_path
            org, gateway = feed
            o = add_gateway(reg, gateway=gateway, org=org, sensors=[LEGACY_SENSOR], broker_url=url)
            out.feed = _credentials(o.identity.username, o.folder)
            generate(reg, reload=False)
    except (RegistryError, SpecError) as exc:
        raise DemoBrokerError(str(exc)) from None
    return out


def rescue_registry(folder: Path, aside: Path) -> str | None:
    """Move a provisioning folder whose registry cannot be read aside (the demo provisions
    anew); one line saying so, or None when it reads (or does not exist yet)."""
    try:
        IdentityRegistry(folder).load()
    except RegistryError as exc:
        aside.mkdir(parents=True, exist_ok=True)
        folder.replace(aside / folder.name)
        why = str(exc).split(":", 1)[0]
        return f"{why}: the demo's broker identities start anew, the old ones moved to {aside}"
    return None


def _credentials(username: str, folder: Path | None) -> Credentials:
    assert folder is not None  # every password identity has its folder
    return Credentials(username, (folder / "password").resolve())
