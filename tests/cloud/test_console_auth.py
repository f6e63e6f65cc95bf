"""Console log-in: scrypt password hashes and signed, expiring session tokens."""

from __future__ import annotations

import pytest

from cloud.console.auth import (
    ConsoleRole,
    LoginThrottle,
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


def test_repeated_failed_log_ins_are_throttled_until_the_window_passes() -> None:
    throttle = LoginThrottle(max_failures=3, window_s=60)
    for t in (0.0, 1.0, 2.0):
        assert throttle.retry_after_s("anna", now=t) == 0
        throttle.failed("anna", now=t)
    assert throttle.retry_after_s("anna", now=3.0) == 57.0
    assert throttle.retry_after_s("marco", now=3.0) == 0  # per username
    assert throttle.retry_after_s("anna", now=60.5) == 0  # the first failure left the window
    throttle.succeeded("anna")
    assert throttle.retry_after_s("anna", now=61) == 0
