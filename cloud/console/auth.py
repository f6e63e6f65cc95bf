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


@dataclass(frozen=True, slots=True)
class Backoff:
    """How one kind of key (a username, a client address) is slowed after failed log-ins:
    `free` failures cost nothing, then each further attempt waits twice as long as the one
    before, from `base_s` up to `max_s`; a key quiet for `forget_s` starts again from zero."""

    free: int
    base_s: float
    max_s: float
    forget_s: float

    def wait_s(self, failures: int) -> float:
        if failures < self.free:
            return 0.0
        return min(self.max_s, self.base_s * 2.0 ** (failures - self.free))


# A person mistypes a few times; a guesser needs thousands of tries. After 5 failures a username
# waits 2 s, then 4 s, 8 s ... up to 15 min; a stranger who fails on purpose costs its owner
# seconds, not a fixed five-minute lock, and holding it longer costs the stranger ever longer
# waits of its own (every attempt counts on its address too).
PER_USER = Backoff(free=5, base_s=2.0, max_s=900.0, forget_s=3600.0)
# One address trying many usernames (password spraying); generous, since a whole office behind
# one NAT address shares it.
PER_CLIENT = Backoff(free=20, base_s=1.0, max_s=300.0, forget_s=3600.0)


class LoginThrottledError(Exception):
    """Too many failed log-ins for `key` (`user NAME` or `client ADDRESS`): wait `retry_after_s`."""

    def __init__(self, key: str, retry_after_s: float) -> None:
        self.key = key
        self.retry_after_s = retry_after_s
        super().__init__(f"too many failed log-ins for {key}; try again in {retry_after_s:.0f} s")


@dataclass(slots=True)
class _Count:
    failures: int = 0
    last_s: float = 0.0


@dataclass(frozen=True, slots=True)
class LoginAttempt:
    """An attempt under way: counted as a failure until `LoginThrottle.succeeded` says otherwise."""

    username: str
    client: str


@dataclass(slots=True)
class LoginThrottle:
    """Exponential back-off per username and per client address.

    An attempt is counted the moment it starts, before the (deliberately slow) password check,
    under one lock: requests sent in parallel cannot all pass a check made before any of them
    has failed. A success clears its username and takes back only its own count from its
    address, so a known password does not buy an address more guesses at others. An attempt
    refused here is not counted: only checked passwords are.
    """

    per_user: Backoff = PER_USER
    per_client: Backoff = PER_CLIENT
    _counts: dict[str, _Count] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _count(self, key: str, policy: Backoff, now: float) -> _Count:
        count = self._counts.setdefault(key, _Count())
        if count.failures and now - count.last_s >= policy.forget_s:
            count.failures = 0
        return count

    def attempt(self, username: str, client: str, now: float | None = None) -> LoginAttempt:
        """Count a log-in attempt, or raise `LoginThrottledError` if its username or its
        address must wait first."""
        now = time.monotonic() if now is None else now
        keys = ((f"user {username}", self.per_user), (f"client {client}", self.per_client))
        with self._lock:
            counts = [(key, self._count(key, policy, now), policy) for key, policy in keys]
            waits = [(c.last_s + p.wait_s(c.failures) - now, key) for key, c, p in counts]
            wait_s, key = max(waits)
            if wait_s > 0:
                raise LoginThrottledError(key, wait_s)
            for _, count, _ in counts:
                count.failures += 1
                count.last_s = now
        return LoginAttempt(username, client)

    def succeeded(self, attempt: LoginAttempt) -> None:
        with self._lock:
            self._counts.pop(f"user {attempt.username}", None)
            client = self._counts.get(f"client {attempt.client}")
            if client is not None and client.failures > 0:
                client.failures -= 1

    def failures(self, *, user: str | None = None, client: str | None = None) -> int:
        """The failures counted now for a username or an address (tests, the audit)."""
        key = f"user {user}" if user is not None else f"client {client}"
        with self._lock:
            count = self._counts.get(key)
            return 0 if count is None else count.failures
