"""tls reports

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 03:54:15.287494
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tls_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organization", sa.String(length=1000), nullable=False),
        sa.Column("report_id", sa.String(length=1000), nullable=False),
        sa.Column("domain", sa.String(length=253), nullable=False),
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("contact", sa.Text(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("route", sa.String(length=16), nullable=False),
        sa.Column("dkim", sa.String(length=16), nullable=True),
        sa.Column("repairs", sa.JSON(), nullable=False),
        sa.Column("sessions_ok", sa.Integer(), nullable=False),
        sa.Column("sessions_failed", sa.Integer(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tls_reports")),
        sa.UniqueConstraint("organization", "report_id", name=op.f("uq_tls_reports_organization")),
    )
    with op.batch_alter_table("tls_reports", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tls_reports_domain"), ["domain"], unique=False)
        batch_op.create_index(batch_op.f("ix_tls_reports_start"), ["start"], unique=False)

    op.create_table(
        "tls_report_policies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("report_pk", sa.Integer(), nullable=False),
        sa.Column("policy_type", sa.String(length=32), nullable=False),
        sa.Column("policy_domain", sa.String(length=253), nullable=False),
        sa.Column("policy_strings", sa.JSON(), nullable=False),
        sa.Column("mx_hosts", sa.JSON(), nullable=False),
        sa.Column("successful", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["report_pk"],
            ["tls_reports.id"],
            name=op.f("fk_tls_report_policies_report_pk_tls_reports"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tls_report_policies")),
    )
    with op.batch_alter_table("tls_report_policies", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_tls_report_policies_report_pk"), ["report_pk"], unique=False
        )

    op.create_table(
        "tls_report_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("policy_pk", sa.Integer(), nullable=False),
        sa.Column("result_type", sa.String(length=64), nullable=False),
        sa.Column("sending_mta_ip", sa.String(length=64), nullable=True),
        sa.Column("receiving_mx_hostname", sa.String(length=253), nullable=True),
        sa.Column("receiving_mx_helo", sa.String(length=253), nullable=True),
        sa.Column("receiving_ip", sa.String(length=64), nullable=True),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("additional_information", sa.Text(), nullable=True),
        sa.Column("failure_reason_code", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["policy_pk"],
            ["tls_report_policies.id"],
            name=op.f("fk_tls_report_failures_policy_pk_tls_report_policies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tls_report_failures")),
    )
    with op.batch_alter_table("tls_report_failures", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_tls_report_failures_policy_pk"), ["policy_pk"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("tls_report_failures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tls_report_failures_policy_pk"))

    op.drop_table("tls_report_failures")
    with op.batch_alter_table("tls_report_policies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tls_report_policies_report_pk"))

    op.drop_table("tls_report_policies")
    with op.batch_alter_table("tls_reports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tls_reports_start"))
        batch_op.drop_index(batch_op.f("ix_tls_reports_domain"))

    op.drop_table("tls_reports")
