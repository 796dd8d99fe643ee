"""A minimum password strength for dashboard users (issue 9)."""

from __future__ import annotations

import pytest

from mtasts.hosting.tenants import ServiceError
from mtasts.web.dashboard.auth import check_password_strength


@pytest.mark.parametrize(
    ("password", "code"),
    [
        ("short", "password-too-short"),
        ("annabelle@example.org", "password-is-email"),
        ("aaaaaaaaaaaa", "password-too-weak"),
        ("1212121212121", "password-too-weak"),
        ("password123", "password-too-weak"),
        ("Qwerty12345!", "password-too-weak"),
        ("1234567890", "password-too-weak"),
        ("annabelle2024", "password-too-weak"),  # the e-mail's local part and a year
    ],
)
def test_weak_passwords_are_refused_with_a_reason(password: str, code: str) -> None:
    with pytest.raises(ServiceError) as info:
        check_password_strength(password, "annabelle@example.org")
    assert (info.value.status, info.value.code) == (422, code)
    assert info.value.message


@pytest.mark.parametrize(
    "password", ["correct horse battery", "a long enough password", "tX9-vq2#Lm4p"]
)
def test_reasonable_passwords_pass(password: str) -> None:
    check_password_strength(password, "annabelle@example.org")


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short", "Use at least 10 characters for a password."),
        ("annabelle@example.org", "The password must not be the e-mail."),
        (
            "aaaaaaaaaaaa",
            "Use at least 5 different characters; a repeated pattern is guessed at once.",
        ),
        (
            "password123",
            "That password is built on a well-known word or on the e-mail; choose something "
            "longer or unrelated (a few random words work well).",
        ),
    ],
)
def test_each_refusal_says_what_to_do(password: str, message: str) -> None:
    with pytest.raises(ServiceError) as info:
        check_password_strength(password, "annabelle@example.org")
    assert info.value.message == message


@pytest.mark.parametrize(
    ("password", "email", "accepted"),
    [
        ("zebrazebra", "", True),  # 5 different characters are enough
        ("passwordab", "", False),  # a well-known word and 2 more characters
        ("passwordabc", "", True),  # ... and 3 more
        (" anna-xyzw", "anna@example.org", False),  # a local part of 4 characters counts
        (" ann-xyzwv", "ann@example.org", True),  # one of 3 does not
        ("annabelle-xyzw!", "annabelle@example.org", True),  # 6 characters more than it
        ("annabelle-xyz!", "annabelle@example.org", False),  # 5 more
        ('"jo@home"12', '"jo@home"@example.org', False),  # a quoted local part with "@"
    ],
)
def test_the_limits_of_each_rule(password: str, email: str, accepted: bool) -> None:
    try:
        check_password_strength(password, email)
    except ServiceError as exc:
        assert not accepted, exc.message
        assert exc.code == "password-too-weak"
    else:
        assert accepted
