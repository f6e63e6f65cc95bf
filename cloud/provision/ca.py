"""A private certificate authority for the broker and its clients (`cryptography`, ECDSA P-256).

The CA lives in `DIR/ca/` (`ca.key` 0600, `ca.crt`). It signs the broker's server certificate
(with the host names and addresses clients dial, RFC 6125 checks the SAN, not the CN) and one
client certificate per identity whose common name is the identity's MQTT username, so that a
listener with `use_identity_as_username` applies the same ACL to a certificate as to a password.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cloud.provision.files import ensure_dir, write_private

CA_DAYS = 3650
LEAF_DAYS = 825  # the CA/Browser Forum's former ceiling; long enough for a gateway on a pole


class CAError(RuntimeError):
    def __init__(self, message: str, path: Path) -> None:
        self.path = path
        super().__init__(f"{message}: {path}")


@dataclass(frozen=True, slots=True)
class IssuedCert:
    key_pem: bytes
    cert_pem: bytes
    serial: int
    not_after: datetime


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


class CertificateAuthority:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @property
    def key_path(self) -> Path:
        return self.folder / "ca.key"

    @property
    def cert_path(self) -> Path:
        return self.folder / "ca.crt"

    @property
    def crl_path(self) -> Path:
        return self.folder / "ca.crl"

    @property
    def exists(self) -> bool:
        return self.key_path.exists() and self.cert_path.exists()

    def init(self, common_name: str = "Situation Room private CA") -> bool:
        """Create the CA once; False (and nothing touched) when it already exists."""
        if self.exists:
            return False
        if self.key_path.exists() or self.cert_path.exists():
            raise CAError(
                "half a CA is present (key or certificate missing); refusing to overwrite", self.folder
            )
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        ensure_dir(self.folder)
        write_private(self.key_path, _key_pem(key))
        write_private(self.cert_path, cert.public_bytes(serialization.Encoding.PEM))
        self.write_crl([])
        return True

    def _load(self) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        if not self.exists:
            raise CAError("no CA here; run `sitroom provision ca init` first", self.folder)
        key = serialization.load_pem_private_key(self.key_path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise CAError("the CA key is not an EC key", self.key_path)
        return key, x509.load_pem_x509_certificate(self.cert_path.read_bytes())

    @property
    def cert_pem(self) -> bytes:
        return self._load()[1].public_bytes(serialization.Encoding.PEM)

    def issue(
        self, common_name: str, *, server_names: list[str] | None = None, days: int = LEAF_DAYS
    ) -> IssuedCert:
        """A new key and certificate: a server certificate when `server_names` is given, else a client one."""
        ca_key, ca_cert = self._load()
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        not_after = now + timedelta(days=days)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
            )
        )
        if server_names is not None:
            sans: list[x509.GeneralName] = []
            for n in server_names:
                try:
                    sans.append(x509.IPAddress(ipaddress.ip_address(n)))
                except ValueError:
                    sans.append(x509.DNSName(n))
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
            usage = ExtendedKeyUsageOID.SERVER_AUTH
        else:
            usage = ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        return IssuedCert(
            key_pem=_key_pem(key),
            cert_pem=cert.public_bytes(serialization.Encoding.PEM),
            serial=cert.serial_number,
            not_after=not_after,
        )

    def write_crl(self, revoked_serials: list[int]) -> bool:
        """(Re)write the CRL listing `revoked_serials`; False when its content did not change."""
        ca_key, ca_cert = self._load()
        now = datetime.now(UTC)
        if self.crl_path.exists():
            old = x509.load_pem_x509_crl(self.crl_path.read_bytes())
            if sorted(r.serial_number for r in old) == sorted(revoked_serials) and (
                old.next_update_utc is not None and old.next_update_utc > now + timedelta(days=30)
            ):
                return False
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(ca_cert.subject)
            .last_update(now - timedelta(minutes=5))
            .next_update(now + timedelta(days=365))
        )
        for serial in sorted(revoked_serials):
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build()
            )
        crl = builder.sign(ca_key, hashes.SHA256())
        return write_private(self.crl_path, crl.public_bytes(serialization.Encoding.PEM))
