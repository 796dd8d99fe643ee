"""Connections of the store: durable commits on SQLite, bounded waits on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from mtasts.store.db import make_engine


def test_sqlite_commits_are_durable_and_waits_bounded(tmp_path: Path) -> None:
    """An acknowledged report is committed with synchronous=FULL (WAL): NORMAL could lose
    the last commits, already acknowledged to the sender, on a power cut."""
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}", timeout=3.0)
    try:
        with engine.connect() as conn:
            assert conn.scalar(text("PRAGMA journal_mode")) == "wal"
            assert conn.scalar(text("PRAGMA synchronous")) == 2  # FULL
            assert conn.scalar(text("PRAGMA busy_timeout")) == 3000
    finally:
        engine.dispose()


@pytest.mark.system
def test_postgresql_statements_time_out(postgres_url: str) -> None:
    engine = make_engine(postgres_url, timeout=2.5)
    try:
        with engine.connect() as conn:
            assert conn.scalar(text("SHOW statement_timeout")) == "2500ms"
        assert engine.pool.timeout() == 2.5  # type: ignore[attr-defined]
    finally:
        engine.dispose()
