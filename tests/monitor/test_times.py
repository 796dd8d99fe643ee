"""Monitor and alert times carry their UTC offset wherever they are shown (the alerts API,
the dashboard's latest check, webhook events), whatever the store: SQLite keeps no zone,
and PostgreSQL answers in its session's TimeZone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import insert

from mtasts.config import Settings
from mtasts.monitor.alerts import Condition, list_alerts, reconcile
from mtasts.store.models import Alert, Domain, DomainCheck, DomainState, User
from mtasts.web.dashboard.health import latest_checks
from mtasts.web.serve import open_service

OPENED = datetime(2026, 11, 30, 9, 15, 0, tzinfo=UTC)


def _shown(database_url: str, data_dir: Path) -> tuple[list[dict[str, object]], datetime | None]:
    """An alert opened, notified and closed, and a check, as the API and dashboard show them."""
    svc = open_service(Settings(data_dir=data_dir, database_url=database_url))
    try:
        with svc.sessions.begin() as db:
            owner = User(email="owner@example.org", created_at=OPENED)
            db.add(owner)
            db.flush()
            domain = Domain(
                name="times.example",
                owner_id=owner.id,
                state=DomainState.ACTIVE,
                created_at=OPENED,
                challenge="c",
            )
            db.add(domain)
            db.flush()
            db.execute(
                insert(DomainCheck),
                [
                    {
                        "domain_id": domain.id,
                        "next_check_at": OPENED + timedelta(hours=1),
                        "last_check_at": OPENED,
                        "last_result": {"findings": [], "delegation_ok": True},
                        "claimed_by": "",
                    }
                ],
            )
            db.add(
                Alert(
                    domain="times.example",
                    kind="delegation-broken",
                    subject="_mta-sts.times.example",
                    severity="critical",
                    state="closed",
                    message="m",
                    opened_at=OPENED,
                    last_notified_at=OPENED + timedelta(minutes=1),
                    closed_at=OPENED + timedelta(minutes=2),
                    notifications=1,
                )
            )
            db.add(
                Alert(
                    domain="times.example",
                    kind="sender-silent",
                    subject="mail.example",
                    severity="warning",
                    state="open",
                    message="m",
                    opened_at=OPENED,
                    last_notified_at=OPENED,
                    notifications=1,
                )
            )
        with svc.sessions.begin() as db:
            # a repeat of an alert read back from the store, as webhooks carry it
            still = Condition("sender-silent", "mail.example", "warning", "m")
            events = reconcile(
                db, "times.example", [still], OPENED + timedelta(days=2), timedelta(days=1), ()
            )
            assert [e.to_dict()["opened_at"] for e in events] == ["2026-11-30T09:15:00+00:00"]
        with svc.sessions() as db:
            shown = list_alerts(db, "times.example", include_closed=True)
            shown = [a for a in shown if a["state"] == "closed"]
            view = {"domain": "times.example", "owner": "owner@example.org", "state": "active"}
            check = latest_checks(db, [view])["times.example"]
        return shown, check.at
    finally:
        svc.close()


def _assert_utc(shown: list[dict[str, object]], check_at: datetime | None) -> None:
    (alert,) = shown
    assert alert["opened_at"] == "2026-11-30T09:15:00+00:00"
    assert alert["last_notified_at"] == "2026-11-30T09:16:00+00:00"
    assert alert["closed_at"] == "2026-11-30T09:17:00+00:00"
    assert check_at is not None and check_at.utcoffset() == timedelta(0) and check_at == OPENED


def test_alert_times_carry_their_offset_on_sqlite(tmp_path: Path) -> None:
    _assert_utc(*_shown("", tmp_path))


@pytest.mark.system
def test_alert_times_are_utc_on_postgresql_in_another_time_zone(
    postgres_url: str, tmp_path: Path
) -> None:
    """A server whose TimeZone is not UTC still shows +00:00 (and the same instant)."""
    name = postgres_url.rsplit("/", 1)[1]
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE \"{name}\" SET timezone TO 'America/New_York'")
    _assert_utc(*_shown(postgres_url, tmp_path))
