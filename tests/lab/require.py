"""Skip loudly when something a test needs is missing; with CI=true, fail instead (a
missing component in CI is a broken set-up, never a silent pass)."""

from __future__ import annotations

import os

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def require(condition: bool, reason: str) -> None:
    """Skip the calling test with ``reason`` unless ``condition`` (fail under CI=true)."""
    if condition:
        return
    if in_ci():
        pytest.fail(f"CI=true and a requirement is missing: {reason}", pytrace=False)
    pytest.skip(f"REQUIREMENT MISSING: {reason}")
