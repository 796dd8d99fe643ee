"""Engine, sessions and schema migrations."""

from __future__ import annotations

import math
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"


DB_TIMEOUT = 5.0  # seconds; the `db_timeout` setting


def make_engine(url: str, timeout: float = DB_TIMEOUT) -> Engine:
    """An engine for ``url`` on which no request waits longer than about ``timeout``
    seconds for the database (a hung or locked database then fails fast: the API answers
    503 and /healthz says degraded, instead of every request hanging).

    SQLite gets WAL, foreign keys, a busy timeout of ``timeout`` so that several threads
    (and processes) share one file safely, and ``synchronous=FULL``: with WAL, NORMAL may
    lose the last commits on a power cut, and a report is acknowledged (SMTP 250, HTTP
    201) only after its commit, so that commit must be on disk (RFC 8460 §5.3: senders
    do not resend an acknowledged report).
    PostgreSQL gets ``connect_timeout``, a ``statement_timeout`` (which includes waiting
    for locks), ``tcp_user_timeout`` (a peer that stopped answering) and a pool wait of
    ``timeout``.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": timeout, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(conn: object, _record: object) -> None:
            cur = conn.cursor()  # type: ignore[attr-defined]
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=FULL")
            cur.close()

        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in ("", "psycopg2"):
        url = str(parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False))
    args: dict[str, object] = {}
    if url.startswith("postgresql"):
        ms = max(1, int(timeout * 1000))
        args = {
            "connect_timeout": max(1, math.ceil(timeout)),  # libpq: whole seconds
            "options": f"-c statement_timeout={ms}",
            "tcp_user_timeout": ms,
        }
    return create_engine(
        url, pool_pre_ping=True, pool_size=10, pool_timeout=timeout, connect_args=args
    )


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (idempotent)."""
    command.upgrade(alembic_config(engine), "head")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
