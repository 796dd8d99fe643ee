"""Alert events a channel failed to deliver, kept per channel (``alert_deliveries``) until
that channel takes them.

Each channel succeeds or fails on its own: when the webhook receiver is down, mail goes on
as usual and only the webhook retries (with the events it missed, in order, "resolved"
ones included); the alert's own schedule (``last_notified_at``) is never reset by a
failure, so a dead channel never makes another one repeat.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from mtasts import i18n
from mtasts.monitor.alerts import Event, Failure, Notifier
from mtasts.store.models import AlertDelivery

log = logging.getLogger("mtasts.monitor")

MAX_AGE = timedelta(days=7)  # an event a channel could not take for a week is dropped


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def deliver(
    sessions: sessionmaker[Session],
    notifier: Notifier,
    domain: str,
    events: list[Event],
    now: datetime,
) -> list[Failure]:
    """Send ``events`` of ``domain`` on every configured channel, each channel first with
    what it failed to deliver before; keep what fails for that channel only. The failures
    of ``events``."""
    pending: dict[str, list[tuple[int, Event]]] = defaultdict(list)
    channels = notifier.channels()
    with sessions.begin() as db:
        for row in db.scalars(
            select(AlertDelivery).where(AlertDelivery.domain == domain).order_by(AlertDelivery.id)
        ):
            if row.channel not in channels or now - _aware(row.created_at) > MAX_AGE:
                log.warning("dropping undelivered %s alert event for %s", row.channel, domain)
                db.delete(row)
                continue
            recipients = tuple(row.event.get("recipients", ()))
            language = str(row.event.get("language", i18n.DEFAULT))
            event = Event.from_dict(row.event, recipients, language)
            pending[row.channel].append((row.id, event))
    if not events and not pending:
        return []
    new_failures: list[Failure] = []
    for channel in channels:
        old = pending.get(channel, [])
        failures = notifier.deliver_on(channel, [e for _, e in old] + events)
        failed = {f.event.id: f for f in failures}
        with sessions.begin() as db:
            delivered = [row_id for row_id, e in old if e.id not in failed]
            if delivered:
                db.execute(delete(AlertDelivery).where(AlertDelivery.id.in_(delivered)))
            for row_id, e in old:
                if e.id in failed:
                    kept = db.get(AlertDelivery, row_id)
                    if kept is not None:
                        kept.attempts += 1
                        kept.last_error = failed[e.id].error[:500]
            for e in events:
                f = failed.get(e.id)
                if f is None:
                    continue
                new_failures.append(f)
                if e.alert_id:  # stored alerts only (a transfer notice has none)
                    db.add(_row(channel, e, f.error, now))
    return new_failures


def _row(channel: str, e: Event, error: str, now: datetime) -> AlertDelivery:
    return AlertDelivery(
        alert_id=e.alert_id,
        domain=e.domain,
        channel=channel,
        event={**e.to_dict(), "recipients": list(e.recipients), "language": e.language},
        attempts=1,
        created_at=now,
        last_error=error[:500],
    )


def undelivered(db: Session, domain: str) -> list[tuple[str, str, str]]:
    """(channel, event, kind) of what is waiting for a channel, oldest first."""
    return [
        (r.channel, r.event["event"], r.event["kind"])
        for r in db.scalars(
            select(AlertDelivery).where(AlertDelivery.domain == domain).order_by(AlertDelivery.id)
        )
    ]
