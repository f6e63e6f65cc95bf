"""Broker files generated from the registry: `DIR/mosquitto/` holds all Mosquitto needs.

- `mosquitto.conf`, runnable as is (`mosquitto -c DIR/mosquitto/mosquitto.conf`): anonymous off,
  the password and ACL files below, a plain listener and a TLS listener, queue limits sized on
  purpose (shared/NOTES.md: the default 1000 queued messages drop data silently);
- `passwd` (PBKDF2-SHA512 `$7$` hashes, as `mosquitto_passwd` writes) and `acl`;
- `certs/`: the CA certificate, the CRL and the broker's server key and certificate.

Every file is 0600 and every folder 0700, owned by the user the broker runs as: newer Mosquitto
versions refuse password and ACL files that others can read. A change of the password or ACL
file is applied live with SIGHUP (Mosquitto 2.0 reloads both, and disconnects clients that no
longer authenticate); listener and TLS settings need a restart.
"""

from __future__ import annotations

import contextlib
import getpass
import ipaddress
import os
import pwd
import signal
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from cloud.provision.acl import acl_file
from cloud.provision.ca import CertificateAuthority
from cloud.provision.files import ensure_dir, write_private
from cloud.provision.passwords import password_file
from cloud.provision.registry import BrokerSettings, IdentityRegistry


@dataclass(slots=True)
class BrokerFiles:
    """What a regeneration changed; `reloaded` is the pid sent SIGHUP, if any."""

    changed: list[Path] = field(default_factory=list)
    reloaded: int | None = None

    @property
    def needs_reload(self) -> bool:
        return any(p.name in ("passwd", "acl") for p in self.changed)

    @property
    def needs_restart(self) -> bool:
        return any(p.name in ("mosquitto.conf", "server.crt", "ca.crl") for p in self.changed)


def _owner(user: str | None) -> tuple[int, int] | None:
    """chown target for the broker's files when we are root and the broker runs as someone else."""
    if user is None or os.geteuid() != 0:
        return None
    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid


def _dirs(reg: IdentityRegistry, owner: tuple[int, int] | None) -> None:
    for d in (reg.mosquitto_dir, reg.mosquitto_dir / "certs", reg.mosquitto_dir / "data"):
        ensure_dir(d)
        if owner is not None:
            os.chown(d, *owner)
    if owner is not None and owner[0] != reg.folder.stat().st_uid:
        # The broker's user must reach DIR/mosquitto: it may traverse DIR (x), not list it (no r);
        # ca/, identities/ and registry.json stay 0700/0600, closed to it.
        reg.folder.chmod(0o711)


def unreachable_ancestor(reg: IdentityRegistry) -> Path | None:
    """A folder above DIR that the broker's user cannot traverse, if any (it could not start)."""
    settings = reg.data.broker
    if settings is None or settings.broker_dir is not None:
        return None
    owner = _owner(settings.user)
    if owner is None:
        return None
    uid, gid = owner
    for folder in reg.folder.resolve().parents:
        st = folder.stat()
        if st.st_uid == uid:
            ok = bool(st.st_mode & 0o100)
        elif st.st_gid == gid:
            ok = bool(st.st_mode & 0o010)
        else:
            ok = bool(st.st_mode & 0o001)
        if not ok:
            return folder
    return None


def paths(reg: IdentityRegistry) -> dict[str, Path]:
    m = reg.mosquitto_dir
    return {
        "conf": m / "mosquitto.conf",
        "passwd": m / "passwd",
        "acl": m / "acl",
        "pid": m / "mosquitto.pid",
        "data": m / "data",
        "ca": m / "certs" / "ca.crt",
        "crl": m / "certs" / "ca.crl",
        "cert": m / "certs" / "server.crt",
        "key": m / "certs" / "server.key",
    }


def broker_paths(reg: IdentityRegistry) -> dict[str, Path]:
    """The paths as the broker sees them, written into mosquitto.conf: `paths(reg)` unless the
    broker reads a copy elsewhere (`broker_dir`, a container's mount), where it has no pid file
    of ours (`provision reload` cannot reach it) and persists into `data_dir`."""
    local = paths(reg)
    s = reg.data.broker
    if s is None or (s.broker_dir is None and s.data_dir is None):
        return local
    out = dict(local)
    if s.broker_dir is not None:
        there = Path(s.broker_dir)
        out = {k: there / v.relative_to(reg.mosquitto_dir) for k, v in local.items()}
        out["conf"] = there / "mosquitto.conf"
        del out["pid"]
    if s.data_dir is not None:
        out["data"] = Path(s.data_dir)
    return out


def _server_cert_is_current(cert_path: Path, ca_pem: bytes, names: list[str]) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (FileNotFoundError, ValueError):
        return False
    ca = x509.load_pem_x509_certificate(ca_pem)
    if cert.issuer != ca.subject:
        return False
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    have = {str(v) for v in san.get_values_for_type(x509.DNSName)} | {
        str(v) for v in san.get_values_for_type(x509.IPAddress)
    }
    want = set()
    for n in names:
        try:
            want.add(str(ipaddress.ip_address(n)))
        except ValueError:
            want.add(n)
    return have == want


# A listener option in Mosquitto 2.0 (given before any `listener` it would open the default
# listener on 1883): so it is written into each listener.
_CLIENT_ID_IS_USERNAME = (
    "# A client's id is its username (a certificate's common name on mutual TLS), whatever it",
    "# sends: no identity can take over another's persistent session and its queue, or push it",
    "# off the broker, by claiming its client id. One connection per identity at a time: every",
    "# process gets its own (docs/security.md, docs/decisions/0015-security-hardening.md).",
    "use_username_as_clientid true",
)


def render_conf(settings: BrokerSettings, p: dict[str, Path], user: str) -> str:
    lines = [
        "# Written by `sitroom provision broker` from registry.json; regenerate rather than edit.",
        "# Run it as is: mosquitto -c " + str(p["conf"]),
        "",
        "# --- Who may connect ---------------------------------------------------------------",
        "per_listener_settings false",
        "allow_anonymous false",
        f"password_file {p['passwd']}",
        f"acl_file {p['acl']}",
        "",
        "# --- Persistence: retained status/config and persistent sessions survive a restart --",
        "persistence true",
        f"persistence_location {p['data']}/",
        "autosave_interval 30",
        "persistent_client_expiration 14d",
        "",
        "# --- Queue limits, per client (shared/NOTES.md: the default 1000 drops silently) ----",
        "# Sized for outage x rate: ~200 gateways x 1 batch/s into ingest; 100000 messages cover",
        "# ~8 minutes of ingest being down, max_queued_bytes caps that queue's memory.",
        f"max_queued_messages {settings.max_queued_messages}",
        f"max_queued_bytes {settings.max_queued_bytes}",
        "# Ingest acks after InfluxDB accepted the write: this is its read-ahead window.",
        f"max_inflight_messages {settings.max_inflight_messages}",
        "queue_qos0_messages true",
        "# Twice the contract's 1 MiB payload cap; ingest dead-letters what lies between.",
        f"max_packet_size {settings.max_packet_size}",
        "",
        "# --- Process ---------------------------------------------------------------------",
        *([f"pid_file {p['pid']}"] if "pid" in p else []),
        "# Started as root, mosquitto switches to this user after binding its ports; it must be",
        "# the owner of the files above (they are 0600).",
        f"user {user}",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "log_type information",
        "connection_messages true",
        "",
    ]
    if settings.port is not None:
        lines += [
            "# --- Plain MQTT: username and password ---------------------------------------------",
            f"listener {settings.port} {settings.bind_address}",
            "protocol mqtt",
            *_CLIENT_ID_IS_USERNAME,
            "",
        ]
    if settings.tls_port is not None:
        lines += [
            "# --- MQTT over TLS: server certificate from our CA ------------------------------------",
            f"listener {settings.tls_port} {settings.bind_address}",
            "protocol mqtt",
            *_CLIENT_ID_IS_USERNAME,
            f"cafile {p['ca']}",
            f"certfile {p['cert']}",
            f"keyfile {p['key']}",
            "tls_version tlsv1.2",
        ]
        if settings.client_certs == "required":
            lines += [
                "# Mutual TLS: only a client certificate signed by our CA gets in, its common name",
                "# is its username for the ACL, and no password is asked.",
                "require_certificate true",
                "use_identity_as_username true",
                f"crlfile {p['crl']}",
            ]
        else:
            lines += ["require_certificate false"]
        lines.append("")
    return "\n".join(lines)


def generate(reg: IdentityRegistry, *, reload: bool = True) -> BrokerFiles:
    """Write every broker file that changed from the registry; SIGHUP a running broker if needed."""
    out = BrokerFiles()
    settings = reg.data.broker
    if settings is None:
        return out  # no broker yet: `sitroom provision broker` writes everything at once
    user = settings.user or getpass.getuser()
    # A broker reading a copy elsewhere (broker_dir) gets that copy handed to it by whoever
    # makes it (`provision apply`); its user need not even exist on this machine.
    owner = _owner(user) if settings.broker_dir is None else None
    p = paths(reg)
    _dirs(reg, owner)

    def put(path: Path, text: str | bytes) -> None:
        if write_private(path, text, owner=owner):
            out.changed.append(path)

    identities = reg.active()
    put(p["passwd"], password_file((i.username, i.password_hash) for i in identities if i.password_hash))
    put(p["acl"], acl_file(identities))
    ca = CertificateAuthority(reg.ca_dir)
    if ca.exists:
        ca.write_crl(reg.revoked_serials())
        ca_pem = ca.cert_pem
        put(p["ca"], ca_pem)
        put(p["crl"], ca.crl_path.read_bytes())
        if (
            settings is not None
            and settings.tls_port is not None
            and not _server_cert_is_current(p["cert"], ca_pem, settings.server_names)
        ):
            issued = ca.issue(settings.server_names[0], server_names=settings.server_names)
            put(p["key"], issued.key_pem)
            put(p["cert"], issued.cert_pem)
    put(p["conf"], render_conf(settings, broker_paths(reg), user))
    if reload and out.needs_reload:
        out.reloaded = reload_running(reg)
    return out


def running_pid(reg: IdentityRegistry) -> int | None:
    """The pid of a broker running on this config (from its pid file), if it is alive."""
    try:
        pid = int(paths(reg)["pid"].read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    # A stale pid file may name a recycled pid: only a mosquitto started on our config counts.
    if not cmdline or not cmdline[0].endswith(b"mosquitto"):
        return None
    conf = paths(reg)["conf"].resolve()
    with contextlib.suppress(OSError):
        cwd = Path(f"/proc/{pid}/cwd").resolve()
        if any((cwd / arg.decode(errors="replace")).resolve() == conf for arg in cmdline[1:] if arg):
            return pid
    return None


def reload_running(reg: IdentityRegistry) -> int | None:
    """SIGHUP the broker running on this config so it rereads passwd and acl; its pid, or None."""
    pid = running_pid(reg)
    if pid is None:
        return None
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGHUP)
        return pid
    return None
