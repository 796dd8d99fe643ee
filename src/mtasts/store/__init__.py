"""Persistent state: SQLAlchemy 2 models and Alembic migrations."""
