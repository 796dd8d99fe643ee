"""Dashboard accounts in the store, without a server: setting a password (and who it
creates or promotes), the user a session cookie stands for, signing out everywhere, the
language setting (tests/web/test_dashboard_http.py goes through the same over HTTP)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from mtasts.config import Settings
from mtasts.hosting.tenants import HostingService, ServiceError
from mtasts.store.models import AuditEvent, User
from mtasts.web.dashboard import auth
from mtasts.web.serve import open_service

PASSWORD = "correct horse battery"
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[HostingService]:
    svc = open_service(Settings(data_dir=tmp_path))
    svc.clock = lambda: NOW
    try:
        yield svc
    finally:
        svc.close()


def _user(service: HostingService, email: str) -> User:
    with service.sessions() as db:
        user = db.scalar(select(User).where(User.email == email))
        assert user is not None
        db.expunge(user)
        return user


def test_set_password_creates_once_promotes_and_never_demotes(service: HostingService) -> None:
    assert auth.set_password(service, " New@Web.Lab.Test ", PASSWORD) is True
    user = _user(service, "new@web.lab.test")
    assert not user.is_admin and user.password_hash and user.password_hash != PASSWORD
    assert user.created_at is not None
    assert auth.set_password(service, "new@web.lab.test", PASSWORD + "!", admin=True) is False
    assert _user(service, "new@web.lab.test").is_admin
    assert auth.set_password(service, "new@web.lab.test", PASSWORD) is False  # admin kept
    assert _user(service, "new@web.lab.test").is_admin
    assert auth.set_password(service, "boss@web.lab.test", PASSWORD, admin=True) is True
    assert _user(service, "boss@web.lab.test").is_admin
    with service.sessions() as db:
        events = db.scalars(select(AuditEvent).where(AuditEvent.action == "password-set")).all()
        seen = [(e.user_id, e.domain, e.detail, e.domain_id) for e in events]
    uid = user.id
    assert seen[:3] == [(uid, "", {"email": "new@web.lab.test"}, None)] * 3
    assert len(seen) == 4


@pytest.mark.parametrize("email", ["no-at-sign.example", "a" * 309 + "@example.org", "", "   "])
def test_set_password_refuses_what_is_no_e_mail(service: HostingService, email: str) -> None:
    with pytest.raises(ServiceError) as info:
        auth.set_password(service, email, PASSWORD)
    shown = email.strip().lower()
    assert (info.value.status, info.value.code) == (422, "email-invalid")
    assert info.value.message == f"{shown!r} is not an e-mail address."


def test_the_longest_e_mail_is_accepted(service: HostingService) -> None:
    email = "a" * 308 + "@example.org"
    assert len(email) == 320 and auth.set_password(service, email, PASSWORD)


def test_a_weak_password_is_refused_before_anything_is_stored(service: HostingService) -> None:
    with pytest.raises(ServiceError) as info:
        auth.set_password(service, "weak@web.lab.test", "weak@web.lab.test")
    assert info.value.code == "password-is-email"
    with service.sessions() as db:
        assert db.scalar(select(User).where(User.email == "weak@web.lab.test")) is None


def test_the_session_user_needs_the_same_password_and_epoch(service: HostingService) -> None:
    auth.set_password(service, "s@web.lab.test", PASSWORD)
    user = _user(service, "s@web.lab.test")
    pw = auth.fingerprint(user.password_hash)
    found = auth.session_user(service, user.id, pw, 0)
    assert found is not None and found.email == "s@web.lab.test"  # usable outside the store
    assert auth.session_user(service, user.id + 1000, pw, 0) is None
    assert auth.session_user(service, user.id, pw[:-1] + "x", 0) is None
    assert auth.session_user(service, user.id, pw, 1) is None
    auth.end_sessions(service, user.id)
    assert auth.session_user(service, user.id, pw, 0) is None
    again = auth.session_user(service, user.id, pw, 1)
    assert again is not None and again.session_epoch == 1
    auth.end_sessions(service, user.id)
    assert _user(service, "s@web.lab.test").session_epoch == 2
    auth.set_password(service, "s@web.lab.test", PASSWORD + "!")  # a new password
    assert auth.session_user(service, user.id, pw, 2) is None


def test_change_password_needs_the_current_one(service: HostingService) -> None:
    auth.set_password(service, "c@web.lab.test", PASSWORD)
    user = _user(service, "c@web.lab.test")
    with pytest.raises(ServiceError) as info:
        auth.change_password(service, user, "wrong password", "a new long password")
    assert (info.value.status, info.value.code) == (403, "password-wrong")
    assert info.value.message == "The current password is not right."
    assert auth.verify_login(service, "c@web.lab.test", PASSWORD) is not None
    changed = auth.change_password(service, user, PASSWORD, "a new long password")
    assert changed.id == user.id and changed.password_hash != user.password_hash
    assert changed.password_hash == _user(service, "c@web.lab.test").password_hash
    assert auth.verify_login(service, "c@web.lab.test", "a new long password") is not None
    assert auth.verify_login(service, "c@web.lab.test", PASSWORD) is None
    with pytest.raises(ServiceError) as weak:
        auth.change_password(service, changed, "a new long password", "short")
    assert weak.value.code == "password-too-short"


def test_the_language_setting_is_the_user_s_own(service: HostingService) -> None:
    auth.set_password(service, "l@web.lab.test", PASSWORD)
    auth.set_password(service, "other@web.lab.test", PASSWORD)
    user = _user(service, "l@web.lab.test")
    returned = auth.set_language(service, user, "es")
    assert returned is user and user.language == "es"
    assert _user(service, "l@web.lab.test").language == "es"
    assert _user(service, "other@web.lab.test").language is None


def test_a_token_is_revoked_by_its_owner_only(service: HostingService) -> None:
    service.create_token("owner@web.lab.test", label="deploy")
    service.create_token("other@web.lab.test", label="theirs")
    owner, other = _user(service, "owner@web.lab.test"), _user(service, "other@web.lab.test")
    (mine,) = auth.list_tokens(service, owner)
    (theirs,) = auth.list_tokens(service, other)
    for token_id in (theirs["id"], theirs["id"] + 100):
        with pytest.raises(ServiceError) as info:
            auth.revoke_token(service, owner, token_id)
        assert (info.value.status, info.value.code) == (404, "token-not-found")
        assert info.value.message == "No such token."
    assert auth.list_tokens(service, other) == [theirs]
    auth.revoke_token(service, owner, mine["id"])
    assert auth.list_tokens(service, owner) == []
    with service.sessions() as db:
        (event,) = db.scalars(select(AuditEvent).where(AuditEvent.action == "token-revoked"))
        assert (event.user_id, event.domain, event.detail) == (
            owner.id,
            "",
            {"label": "deploy", "token": mine["id"]},
        )
