"""Mosquitto password-file hashing, byte for byte what `mosquitto_passwd` 2.0 writes.

Mosquitto 2.0 stores `username:$7$<iterations>$<salt>$<hash>`: PBKDF2-HMAC-SHA512 with a
12-byte random salt, 101 iterations and a 64-byte derived key, salt and key in standard
base64 (mosquitto `apps/mosquitto_passwd/mosquitto_passwd.c`, `src/password_mosq.c`).
The older `$6$` form (one salted SHA-512) is still read by the broker, so `verify` accepts it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable

PBKDF2_ITERATIONS = 101  # mosquitto 2.0's PW_DEFAULT_ITERATIONS
SALT_BYTES = 12
HASH_BYTES = 64  # the SHA-512 digest length, which mosquitto uses as the PBKDF2 key length


class PasswordHashError(ValueError):
    def __init__(self, message: str, value: str) -> None:
        self.value = value
        super().__init__(f"{message}: {value[:24]!r}")


def hash_password(password: str, *, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS) -> str:
    """The `$7$...` string mosquitto_passwd would write for `password`."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    key = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, HASH_BYTES)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(key).decode()}"


def verify(password: str, hashed: str) -> bool:
    """True when `password` matches a `$6$` or `$7$` mosquitto hash."""
    parts = hashed.split("$")
    try:
        if len(parts) == 5 and parts[1] == "7":
            iterations, salt, key = int(parts[2]), base64.b64decode(parts[3]), base64.b64decode(parts[4])
            candidate = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, len(key))
        elif len(parts) == 4 and parts[1] == "6":
            salt, key = base64.b64decode(parts[2]), base64.b64decode(parts[3])
            candidate = hashlib.sha512(password.encode() + salt).digest()
        else:
            raise PasswordHashError("not a mosquitto $6$ or $7$ hash", hashed)
    except (ValueError, TypeError) as exc:
        if isinstance(exc, PasswordHashError):
            raise
        raise PasswordHashError("malformed mosquitto hash", hashed) from None
    return hmac.compare_digest(candidate, key)


def new_password(nbytes: int = 24) -> str:
    """A random password safe in URLs, YAML and shell (base64url, 32 characters by default)."""
    return secrets.token_urlsafe(nbytes)


def password_file(entries: Iterable[tuple[str, str]]) -> str:
    """The text of a password file from `(username, hash)` pairs, sorted for stable diffs."""
    lines = []
    for username, hashed in sorted(entries):
        if ":" in username or "\n" in username or not username:
            raise PasswordHashError("a mosquitto username cannot be empty or hold ':' or a newline", username)
        lines.append(f"{username}:{hashed}\n")
    return "".join(lines)
