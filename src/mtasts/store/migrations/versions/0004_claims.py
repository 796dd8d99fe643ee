"""claims: a challenge per claim, several claims per name, data bound to the hosting

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 11:00:00

Existing pending domains get a challenge of their own (and expire after the default
claim_ttl, 7 days, unless proven); active ones keep being served. Audit events are bound
to the hosting they belong to; events older than the current hosting of a name (those of a
previous owner) stay unbound, so no tenant sees them.

SQLite cannot drop the UNIQUE(name) of ``domains`` in place: the table is recreated, and
since dropping it runs the ON DELETE CASCADE of ``policy_versions`` and ``domain_checks``
when foreign keys are on, their rows are copied aside first and put back after.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

CLAIM_TTL = 604_800  # config.Settings.claim_ttl's default
SERVED = sa.text("state IN ('active', 'retiring')")
DEPENDENTS = ("policy_versions", "domain_checks")  # ON DELETE CASCADE from domains


def _token() -> str:
    return base64.b32encode(secrets.token_bytes(20)).decode().lower()


def _recreate_domains(sqlite: bool, change: Callable[[Any], None]) -> None:
    conn = op.get_bind()
    if sqlite:
        for t in DEPENDENTS:
            conn.execute(sa.text(f"CREATE TABLE _keep_{t} AS SELECT * FROM {t}"))  # noqa: S608 - constant names
    with op.batch_alter_table(
        "domains",
        recreate="always" if sqlite else "auto",
        table_kwargs={"sqlite_autoincrement": True} if sqlite else {},
    ) as batch_op:
        change(batch_op)
    if sqlite:
        for t in DEPENDENTS:
            conn.execute(sa.text(f"INSERT OR IGNORE INTO {t} SELECT * FROM _keep_{t}"))  # noqa: S608
            conn.execute(sa.text(f"DROP TABLE _keep_{t}"))


def upgrade() -> None:
    conn = op.get_bind()
    sqlite = conn.dialect.name == "sqlite"
    op.add_column("domains", sa.Column("challenge", sa.String(length=64), nullable=True))
    op.add_column(
        "domains", sa.Column("claim_expires_at", sa.DateTime(timezone=True), nullable=True)
    )
    domains = sa.table(
        "domains",
        sa.column("id", sa.Integer()),
        sa.column("state", sa.String()),
        sa.column("challenge", sa.String()),
        sa.column("claim_expires_at", sa.DateTime(timezone=True)),
    )
    expires = datetime.now(UTC) + timedelta(seconds=CLAIM_TTL)
    for pk, state in conn.execute(sa.select(domains.c.id, domains.c.state)).all():
        conn.execute(
            domains.update()
            .where(domains.c.id == pk)
            .values(challenge=_token(), claim_expires_at=expires if state == "pending" else None)
        )

    def change(b: Any) -> None:
        b.alter_column("challenge", existing_type=sa.String(length=64), nullable=False)
        b.drop_constraint("uq_domains_name", type_="unique")
        b.create_unique_constraint("uq_domains_name_owner_id", ["name", "owner_id"])
        b.create_index("ix_domains_name", ["name"], unique=False)
        b.create_index(
            "uq_domains_served_name",
            ["name"],
            unique=True,
            sqlite_where=SERVED,
            postgresql_where=SERVED,
        )

    _recreate_domains(sqlite, change)

    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("domain_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_audit_log_domain_id"), ["domain_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_audit_log_domain_id_domains"),
            "domains",
            ["domain_id"],
            ["id"],
            ondelete="SET NULL",
        )
    # events from the current hosting's start on are its own; older ones (a previous
    # owner's) stay unbound
    op.execute(
        "UPDATE audit_log SET domain_id = (SELECT d.id FROM domains d "
        "WHERE d.name = audit_log.domain AND audit_log.at >= d.created_at) "
        "WHERE audit_log.domain != ''"
    )


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_audit_log_domain_id_domains"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_audit_log_domain_id"))
        batch_op.drop_column("domain_id")
    # only one hosting per name fits the old schema: the served one, else the newest claim
    op.execute(
        "DELETE FROM domains WHERE id NOT IN (SELECT COALESCE("
        "(SELECT s.id FROM domains s WHERE s.name = d.name AND s.state IN ('active', 'retiring')),"
        " (SELECT MAX(n.id) FROM domains n WHERE n.name = d.name)) FROM domains d)"
    )

    def change(b: Any) -> None:
        b.drop_index("uq_domains_served_name")
        b.drop_index("ix_domains_name")
        b.drop_constraint("uq_domains_name_owner_id", type_="unique")
        b.create_unique_constraint("uq_domains_name", ["name"])
        b.drop_column("claim_expires_at")
        b.drop_column("challenge")

    _recreate_domains(sqlite, change)
