"""A revoked token's id never comes back as a new token's (migration 0010): a retried
`DELETE /api/tokens/{id}` or an old line of the account log must not point at a token
made since. SQLite without AUTOINCREMENT gave the newest row's id out again."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from mtasts.config import Settings
from mtasts.store.models import ApiToken
from mtasts.web.dashboard.auth import revoke_token
from mtasts.web.serve import open_service


def test_a_revoked_tokens_id_is_not_given_again(tmp_path: Path) -> None:
    svc = open_service(Settings(data_dir=tmp_path))
    try:
        user = svc.authenticate(svc.create_token("ops@example.org", label="first"))
        assert user is not None
        with svc.sessions() as db:
            first = db.scalar(select(ApiToken.id).where(ApiToken.label == "first"))
        assert first is not None
        revoke_token(svc, user, first)  # the newest row goes
        svc.create_token("ops@example.org", label="second")
        with svc.sessions() as db:
            second = db.scalar(select(ApiToken.id).where(ApiToken.label == "second"))
        assert second is not None and second > first
    finally:
        svc.close()
