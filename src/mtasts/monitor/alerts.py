"""Alerts: the conditions a check found become alerts that open once, are re-sent on a
schedule (and at once when they get worse), and close when the condition is gone; each
event is delivered by e-mail and by a signed webhook."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import smtplib
import ssl
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from mtasts.config import Settings, split_hostport
from mtasts.store.models import Alert

log = logging.getLogger("mtasts.monitor")

SEVERITIES = ("critical", "warning", "info")


@dataclass(frozen=True)
class Condition:
    """Something wrong (or worth saying) about a domain, as one check saw it."""

    kind: str  # e.g. delegation-broken, certificate-expiring, mx-not-covered
    subject: str  # what it is about: a record name, a host, a sender
    severity: str  # critical, warning or info
    message: str
    fix: str = ""
    level: int = 0  # a higher level of the same alert is an escalation (e.g. 21 -> 7 days)


@dataclass(frozen=True)
class Event:
    """One notification: an alert opened, repeated, escalated or resolved."""

    event: str  # opened, repeated, escalated, resolved
    alert_id: int
    domain: str
    kind: str
    subject: str
    severity: str
    message: str
    fix: str
    opened_at: datetime
    at: datetime
    recipients: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "alert_id": self.alert_id,
            "domain": self.domain,
            "kind": self.kind,
            "subject": self.subject,
            "severity": self.severity,
            "message": self.message,
            "fix": self.fix,
            "opened_at": self.opened_at.isoformat(),
            "at": self.at.isoformat(),
        }


def _aware(dt: datetime) -> datetime:
    from datetime import UTC

    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def reconcile(
    db: Session,
    domain: str,
    conditions: list[Condition],
    now: datetime,
    renotify: timedelta,
    recipients: tuple[str, ...],
) -> list[Event]:
    """Bring the domain's open alerts in line with ``conditions`` (in ``db``'s transaction)
    and return the events to send. Info conditions open and close silently after their
    first notice."""
    current = {(c.kind, c.subject): c for c in conditions}
    open_alerts = {
        (a.kind, a.subject): a
        for a in db.scalars(select(Alert).where(Alert.domain == domain, Alert.state == "open"))
    }
    events: list[Event] = []

    def event(kind: str, a: Alert) -> None:
        a.last_notified_at = now
        a.notifications += 1
        events.append(
            Event(
                kind,
                a.id,
                domain,
                a.kind,
                a.subject,
                a.severity,
                a.message,
                a.fix,
                _aware(a.opened_at),
                now,
                recipients,
            )
        )

    for key, a in open_alerts.items():
        if key not in current:
            a.state, a.closed_at = "closed", now
            if a.severity != "info":
                event("resolved", a)
    for key, c in current.items():
        found = open_alerts.get(key)
        if found is None:
            a = Alert(
                domain=domain,
                kind=c.kind,
                subject=c.subject,
                severity=c.severity,
                level=c.level,
                state="open",
                message=c.message,
                fix=c.fix,
                opened_at=now,
                notifications=0,
            )
            db.add(a)
            db.flush()
            event("opened", a)
            continue
        a = found
        worse = c.level > a.level or SEVERITIES.index(c.severity) < SEVERITIES.index(a.severity)
        a.message, a.fix, a.severity, a.level = c.message, c.fix, c.severity, c.level
        if worse:
            event("escalated", a)
        elif a.severity != "info" and (
            a.last_notified_at is None or now - _aware(a.last_notified_at) >= renotify
        ):
            event("repeated", a)
    return events


def list_alerts(db: Session, domain: str, include_closed: bool = False) -> list[dict[str, Any]]:
    """The domain's alerts, open ones first, newest first."""
    q = select(Alert).where(Alert.domain == domain)
    if not include_closed:
        q = q.where(Alert.state == "open")
    rows = db.scalars(q.order_by(Alert.state.desc(), Alert.opened_at.desc()).limit(500))
    return [
        {
            "id": a.id,
            "kind": a.kind,
            "subject": a.subject,
            "severity": a.severity,
            "state": a.state,
            "message": a.message,
            "fix": a.fix,
            "opened_at": _aware(a.opened_at).isoformat(),
            "last_notified_at": _aware(a.last_notified_at).isoformat()
            if a.last_notified_at
            else None,
            "notifications": a.notifications,
            "closed_at": _aware(a.closed_at).isoformat() if a.closed_at else None,
        }
        for a in rows
    ]


class Notifier:
    """Delivers events by e-mail (through the configured relay) and webhook (JSON signed
    with HMAC-SHA256 in ``X-Mtasts-Signature: sha256=<hex>``)."""

    def __init__(self, settings: Settings, timeout: float = 15.0) -> None:
        self.settings = settings
        self.timeout = timeout

    def deliver(self, events: list[Event]) -> set[int]:
        """Send ``events``; returns the ids of alerts some channel failed to deliver
        (logged, not raised: one broken channel must not stop the other or the checks)."""
        failed: set[int] = set()
        if not events:
            return failed
        if self.settings.alert_smtp_relay:
            for e in events:
                try:
                    self._mail(e)
                except (OSError, smtplib.SMTPException) as exc:
                    log.warning("alert mail for %s failed: %s", e.domain, exc)
                    failed.add(e.alert_id)
        if self.settings.alert_webhook_url:
            try:
                self._webhook(events)
            except httpx.HTTPError as exc:
                log.warning("alert webhook failed: %s", exc)
                failed |= {e.alert_id for e in events}
        return failed

    def _mail(self, e: Event) -> None:
        s = self.settings
        to = sorted({*e.recipients, *([s.alert_email] if s.alert_email else [])})
        if not to:
            return
        msg = EmailMessage()
        msg["From"] = s.effective_alert_from
        msg["To"] = ", ".join(to)
        word = {
            "opened": "",
            "repeated": "still: ",
            "escalated": "worse: ",
            "resolved": "resolved: ",
        }
        msg["Subject"] = f"[mtasts {e.severity}] {word[e.event]}{e.domain}: {e.message}"[:200]
        body = [f"{e.message}", ""]
        if e.fix and e.event != "resolved":
            body += ["How to fix it:", e.fix, ""]
        body += [
            f"Domain: {e.domain}",
            f"Alert: {e.kind} ({e.subject}), {e.severity}, opened {e.opened_at:%Y-%m-%d %H:%M} UTC",
            f"Event: {e.event} at {e.at:%Y-%m-%d %H:%M} UTC",
        ]
        msg.set_content("\n".join(body))
        host, port = split_hostport(s.alert_smtp_relay, "alert_smtp_relay")
        with smtplib.SMTP(host, port, timeout=self.timeout) as smtp:
            smtp.ehlo()
            if s.alert_smtp_starttls and smtp.has_extn("starttls"):
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if s.alert_smtp_user:
                smtp.login(s.alert_smtp_user, s.alert_smtp_password)
            smtp.send_message(msg)

    def _webhook(self, events: list[Event]) -> None:
        body = json.dumps({"events": [e.to_dict() for e in events]}, sort_keys=True).encode()
        headers = {"Content-Type": "application/json"}
        if self.settings.alert_webhook_secret:
            digest = hmac.new(
                self.settings.alert_webhook_secret.encode(), body, hashlib.sha256
            ).hexdigest()
            headers["X-Mtasts-Signature"] = f"sha256={digest}"
        r = httpx.post(
            self.settings.alert_webhook_url, content=body, headers=headers, timeout=self.timeout
        )
        r.raise_for_status()


def verify_signature(secret: str, body: bytes, header: str) -> bool:
    """For webhook receivers: does ``header`` sign ``body`` with ``secret``?"""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header)
