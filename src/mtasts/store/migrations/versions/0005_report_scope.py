"""report scope: dedup per domain, 64-bit counts, daily report quotas

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 11:00:00

- ``tls_reports``: unique (domain, organization, report_id) instead of (organization,
  report_id), so a report-id posted first under another domain cannot suppress the real
  report (issue 10 §3); ``size`` (bytes charged to the quota); 64-bit session counts.
- ``tls_report_policies.successful/failed`` and ``tls_report_failures.count``: 64-bit.
- ``tls_report_quota``: per (domain, day, organization) usage for the daily quotas.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tls_reports", schema=None) as batch_op:
        batch_op.drop_constraint("uq_tls_reports_organization", type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_tls_reports_domain"), ["domain", "organization", "report_id"]
        )
        batch_op.alter_column("sessions_ok", type_=sa.BigInteger(), existing_nullable=False)
        batch_op.alter_column("sessions_failed", type_=sa.BigInteger(), existing_nullable=False)
        batch_op.add_column(
            sa.Column("size", sa.BigInteger(), nullable=False, server_default=sa.text("0"))
        )
    with op.batch_alter_table("tls_report_policies", schema=None) as batch_op:
        batch_op.alter_column("successful", type_=sa.BigInteger(), existing_nullable=False)
        batch_op.alter_column("failed", type_=sa.BigInteger(), existing_nullable=False)
    with op.batch_alter_table("tls_report_failures", schema=None) as batch_op:
        batch_op.alter_column("count", type_=sa.BigInteger(), existing_nullable=False)
    op.create_table(
        "tls_report_quota",
        sa.Column("domain", sa.String(length=253), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("organization", sa.String(length=1000), nullable=False),
        sa.Column("reports", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("domain", "day", "organization", name=op.f("pk_tls_report_quota")),
    )


def downgrade() -> None:
    op.drop_table("tls_report_quota")
    with op.batch_alter_table("tls_report_failures", schema=None) as batch_op:
        batch_op.alter_column("count", type_=sa.Integer(), existing_nullable=False)
    with op.batch_alter_table("tls_report_policies", schema=None) as batch_op:
        batch_op.alter_column("successful", type_=sa.Integer(), existing_nullable=False)
        batch_op.alter_column("failed", type_=sa.Integer(), existing_nullable=False)
    # Going back to one report per (organization, report_id) across domains: keep the
    # first of each, as the old constraint would have.
    reports = sa.table(
        "tls_reports",
        sa.column("id", sa.Integer()),
        sa.column("organization", sa.String()),
        sa.column("report_id", sa.String()),
    )
    first = sa.select(sa.func.min(reports.c.id)).group_by(
        reports.c.organization, reports.c.report_id
    )
    op.execute(sa.delete(reports).where(reports.c.id.not_in(first)))
    with op.batch_alter_table("tls_reports", schema=None) as batch_op:
        batch_op.drop_column("size")
        batch_op.alter_column("sessions_failed", type_=sa.Integer(), existing_nullable=False)
        batch_op.alter_column("sessions_ok", type_=sa.Integer(), existing_nullable=False)
        batch_op.drop_constraint("uq_tls_reports_domain", type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_tls_reports_organization"), ["organization", "report_id"]
        )
