"""Dashboard password hashes: argon2id with the parameters RFC 9106 recommends in
production, and a hash made with other parameters brought up to date at the next sign-in
(the tests themselves hash with a cheap profile, see tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import pytest
from argon2 import PasswordHasher, Type, extract_parameters, profiles
from sqlalchemy import delete, select, update

from mtasts.config import Settings
from mtasts.hosting.tenants import HostingService
from mtasts.store.models import User
from mtasts.web.dashboard import auth
from mtasts.web.serve import open_service
from tests.conftest import PRODUCTION_HASHER

PASSWORD = "correct horse battery"


@pytest.fixture
def service(tmp_path: Path) -> Iterator[HostingService]:
    svc = open_service(Settings(data_dir=tmp_path))
    try:
        yield svc
    finally:
        svc.close()


def _stored(service: HostingService, email: str) -> str:
    with service.sessions() as db:
        h = db.scalar(select(User.password_hash).where(User.email == email))
    assert h is not None
    return h


def test_production_hashes_are_argon2id_with_rfc_9106_parameters() -> None:
    # RFC 9106 §4, second recommended option: argon2id, t=3, p=4, m=64 MiB
    assert PRODUCTION_HASHER.type is Type.ID
    params = extract_parameters(PRODUCTION_HASHER.hash(PASSWORD))
    assert params == profiles.RFC_9106_LOW_MEMORY
    assert (params.time_cost, params.memory_cost, params.parallelism) == (3, 65536, 4)


def test_a_hash_with_old_parameters_is_renewed_at_sign_in(service: HostingService) -> None:
    email = "old-hash@web.lab.test"
    auth.set_password(service, email, PASSWORD)
    current = auth._hasher  # the hasher in use now (the tests' cheap one)
    older = PasswordHasher(
        time_cost=current.time_cost + 1,
        memory_cost=current.memory_cost * 2,
        parallelism=current.parallelism,
    )
    old = older.hash(PASSWORD)
    with service.sessions.begin() as db:
        user = db.scalar(select(User).where(User.email == email))
        assert user is not None
        user.password_hash = old
    assert current.check_needs_rehash(old)

    assert auth.verify_login(service, email, "not the password at all") is None
    assert _stored(service, email) == old  # a wrong password changes nothing

    user = auth.verify_login(service, email, PASSWORD)
    assert user is not None and user.email == email
    renewed = _stored(service, email)
    assert renewed != old and not current.check_needs_rehash(renewed)
    assert current.verify(renewed, PASSWORD)
    assert user.password_hash == renewed  # the returned user carries the stored hash

    # up to date now: the next sign-in keeps it
    again = auth.verify_login(service, email, PASSWORD)
    assert again is not None and _stored(service, email) == renewed


def test_unknown_e_mail_and_password_less_user_do_not_sign_in(service: HostingService) -> None:
    assert auth.verify_login(service, "nobody@web.lab.test", PASSWORD) is None
    service.create_token("api-only@web.lab.test")  # a user without a dashboard password
    assert auth.verify_login(service, "api-only@web.lab.test", PASSWORD) is None
    assert auth.verify_login(service, "api-only@web.lab.test", "") is None
    auth.set_password(service, " Mixed@Web.Lab.Test ", PASSWORD)
    user = auth.verify_login(service, "  MIXED@web.lab.test ", PASSWORD)
    assert user is not None and user.email == "mixed@web.lab.test"


class _MeanwhileHasher(PasswordHasher):
    """The tests' hasher, with something done by another process while a hash is being
    verified (a real verification takes a quarter of a second: time enough for it)."""

    meanwhile: Callable[[], None] = staticmethod(lambda: None)

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        ok = super().verify(hash, password)
        type(self).meanwhile()
        return ok


@pytest.mark.parametrize("meanwhile", ["new password", "user removed"])
def test_a_rehash_never_overwrites_what_changed_meanwhile(
    service: HostingService, monkeypatch: pytest.MonkeyPatch, meanwhile: str
) -> None:
    email = "race@web.lab.test"
    auth.set_password(service, email, PASSWORD)
    current = auth._hasher
    old = PasswordHasher(time_cost=current.time_cost + 1).hash(PASSWORD)
    with service.sessions.begin() as db:
        db.execute(update(User).where(User.email == email).values(password_hash=old))

    def elsewhere() -> None:
        _MeanwhileHasher.meanwhile = staticmethod(lambda: None)  # once
        if meanwhile == "new password":
            auth.set_password(service, email, "another long password")
        else:
            with service.sessions.begin() as db:
                db.execute(delete(User).where(User.email == email))

    hasher = _MeanwhileHasher.from_parameters(extract_parameters(current.hash("x")))
    monkeypatch.setattr(auth, "_hasher", hasher)
    monkeypatch.setattr(_MeanwhileHasher, "meanwhile", staticmethod(elsewhere))
    user = auth.verify_login(service, email, PASSWORD)  # right when it was checked
    assert user is not None
    if meanwhile == "new password":
        assert auth.verify_login(service, email, "another long password") is not None
        assert auth.verify_login(service, email, PASSWORD) is None
    else:
        with service.sessions() as db:
            assert db.scalar(select(User).where(User.email == email)) is None
