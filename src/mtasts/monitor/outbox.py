"""Alert events a channel failed to deliver, kept per channel (``alert_deliveries``) until
that channel takes them.

Each channel succeeds or fails on its own: when the webhook receiver is down, mail goes on
as usual and only the webhook retries (with the events it missed, in order, "resolved"
ones included); the alert's own schedule (``last_notified_at``) is never reset by a
failure, so a dead channel never makes another one repeat.

Retries run on their own schedule, not at the domain's next check: the monitor's retry
pass (:func:`retry_due`, once a tick) sends what is due, backing off from RETRY_FIRST to at
most RETRY_MAX between attempts. A new event for a channel that still has a backlog for the
domain queues behind it (same schedule), so a channel always gets a domain's events in
order. The pass claims rows by a conditional update of ``next_attempt_at`` (as the checks
are claimed), so with several processes on one database each retry is sent by one.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from mtasts import i18n
from mtasts.monitor.alerts import Event, Failure, Notifier
from mtasts.store.models import AlertDelivery

log = logging.getLogger("mtasts.monitor")

MAX_AGE = timedelta(days=7)  # an event a channel could not take for a week is dropped
RETRY_FIRST = timedelta(minutes=1)  # wait before the first retry; doubled after each failure
RETRY_MAX = timedelta(hours=1)  # the longest wait between two attempts (bounded backoff)
# a claimed row is not due again for this long: time to send it (a process that died while
# sending leaves it to another one then)
HOLD = timedelta(minutes=5)


def backoff(attempts: int) -> timedelta:
    """The wait after ``attempts`` failed attempts: 1, 2, 4 ... minutes, at most an hour."""
    doublings = min(max(attempts - 1, 0), 16)
    return min(RETRY_FIRST * (1 << doublings), RETRY_MAX)


def deliver(
    sessions: sessionmaker[Session],
    notifier: Notifier,
    domain: str,
    events: list[Event],
    now: datetime,
) -> list[Failure]:
    """Send ``events`` of ``domain`` (a check's) on every configured channel; a channel
    with a backlog for the domain gets them queued behind it instead (in order, sent by the
    retry pass). Keeps what a channel fails to take, for that channel only; the failures."""
    if not events:
        return []
    channels = notifier.channels()
    with sessions.begin() as db:
        backlog = dict(
            db.execute(
                select(AlertDelivery.channel, func.min(AlertDelivery.next_attempt_at))
                .where(AlertDelivery.domain == domain)
                .group_by(AlertDelivery.channel)
            ).all()
        )
        for channel in channels:
            if channel in backlog:
                due = backlog[channel]
                for e in events:
                    if e.alert_id:
                        db.add(_row(channel, e, "", now, 0, due))
    failures: list[Failure] = []
    for channel in channels:
        if channel not in backlog:
            failures += _send(sessions, notifier, channel, [], events, now)
    return failures


def retry_due(
    sessions: sessionmaker[Session], notifier: Notifier, now: datetime, limit: int = 100
) -> int:
    """The retry pass: send what is due to each channel (up to ``limit`` domain/channel
    backlogs), oldest first; drop what a channel could not take within MAX_AGE or what
    waits for a channel no longer configured. The number of events delivered."""
    channels = notifier.channels()
    due = or_(AlertDelivery.next_attempt_at.is_(None), AlertDelivery.next_attempt_at <= now)
    with sessions.begin() as db:
        stale = db.execute(
            delete(AlertDelivery)
            .where(
                or_(
                    AlertDelivery.channel.not_in(channels),
                    AlertDelivery.created_at < now - MAX_AGE,
                )
            )
            .returning(AlertDelivery.domain, AlertDelivery.channel)
        ).all()
        for domain, channel in stale:
            log.warning("dropping undelivered %s alert event for %s", channel, domain)
        groups = db.execute(
            select(AlertDelivery.domain, AlertDelivery.channel)
            .where(due)
            .group_by(AlertDelivery.domain, AlertDelivery.channel)
            .order_by(func.min(AlertDelivery.id))
            .limit(limit)
        ).all()
    delivered = 0
    for domain, channel in groups:
        # the claim: a row another process claimed meanwhile is no longer due
        with sessions.begin() as db:
            won = set(
                db.scalars(
                    update(AlertDelivery)
                    .where(AlertDelivery.domain == domain, AlertDelivery.channel == channel, due)
                    .values(next_attempt_at=now + HOLD)
                    .returning(AlertDelivery.id)
                    .execution_options(synchronize_session=False)
                )
            )
            rows = [
                (row.id, _event(row))
                for row in db.scalars(
                    select(AlertDelivery)
                    .where(AlertDelivery.id.in_(won))
                    .order_by(AlertDelivery.id)
                )
            ]
        if rows:
            failed = _send(sessions, notifier, channel, rows, [], now)
            delivered += len(rows) - len(failed)
    return delivered


def _event(row: AlertDelivery) -> Event:
    """A kept event as it was, in the language it was written in."""
    recipients = tuple(row.event.get("recipients", ()))
    return Event.from_dict(row.event, recipients, str(row.event.get("language", i18n.DEFAULT)))


def _send(
    sessions: sessionmaker[Session],
    notifier: Notifier,
    channel: str,
    old: list[tuple[int, Event]],
    events: list[Event],
    now: datetime,
) -> list[Failure]:
    """``old`` (kept rows, in order) then ``events`` on ``channel``; delivered rows are
    removed, failed ones wait their backoff, failed new events are kept. The failures (of
    both)."""
    failures = notifier.deliver_on(channel, [e for _, e in old] + events)
    failed = {f.event.id: f for f in failures}
    with sessions.begin() as db:
        delivered = [row_id for row_id, e in old if e.id not in failed]
        if delivered:
            db.execute(delete(AlertDelivery).where(AlertDelivery.id.in_(delivered)))
        for row_id, e in old:
            kept = db.get(AlertDelivery, row_id) if e.id in failed else None
            if kept is not None:
                kept.attempts += 1
                kept.last_error = failed[e.id].error[:500]
                kept.next_attempt_at = now + backoff(kept.attempts)
        for e in events:
            f = failed.get(e.id)
            if f is not None and e.alert_id:  # stored alerts only (a transfer notice has none)
                db.add(_row(channel, e, f.error, now, 1, now + backoff(1)))
    return failures


def _row(
    channel: str, e: Event, error: str, now: datetime, attempts: int, due: datetime | None
) -> AlertDelivery:
    return AlertDelivery(
        alert_id=e.alert_id,
        domain=e.domain,
        channel=channel,
        event={**e.to_dict(), "recipients": list(e.recipients), "language": e.language},
        attempts=attempts,
        created_at=now,
        last_error=error[:500],
        next_attempt_at=due,
    )


def undelivered(db: Session, domain: str) -> list[tuple[str, str, str]]:
    """(channel, event, kind) of what is waiting for a channel, oldest first."""
    return [
        (r.channel, r.event["event"], r.event["kind"])
        for r in db.scalars(
            select(AlertDelivery).where(AlertDelivery.domain == domain).order_by(AlertDelivery.id)
        )
    ]
