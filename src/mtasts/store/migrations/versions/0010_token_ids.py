"""api_tokens ids are never used twice (SQLite AUTOINCREMENT)

Without AUTOINCREMENT, SQLite gives a new row the largest id plus one: revoking the newest
token and creating another gave the new one the revoked one's id, so a retried
`DELETE /api/tokens/{id}` (or an old line of the account log) pointed at the new token.
PostgreSQL's sequences never reuse an id: nothing to do there.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 17:20:00
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def _rebuild(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    # SQLite cannot alter a table's key: copy it into a new one (the ids kept; AUTOINCREMENT
    # then counts on from the largest copied)
    with op.batch_alter_table(
        "api_tokens", recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
    ):
        pass


def upgrade() -> None:
    _rebuild(True)


def downgrade() -> None:
    _rebuild(False)
