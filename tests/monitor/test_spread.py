"""The fleet stays spread over the interval (issue 14 #8): each domain's checks run at its
own fixed spot, also after domains were added together and after an outage. No checks
run here: the schedule is what is tested, on a clock the test moves."""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from mtasts.config import Settings
from mtasts.hosting.tenants import HostingService
from mtasts.monitor.scheduler import Monitor, next_spot
from mtasts.store.models import Domain, DomainCheck, DomainState, User
from mtasts.web.serve import open_service

INTERVAL = 3600.0
TICK = timedelta(seconds=30)
FLEET = 1000
PER_TICK = 100  # what one process gets through in a tick while catching up


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[tuple[HostingService, list[datetime]]]:
    now = [datetime(2026, 11, 30, 10, 0, 7, tzinfo=UTC)]
    svc = open_service(Settings(data_dir=tmp_path, monitor_interval=INTERVAL))
    svc.clock = lambda: now[0]
    with svc.sessions.begin() as db:
        owner = User(email="ops@example.org", created_at=now[0])
        db.add(owner)
        db.flush()
        db.execute(
            insert(Domain),
            [
                {
                    "name": f"d{i:04d}.fleet.test",
                    "owner_id": owner.id,
                    "state": DomainState.ACTIVE,
                    "created_at": now[0],
                    "challenge": secrets.token_hex(8),
                }
                for i in range(FLEET)
            ],
        )
    try:
        yield svc, now
    finally:
        svc.close()


def _run(monitor: Monitor, now: list[datetime], until: datetime) -> list[datetime]:
    """Tick until ``until``, claiming what is due (PER_TICK at most); the claim times."""
    claimed = []
    while now[0] < until:
        claimed += [now[0]] * len(monitor.claim_due(PER_TICK))
        now[0] += TICK
    return claimed


def _schedule(svc: HostingService) -> dict[str, datetime]:
    with svc.sessions() as db:
        rows = db.execute(
            select(Domain.name, DomainCheck.next_check_at).join(
                DomainCheck, DomainCheck.domain_id == Domain.id
            )
        ).all()
    return {name: at if at.tzinfo else at.replace(tzinfo=UTC) for name, at in rows}


def test_the_fleet_stays_spread_after_a_two_hour_outage(
    fleet: tuple[HostingService, list[datetime]],
) -> None:
    svc, now = fleet
    monitor = Monitor(svc, holder="node-a")
    start = now[0]
    _run(monitor, now, start + timedelta(hours=1, minutes=5))  # every domain checked once
    now[0] += timedelta(hours=2)  # the outage: nothing ran for two hours
    _run(monitor, now, now[0] + timedelta(minutes=10))  # catch-up, PER_TICK at a time
    caught_up = now[0]
    schedule = _schedule(svc)
    assert len(schedule) == FLEET
    # each domain is back at its own spot, at most one and a half intervals on (at least
    # half an interval after its catch-up check, so never checked twice in a row)
    for name, at in schedule.items():
        assert at - caught_up <= timedelta(seconds=1.5 * INTERVAL)
        assert at == next_spot(name, INTERVAL, at - timedelta(seconds=1))
    # the hour after: every domain once, checks in every minute, never in a few bursts
    # (catching up at now + interval put 1,000 domains into 10 check times, for ever)
    _run(monitor, now, caught_up + timedelta(minutes=30))
    window = now[0]
    claimed = _run(monitor, now, window + timedelta(hours=1))
    per_minute = Counter(int((t - window).total_seconds() // 60) for t in claimed)
    assert len(claimed) == FLEET
    assert len(per_minute) == 60
    assert max(per_minute.values()) <= 2 * FLEET // 60


def test_next_spot_is_fixed_and_strictly_later() -> None:
    t = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
    a = next_spot("example.com", INTERVAL, t)
    assert t < a <= t + timedelta(seconds=INTERVAL)
    assert next_spot("example.com", INTERVAL, a) == a + timedelta(seconds=INTERVAL)
    assert next_spot("example.com", INTERVAL, a - timedelta(microseconds=1)) == a
    assert next_spot("example.com", 0, t) > t  # monitoring off: no division by zero
