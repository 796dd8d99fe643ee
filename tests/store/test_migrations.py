"""The Alembic migrations build exactly the schema of the models, on SQLite and PostgreSQL,
and go down and up again."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect

from mtasts.store.db import alembic_config, make_engine, migrate
from mtasts.store.models import Base

TABLES = {
    "users",
    "api_tokens",
    "domains",
    "policy_versions",
    "audit_log",
    "tls_reports",
    "tls_report_policies",
    "tls_report_failures",
    "domain_checks",
    "alerts",
    "alert_deliveries",
    "leases",
    "tls_report_quota",
    "alembic_version",
}


def _check(engine: Engine) -> None:
    migrate(engine)
    migrate(engine)  # idempotent
    assert set(inspect(engine).get_table_names()) == TABLES
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], f"models and migrations disagree: {diff}"
    command.downgrade(alembic_config(engine), "base")
    assert set(inspect(engine).get_table_names()) == {"alembic_version"}
    migrate(engine)
    assert set(inspect(engine).get_table_names()) == TABLES


def test_migrations_on_sqlite(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'sub' / 'm.db'}")
    try:
        _check(engine)
    finally:
        engine.dispose()


@pytest.mark.system
def test_migrations_on_postgresql(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    try:
        assert engine.dialect.name == "postgresql"
        _check(engine)
    finally:
        engine.dispose()
