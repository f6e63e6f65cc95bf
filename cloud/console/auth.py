"""Operators, roles, password hashing (scrypt) and signed session cookies.

A session cookie is `base64(payload).expiry.hmac` signed with the console's secret (HMAC-SHA256,
compared in constant time); nothing about the operator but the username is in it, so a role
change or a deleted operator takes effect at the next request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

# scrypt cost: n=2**14, r=8, p=1 is the interactive-login setting of RFC 7914 §2 (16 MiB, ~50 ms).
_SCRYPT_N = 2**14
_SCRYPT_R = 8
_SCRYPT_P = 1
_SCRYPT_LEN = 32


class ConsoleRole(StrEnum):
    MUNICIPALITY_OPERATOR = "municipality_operator"  # sees and acts on everything
    UTILITY_OPERATOR = "utility_operator"  # edits its own organisation's worksites and alerts
    TECHNICIAN = "technician"  # posts, and updates its own organisation's worksites
    READ_ONLY = "read_only"  # watches the board; no post, no change


@dataclass(frozen=True, slots=True)
class Operator:
    username: str
    org: str
    role: ConsoleRole
    display_name: str

    @property
    def is_municipality(self) -> bool:
        return self.role is ConsoleRole.MUNICIPALITY_OPERATOR

    @property
    def can_post(self) -> bool:
        return self.role is not ConsoleRole.READ_ONLY

    def can_act_for(self, org: str) -> bool:
        """Acknowledge, assign, resolve or edit something that belongs to `org`."""
        return self.is_municipality or (self.role is not ConsoleRole.READ_ONLY and org == self.org)

    def to_dict(self) -> dict[str, str]:
        return {
            "username": self.username,
            "org": self.org,
            "role": self.role.value,
            "display_name": self.display_name,
        }


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=_SCRYPT_LEN
    )
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    got = hashlib.scrypt(
        password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=len(digest) // 2
    )
    return hmac.compare_digest(got.hex(), digest)


class SessionSigner:
    """Sign and check `username` session tokens that expire after `max_age_s`."""

    def __init__(self, secret: bytes, max_age_s: int = 12 * 3600) -> None:
        if len(secret) < 16:
            raise ValueError(f"session secret must be at least 16 bytes, got {len(secret)}")
        self.secret = secret
        self.max_age_s = max_age_s

    def _mac(self, body: str) -> str:
        return hmac.new(self.secret, body.encode(), hashlib.sha256).hexdigest()

    def sign(self, username: str, now: float | None = None) -> str:
        expiry = int((now or time.time()) + self.max_age_s)
        body = f"{base64.urlsafe_b64encode(username.encode()).decode()}.{expiry}"
        return f"{body}.{self._mac(body)}"

    def check(self, token: str, now: float | None = None) -> str | None:
        """The username in a valid, unexpired token; None otherwise."""
        try:
            user_b64, expiry, mac = token.rsplit(".", 2)
        except ValueError:
            return None
        body = f"{user_b64}.{expiry}"
        if not hmac.compare_digest(mac, self._mac(body)):
            return None
        if not expiry.isdigit() or int(expiry) < (now or time.time()):
            return None
        try:
            return base64.urlsafe_b64decode(user_b64.encode()).decode()
        except (ValueError, UnicodeDecodeError):
            return None


@dataclass(slots=True)
class LoginThrottle:
    """At most `max_failures` failed log-ins per username per `window_s`; then refuse until the
    oldest failure leaves the window (password guessing costs hours, a typo nothing)."""

    max_failures: int = 5
    window_s: float = 300.0
    _failures: dict[str, deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _recent(self, username: str, now: float) -> deque[float]:
        q = self._failures.setdefault(username, deque())
        while q and q[0] <= now - self.window_s:
            q.popleft()
        return q

    def retry_after_s(self, username: str, now: float | None = None) -> float:
        """0 when a log-in may be tried now, else the seconds to wait."""
        now = time.monotonic() if now is None else now
        with self._lock:
            q = self._recent(username, now)
            return 0.0 if len(q) < self.max_failures else q[0] + self.window_s - now

    def failed(self, username: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._recent(username, now).append(now)

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._failures.pop(username, None)
