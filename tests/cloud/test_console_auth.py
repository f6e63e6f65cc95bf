"""Console log-in: scrypt password hashes, signed expiring session tokens, the log-in throttle."""

from __future__ import annotations

import pytest

from cloud.console.auth import (
    Backoff,
    ConsoleRole,
    LoginThrottle,
    LoginThrottledError,
    Operator,
    SessionSigner,
    hash_password,
    verify_password,
)


def test_a_password_verifies_against_its_salted_hash_and_nothing_else() -> None:
    stored = hash_password("Prato-2026!")
    assert stored.startswith("scrypt$")
    assert verify_password("Prato-2026!", stored)
    assert not verify_password("prato-2026!", stored)
    assert hash_password("Prato-2026!") != stored  # a fresh salt each time
    assert not verify_password("x", "md5$abc")


def test_a_session_token_names_its_operator_until_it_expires() -> None:
    signer = SessionSigner(b"k" * 32, max_age_s=60)
    token = signer.sign("anna", now=1000)
    assert signer.check(token, now=1059) == "anna"
    assert signer.check(token, now=1061) is None


@pytest.mark.parametrize("tamper", ["bWFyY28", "9999999999", "0" * 64])
def test_a_tampered_session_token_is_refused(tamper: str) -> None:
    signer = SessionSigner(b"k" * 32)
    user, expiry, mac = signer.sign("anna").split(".")
    parts = {"bWFyY28": [tamper, expiry, mac], "9999999999": [user, tamper, mac]}.get(
        tamper, [user, expiry, tamper]
    )
    assert signer.check(".".join(parts)) is None


def test_a_token_signed_with_another_secret_is_refused() -> None:
    assert SessionSigner(b"b" * 32).check(SessionSigner(b"a" * 32).sign("anna")) is None


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        SessionSigner(b"short")


@pytest.mark.parametrize(
    ("role", "own", "other"),
    [
        (ConsoleRole.MUNICIPALITY_OPERATOR, True, True),
        (ConsoleRole.UTILITY_OPERATOR, True, False),
        (ConsoleRole.TECHNICIAN, True, False),
        (ConsoleRole.READ_ONLY, False, False),
    ],
)
def test_each_role_acts_for_what_it_may(role: ConsoleRole, own: bool, other: bool) -> None:
    op = Operator("x", "publiacqua", role, "X")
    assert op.can_act_for("publiacqua") is own
    assert op.can_act_for("toscana-energia") is other
    assert op.can_post is (role is not ConsoleRole.READ_ONLY)


POLICY = Backoff(free=3, base_s=2.0, max_s=60.0, forget_s=3600.0)


def _throttle() -> LoginThrottle:
    return LoginThrottle(
        per_user=POLICY, per_client=Backoff(free=10, base_s=1.0, max_s=30.0, forget_s=3600.0)
    )


def test_failed_log_ins_beyond_the_free_ones_wait_twice_as_long_each_time_up_to_a_cap() -> None:
    throttle = _throttle()
    t = 0.0
    waits = []
    for _ in range(12):
        try:
            throttle.attempt("anna", "10.0.0.1", now=t)  # fails (never marked a success)
        except LoginThrottledError as exc:
            waits.append(exc.retry_after_s)
            t += exc.retry_after_s
            throttle.attempt("anna", "10.0.0.1", now=t)
    # Three free failures, then 2 s, 4 s, 8 s ... capped at 60 s: never a flat lock-out.
    assert waits == [2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0, 60.0]


def test_an_attempt_counts_the_moment_it_starts_before_the_password_is_checked() -> None:
    throttle = _throttle()
    for _ in range(3):
        throttle.attempt("anna", "10.0.0.1", now=0.0)  # three in flight, none finished yet
    with pytest.raises(LoginThrottledError) as refused:
        throttle.attempt("anna", "10.0.0.2", now=0.0)
    assert refused.value.retry_after_s == 2.0
    assert refused.value.key == "user anna"


def test_a_success_clears_its_user_but_only_undoes_its_own_count_on_the_client() -> None:
    throttle = _throttle()
    for name in ("a", "b"):
        throttle.attempt(name, "10.0.0.1", now=0.0)
    for _ in range(2):
        throttle.attempt("anna", "10.0.0.1", now=0.0)
    throttle.succeeded(throttle.attempt("anna", "10.0.0.1", now=0.0))
    assert throttle.failures(user="anna") == 0
    assert throttle.failures(client="10.0.0.1") == 4  # a known password does not buy guesses


def test_one_client_trying_many_usernames_is_slowed_and_another_client_is_not() -> None:
    throttle = _throttle()
    for i in range(10):
        throttle.attempt(f"user{i}", "10.0.0.1", now=0.0)
    with pytest.raises(LoginThrottledError) as refused:
        throttle.attempt("user-new", "10.0.0.1", now=0.0)
    assert refused.value.key == "client 10.0.0.1"
    throttle.attempt("user-new", "10.0.0.2", now=0.0)


def test_a_refused_attempt_is_not_counted_and_a_quiet_key_starts_again() -> None:
    throttle = _throttle()
    for _ in range(3):
        throttle.attempt("anna", "10.0.0.1", now=0.0)
    for _ in range(50):
        with pytest.raises(LoginThrottledError):
            throttle.attempt("anna", "10.0.0.1", now=1.0)
    assert throttle.failures(user="anna") == 3
    throttle.attempt("anna", "10.0.0.1", now=3601.0)  # an hour of quiet: forgotten
    assert throttle.failures(user="anna") == 1
