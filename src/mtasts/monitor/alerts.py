"""Alerts: the conditions a check found become alerts that open once, are re-sent on a
schedule (and at once when they get worse), and close when the condition is gone; each
event is delivered by e-mail and by a signed webhook."""

from __future__ import annotations

import email.policy
import hashlib
import hmac
import json
import logging
import re
import smtplib
import ssl
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.header import Header
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from mtasts import i18n
from mtasts.config import Settings, split_hostport
from mtasts.i18n import N_, _
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
    level: int = 0  # a higher level of the same alert is an escalation (e.g. warning -> failing)
    audience: str = "owner"  # "operator": the service's own part, told to alert_email only


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
    # stable across retries: receivers drop an event id they already have
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    # the language of the prose (message, fix) and of the mail around it: the owner's, or
    # alert_language for the operator's alerts; not in the webhook JSON (its keys never change)
    language: str = i18n.DEFAULT

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
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

    @classmethod
    def from_dict(
        cls, d: dict[str, Any], recipients: tuple[str, ...], language: str = i18n.DEFAULT
    ) -> Event:
        return cls(
            d["event"],
            d["alert_id"],
            d["domain"],
            d["kind"],
            d["subject"],
            d["severity"],
            d["message"],
            d["fix"],
            datetime.fromisoformat(d["opened_at"]),
            datetime.fromisoformat(d["at"]),
            recipients,
            d["id"],
            language,
        )


def reconcile(
    db: Session,
    domain: str,
    conditions: list[Condition],
    now: datetime,
    renotify: timedelta,
    recipients: tuple[str, ...],
    languages: Mapping[str, str] | None = None,
) -> list[Event]:
    """Bring the domain's open alerts in line with ``conditions`` (in ``db``'s transaction)
    and return the events to send. Info conditions open and close silently after their
    first notice. ``languages``: audience ("owner", "operator") -> the language its events
    are told in (English when absent); the conditions' prose is in it already."""
    languages = languages or {}
    current = {(c.kind, c.subject): c for c in conditions}
    open_alerts = {
        (a.kind, a.subject): a
        for a in db.scalars(select(Alert).where(Alert.domain == domain, Alert.state == "open"))
    }
    events: list[Event] = []

    def event(kind: str, a: Alert) -> None:
        # last_notified_at is when it was due; a channel that failed retries on its own
        # (alert_deliveries), so a dead channel never makes the others repeat
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
                a.opened_at,
                now,
                () if a.audience == "operator" else recipients,
                language=languages.get(a.audience, i18n.DEFAULT),
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
                audience=c.audience,
            )
            db.add(a)
            db.flush()
            event("opened", a)
            continue
        a = found
        worse = c.level > a.level or SEVERITIES.index(c.severity) < SEVERITIES.index(a.severity)
        a.message, a.fix, a.severity, a.level = c.message, c.fix, c.severity, c.level
        a.audience = c.audience
        if worse:
            event("escalated", a)
        elif a.severity != "info" and (
            a.last_notified_at is None or now - a.last_notified_at >= renotify
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
            # store.models.UTCDateTime: aware and in UTC, so each carries +00:00
            "opened_at": a.opened_at.isoformat(),
            "last_notified_at": a.last_notified_at.isoformat() if a.last_notified_at else None,
            "notifications": a.notifications,
            "closed_at": a.closed_at.isoformat() if a.closed_at else None,
        }
        for a in rows
    ]


CHANNELS = ("mail", "webhook")
SUBJECT_MAX = 110  # characters of the subject's own text, before the "[mtasts …]" tag
_URL = re.compile(r"\b(?:https?|mailto):\S+|\bwww\.\S+", re.IGNORECASE)
# what each kind of alert is about, in a few words: subjects never carry the message
# (it holds URLs and long record values), only this and the subject of the alert
TITLES = {
    "delegation-broken": N_("delegation record {subject} is broken"),
    "policy-not-served": N_("senders get no valid MTA-STS policy"),
    "policy-mismatch": N_("{subject} serves another policy"),
    "txt-id-mismatch": N_("senders see an old policy id at {subject}"),
    "certificate-expiring": N_("certificate of {subject} needs renewal"),
    "mx-certificate-expiring": N_("certificate of MX {subject} needs renewal"),
    "mx-not-covered": N_("MX {subject} is not in the policy"),
    "mx-refreshed": N_("MX {subject} was added to the policy"),
    "mx-tls-problem": N_("TLS problem on MX {subject}"),
    "tlsrpt-failures": N_("TLS reports show failed sessions"),
    "sender-silent": N_("{subject} stopped sending TLS reports"),
    "domain-transferred": N_("{subject} is no longer hosted for your account"),
}


def title(e: Event) -> str:
    """A few words on what the alert is about (never a URL), in the current language."""
    known = TITLES.get(e.kind)
    if known is not None:
        return _(known).format(subject=e.subject)
    first = e.message.split(". ")[0]
    return " ".join(_URL.sub("", first).split()).rstrip(".")


def _cut(text: str, limit: int) -> str:
    """``text`` cut at a word boundary to at most ``limit`` characters (with "...")."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    head = text[: limit - 3]
    space = head.rfind(" ")
    return (head[:space] if space > limit // 2 else head).rstrip(" ,;:") + "..."


# RFC 5322 §2.1.1: lines of at most 998 characters, SHOULD be at most 78. The library folds
# a header that fits on a line of its own onto the next line (an empty first line), so it
# writes headers unfolded here and fold_header folds them at spaces.
_MAIL_POLICY = email.policy.SMTP.clone(max_line_length=998)
FOLD_WIDTH = 78


def fold_header(line: bytes, width: int = FOLD_WIDTH) -> bytes:
    """Fold one unfolded ASCII header line (without its CRLF) at spaces into lines of at
    most ``width`` where words allow (RFC 5322 §2.2.3); encoded words are left whole."""
    if len(line) <= width or b"=?" in line:
        return line
    out: list[bytes] = []
    current = b""
    for word in line.split(b" "):
        if current and len(current) + 1 + len(word) > width:
            out.append(current)
            current = b" " + word  # the continuation line starts with white space
        else:
            current = current + b" " + word if current else word
    out.append(current)
    return b"\r\n".join(out)


def mail_bytes(msg: EmailMessage) -> bytes:
    """``msg`` as sent: CRLF lines, the headers folded by fold_header, a header with
    non-ASCII text (a Spanish subject) by :func:`encoded_header`."""
    raw = msg.as_bytes(policy=_MAIL_POLICY)
    head, sep, body = raw.partition(b"\r\n\r\n")
    lines = []
    for h in head.split(b"\r\n"):
        name = h.split(b":", 1)[0].decode("ascii")
        value = msg[name] if b"=?" in h else None
        lines.append(fold_header(h) if value is None else encoded_header(name, str(value)))
    return b"\r\n".join(lines) + sep + body


def encoded_header(name: str, value: str, width: int = FOLD_WIDTH) -> bytes:
    """``name: value`` with ``value`` wholly in UTF-8 encoded words (RFC 2047 §2: each at
    most 75 characters), folded between them into lines of at most ``width``. Readers join
    adjacent encoded words without the folding white space (RFC 2047 §6.2), so the text
    comes back exactly; the library's own mix of words and encoded words loses or adds a
    space where it folds."""
    words = Header(value, "utf-8", header_name=name).encode(linesep="\r\n", maxlinelen=width)
    return f"{name}: {words}".encode("ascii")


# the tag and the word before the title in a subject; the tag words are the severity
# codes in English (mail filters match them), said in the reader's language otherwise
_TAGS = {
    "critical": N_("critical"),
    "warning": N_("warning"),
    "info": N_("info"),
    "resolved": N_("resolved"),
}
_WORDS = {
    "opened": "",
    "repeated": N_("still: "),
    "escalated": N_("worse: "),
    "resolved": N_("fixed: "),
}


def mail_subject(e: Event) -> str:
    """``[mtasts critical] example.com: MX mx1.example.com is not in the policy``; the
    resolved notice says so first: ``[mtasts resolved] example.com: fixed: …``. In the
    event's language."""
    with i18n.use(e.language):
        tag = _(_TAGS.get("resolved" if e.event == "resolved" else e.severity, e.severity))
        word = _(_WORDS[e.event]) if _WORDS[e.event] else ""
        return f"[mtasts {tag}] " + _cut(f"{e.domain}: {word}{title(e)}", SUBJECT_MAX)


def mail_body(e: Event) -> str:
    """The text of an alert mail, in the event's language: a resolved notice first says
    plainly that it is fixed, then what the problem was."""
    with i18n.use(e.language):
        at = f"{e.at:%Y-%m-%d %H:%M}"
        if e.event == "resolved":
            body = [
                _(
                    "Fixed: {title} ({domain}). The check at {at} UTC no longer sees this "
                    "problem; nothing needs doing."
                ).format(title=title(e), domain=e.domain, at=at),
                "",
                _("The problem was:"),
                e.message,
                "",
            ]
        else:
            body = [e.message, ""]
            if e.fix:
                body += [_("How to fix it:"), e.fix, ""]
        body += [
            _("Domain: {domain}").format(domain=e.domain),
            _("Alert: {kind} ({subject}), {severity}, opened {opened} UTC").format(
                kind=e.kind,
                subject=e.subject,
                severity=_(_TAGS.get(e.severity, e.severity)),
                opened=f"{e.opened_at:%Y-%m-%d %H:%M}",
            ),
            _("Event: {event} at {at} UTC").format(event=_(_EVENTS[e.event]), at=at),
        ]
        return "\n".join(body)


_EVENTS = {
    "opened": N_("opened"),
    "repeated": N_("repeated"),
    "escalated": N_("escalated"),
    "resolved": N_("resolved"),
}


@dataclass(frozen=True)
class Failure:
    channel: str
    event: Event
    error: str


class Notifier:
    """Delivers events by e-mail (through the configured relay) and webhook (JSON signed
    with HMAC-SHA256 in ``X-Mtasts-Signature: sha256=<hex>``; the body carries a delivery id
    and a timestamp, so the signature covers them). Each channel succeeds or fails on its
    own; ``deliveries`` counts the outcome per channel."""

    def __init__(self, settings: Settings, timeout: float = 15.0) -> None:
        self.settings = settings
        self.timeout = timeout
        self.deliveries: Counter[tuple[str, str]] = Counter()
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    def channels(self) -> tuple[str, ...]:
        """The configured channels, in delivery order."""
        s = self.settings
        return tuple(
            c for c, on in (("mail", s.alert_smtp_relay), ("webhook", s.alert_webhook_url)) if on
        )

    def deliver(self, events: list[Event]) -> list[Failure]:
        """Send ``events`` on every channel; what a channel failed to deliver (logged, not
        raised: one broken channel must not stop the other or the checks)."""
        failures: list[Failure] = []
        for channel in self.channels():
            failures += self.deliver_on(channel, events)
        return failures

    def deliver_on(self, channel: str, events: list[Event]) -> list[Failure]:
        """Send ``events`` on ``channel`` only; the failures."""
        if not events:
            return []
        failed: list[Failure] = []
        if channel == "mail":
            for e in events:
                try:
                    self._mail(e)
                except (OSError, smtplib.SMTPException) as exc:
                    log.warning("alert mail for %s failed: %s", e.domain, exc)
                    failed.append(Failure("mail", e, str(exc)))
        elif channel == "webhook":
            try:
                self._webhook(events)
            except httpx.HTTPError as exc:
                log.warning("alert webhook failed: %s", exc)
                failed = [Failure("webhook", e, str(exc)) for e in events]
        self.deliveries[(channel, "failed")] += len(failed)
        self.deliveries[(channel, "ok")] += len(events) - len(failed)
        return failed

    def _mail(self, e: Event) -> None:
        s = self.settings
        to = sorted({*e.recipients, *([s.alert_email] if s.alert_email else [])})
        if not to:
            return
        msg = EmailMessage()
        msg["From"] = s.effective_alert_from
        msg["To"] = ", ".join(to)
        msg["Subject"] = mail_subject(e)
        msg["Date"] = format_datetime(self.clock())  # RFC 5322 §3.6.1: required
        # RFC 5322 §3.6.4: unique; the event id keeps it the same when a retry resends it
        msg["Message-ID"] = f"<{e.id}.{e.alert_id}@{s.zone_name or 'mtasts.invalid'}>"
        msg["Auto-Submitted"] = "auto-generated"  # RFC 3834 §5: no auto-replies
        body = mail_body(e)
        # RFC 2045 §6: a Spanish body is UTF-8 in quoted-printable, 7-bit clean for any relay
        # (8bit would need the relay's 8BITMIME, RFC 6152); English stays plain 7bit
        msg.set_content(body, cte=None if body.isascii() else "quoted-printable")
        host, port = split_hostport(s.alert_smtp_relay, "alert_smtp_relay")
        with smtplib.SMTP(host, port, timeout=self.timeout) as smtp:
            smtp.ehlo()
            if s.alert_smtp_starttls and smtp.has_extn("starttls"):
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if s.alert_smtp_user:
                smtp.login(s.alert_smtp_user, s.alert_smtp_password)
            smtp.sendmail(s.effective_alert_from, to, mail_bytes(msg))

    def webhook_body(self, events: list[Event]) -> bytes:
        """The JSON posted: a fresh delivery id and the time of sending, inside the signed
        body (a receiver refuses old timestamps and delivery ids it has seen)."""
        now = self.clock()
        payload = {
            "delivery_id": uuid.uuid4().hex,
            "timestamp": int(now.timestamp()),
            "sent_at": now.isoformat(),
            "events": [e.to_dict() for e in events],
        }
        return json.dumps(payload, sort_keys=True).encode()

    def _webhook(self, events: list[Event]) -> None:
        body = self.webhook_body(events)
        payload = json.loads(body)
        headers = {
            "Content-Type": "application/json",
            "X-Mtasts-Delivery": payload["delivery_id"],
            "X-Mtasts-Timestamp": str(payload["timestamp"]),
        }
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


WEBHOOK_TOLERANCE = 300  # seconds a receiver accepts between sending and receiving


def verify_webhook(
    secret: str,
    body: bytes,
    header: str,
    now: datetime,
    seen: Callable[[str], bool] = lambda _delivery_id: False,
    tolerance: float = WEBHOOK_TOLERANCE,
) -> dict[str, Any] | None:
    """For webhook receivers: the payload when ``header`` signs ``body``, its timestamp is
    within ``tolerance`` seconds of ``now`` and ``seen`` does not know its delivery id;
    else None (forged, replayed or stale)."""
    if not verify_signature(secret, body, header):
        return None
    payload: dict[str, Any] = json.loads(body)
    if abs(now.timestamp() - float(payload.get("timestamp", 0))) > tolerance:
        return None
    if seen(str(payload.get("delivery_id", ""))):
        return None
    return payload
