"""TLS reports carried by e-mail (RFC 8460 §5.3): find the report parts of a message,
undo the transfer encoding and parse each report within the limits.

RFC 8460 §5.3 asks for `multipart/report; report-type=tlsrpt` with one
`application/tlsrpt+gzip` (or `+json`) part. Senders vary, so any part of those types, of
`application/tlsrpt`, or named `*.json`/`*.json.gz` counts anywhere in the message
(nested multiparts and forwarded messages included); `application/gzip`, `application/json`
and `application/octet-stream` parts count inside a tlsrpt report or when so named. DKIM
is not checked here.
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass
from email.message import Message

from mtasts.protocol.errors import LimitExceeded, ReportError, Text
from mtasts.protocol.report import ParsedReport
from mtasts.reports.limits import Limits, load_report

__all__ = ["ExtractedReport", "MessageInfo", "extract_reports"]

RFC = "RFC 8460 §5.3"
# RFC 8460 §6.4-6.5: the registered media types; `application/tlsrpt` is seen in the wild.
REPORT_TYPES = frozenset(
    {"application/tlsrpt+gzip", "application/tlsrpt+json", "application/tlsrpt"}
)
# Generic types some senders use: accepted inside a tlsrpt report or with a report name.
GENERIC_TYPES = frozenset(
    {
        "application/gzip",
        "application/x-gzip",
        "application/json",
        "application/octet-stream",
        "text/json",
    }
)
_REPORT_NAME = re.compile(r".*\.json(\.gz|\.gzip)?", re.IGNORECASE)
# RFC 8460 §5.3: "Report Domain: <domain> Submitter: <submitter> Report-ID: <id>"
_SUBJECT = re.compile(
    r"Report\s+Domain:\s*(?P<domain>\S+)\s+Submitter:\s*(?P<submitter>\S+)"
    r"(?:\s+Report-ID:\s*(?P<id>\S+))?",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class MessageInfo:
    """What the envelope of a report message says; the report's JSON is authoritative
    (senders' Report-IDs in subjects differ from the JSON's, e.g. Google's)."""

    subject: str | None
    sender: str | None  # the From header
    message_id: str | None
    report_domain: str | None  # TLS-Report-Domain header, else the subject's
    submitter: str | None  # TLS-Report-Submitter header, else the subject's
    subject_report_id: str | None
    is_tlsrpt: bool  # a multipart/report with report-type=tlsrpt (RFC 8460 §5.3)


@dataclass(frozen=True)
class ExtractedReport:
    """One report part: the payload after transfer decoding (still gzip'd when sent so)
    and either the parsed report or the reason it is unusable."""

    payload: bytes
    content_type: str
    filename: str | None
    message: MessageInfo
    parsed: ParsedReport | None = None
    error: ReportError | None = None


def _header(msg: Message, name: str) -> str | None:
    """A header's decoded value (folding removed); the raw value when decoding fails."""
    try:
        value = msg.get(name)
        text = None if value is None else str(value)
    except Exception:  # the stdlib header parser has crashed on malformed input before
        raw = next((v for n, v in msg.raw_items() if n.lower() == name.lower()), None)
        text = None if raw is None else str(raw)
    if text is None:
        return None
    return " ".join(text.split()) or None


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:  # malformed RFC 2231 parameters
        return None
    return name.strip() if isinstance(name, str) and name.strip() else None


def _is_tlsrpt_report(part: Message) -> bool:
    if part.get_content_type() != "multipart/report":
        return False
    try:
        report_type = part.get_param("report-type")
    except Exception:
        return False
    return isinstance(report_type, str) and report_type.strip().lower() == "tlsrpt"


def _info(msg: Message, is_tlsrpt: bool) -> MessageInfo:
    subject = _header(msg, "Subject")
    found = _SUBJECT.search(subject) if subject else None
    said: dict[str, str | None] = found.groupdict() if found else {}
    return MessageInfo(
        subject=subject,
        sender=_header(msg, "From"),
        message_id=_header(msg, "Message-ID"),
        report_domain=_header(msg, "TLS-Report-Domain") or said.get("domain"),
        submitter=_header(msg, "TLS-Report-Submitter") or said.get("submitter"),
        subject_report_id=said.get("id"),
        is_tlsrpt=is_tlsrpt,
    )


def _candidates(msg: Message) -> list[tuple[Message, str, str | None]]:
    """(part, content type, file name) of every part that should hold a report."""
    found = []
    stack: list[tuple[Message, bool]] = [(msg, False)]
    while stack:  # depth-first, in document order, without recursion
        part, in_report = stack.pop()
        in_report = in_report or _is_tlsrpt_report(part)
        if part.is_multipart():
            children = part.get_payload()
            if isinstance(children, list):
                stack.extend((c, in_report) for c in reversed(children) if isinstance(c, Message))
            continue
        ctype = part.get_content_type()
        name = _filename(part)
        named = name is not None and _REPORT_NAME.fullmatch(name) is not None
        if (
            ctype in REPORT_TYPES
            or named
            or (
                ctype in GENERIC_TYPES and (in_report or ctype in ("application/json", "text/json"))
            )
        ):
            found.append((part, ctype, name))
    return found


def _payload(part: Message) -> bytes:
    # Undoes base64 (wrapped at any width) and quoted-printable; 7bit/8bit come back as the
    # original bytes. Broken base64 is decoded as far as it goes (a defect is noted).
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


def extract_reports(message: bytes, limits: Limits | None = None) -> list[ExtractedReport]:
    """Every TLS report part of an e-mail, each parsed within ``limits``.

    An empty list means the message carries no report part. A part that cannot be used
    gives an ExtractedReport with ``error`` set (and the payload, for inspection). Raise
    LimitExceeded for the whole message when it exceeds ``limits.max_message_bytes``
    (``message-too-large``) or holds more than ``limits.max_reports_per_message`` report
    parts (``message-too-many-reports``), and ReportError ``message-invalid`` when it is
    not an e-mail the parser can read.
    """
    limits = limits or Limits()
    if len(message) > limits.max_message_bytes:
        raise LimitExceeded(
            "message-too-large",
            Text(
                "the message ({size} bytes) exceeds the limit of {limit} bytes",
                size=len(message),
                limit=limits.max_message_bytes,
            ),
            RFC,
            Text("raise Limits.max_message_bytes if such reports are expected"),
            limit=limits.max_message_bytes,
        )
    try:
        msg = email.message_from_bytes(message, policy=email.policy.default)
        parts = _candidates(msg)
        info = _info(msg, is_tlsrpt=_is_tlsrpt_report(msg))
        decoded = [
            (_payload(p), ctype, name)
            for p, ctype, name in parts[: limits.max_reports_per_message + 1]
        ]
    except Exception as exc:  # the stdlib parser is robust, but not proven so on all input
        raise ReportError(
            "message-invalid",
            Text(
                "the message cannot be read as an e-mail ({error}: {reason})",
                error=type(exc).__name__,
                reason=str(exc),
            ),
            RFC,
        ) from None
    if len(parts) > limits.max_reports_per_message:
        raise LimitExceeded(
            "message-too-many-reports",
            Text(
                "the message has {count} report parts, more than the {limit} accepted",
                count=len(parts),
                limit=limits.max_reports_per_message,
            ),
            RFC,
            limit=limits.max_reports_per_message,
        )
    out = []
    for payload, ctype, name in decoded:
        try:
            parsed = load_report(payload, limits)
        except ReportError as exc:
            out.append(ExtractedReport(payload, ctype, name, info, error=exc))
        else:
            out.append(ExtractedReport(payload, ctype, name, info, parsed=parsed))
    return out
