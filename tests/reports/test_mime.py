"""TLS reports carried by e-mail (RFC 8460 §5.3): the corpus and the variants senders use."""

from __future__ import annotations

import contextlib
import email
import gzip
import json
import quopri
from email.message import EmailMessage
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import default
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mtasts.protocol.errors import LimitExceeded, ReportError
from mtasts.protocol.report import parse_report
from mtasts.reports.limits import Limits
from mtasts.reports.mime import ExtractedReport, extract_reports

CORPUS = Path(__file__).resolve().parent.parent / "data" / "tlsrpt"
EML_FILES = sorted(p.relative_to(CORPUS).as_posix() for p in CORPUS.glob("*/*.eml"))
RFC_EXAMPLE = (CORPUS / "cry-inc-dmarc-report-viewer/rfc-example.json").read_bytes()

# file -> content type, report-id (JSON), submitter, report domain, repair codes
EXPECTED: dict[str, tuple[str, str, str, str, tuple[str, ...]]] = {
    "internet-message-parser/google-digilicious.eml": (
        "application/tlsrpt+gzip",
        "2022-01-09T00:00:00Z_digilicious.com",
        "google.com",
        "digilicious.com",
        ("policy-string-cr", "mx-host-missing"),
    ),
    "mail-tls-rpt/email.eml": (
        "application/tlsrpt+gzip",
        "2020-03-02T00:00:00Z_fastmaildmarc.com",
        "google.com",
        "fastmaildmarc.com",
        (),
    ),
    "mox/example.eml": (
        "application/tlsrpt+gzip",
        "2022-09-15T00:00:00Z_test.xmox.nl",
        "google.com",
        "test.xmox.nl",
        (),
    ),
    "mox/microsoft.eml": (
        "application/tlsrpt+gzip",
        "133198585438131172+test.xmox.nl",
        "microsoft.com",
        "test.xmox.nl",
        ("datetime-without-zone", "datetime-without-zone", "mx-host-missing"),
    ),
    "parsedmarc/google.com_smtp_tls_report.eml": (
        "application/tlsrpt+gzip",
        "2024-09-03T00:00:00Z_cardinalhealth.ca",
        "google.com",
        "cardinalhealth.ca",
        (),
    ),
    "stalwart-mail-auth/rpt01.eml": (
        "application/tlsrpt+gzip",
        "5065427c-23d3-47ca-b6e0-946ea0e8c4be",
        "mail.sender.example.com",
        "example.net",
        (),
    ),
    "stalwart-mail-auth/rpt02.eml": (
        "application/tlsrpt",
        "2020-01-01T00:00:00Z_example.com",
        "mail.sender.example.com",
        "example.net",
        ("mx-host-missing",),
    ),
    "tlsrpt-digest/tlsrpt_failure.eml": (
        "application/tlsrpt+gzip",
        "2026-02-08T00:00:00Z_example.com",  # the subject says 2026.05.12: JSON wins
        "google.com",
        "example.com",
        ("end-next-day-midnight", "mx-host-missing"),
    ),
    "tlsrpt-digest/tlsrpt_success_google_1.eml": (
        "application/tlsrpt+gzip",
        "2026-05-11T00:00:00Z_example.com",
        "google.com",
        "example.com",
        (),
    ),
    "tlsrpt-digest/tlsrpt_success_google_2.eml": (
        "application/tlsrpt+gzip",
        "2026-05-12T00:00:00Z_example.com",
        "google.com",
        "example.com",
        (),
    ),
    "tlsrpt-digest/tlsrpt_success_microsoft.eml": (
        "application/tlsrpt+gzip",
        "134232617934286362+example.com",
        "microsoft.com",
        "example.com",
        ("mx-host-missing",),
    ),
}
DECODED = {
    "internet-message-parser/google-digilicious.eml": "internet-message-parser__google-digilicious",
    "mail-tls-rpt/email.eml": "mail-tls-rpt__email",
    "mox/example.eml": "mox__example",
    "mox/microsoft.eml": "mox__microsoft",
    "parsedmarc/google.com_smtp_tls_report.eml": "parsedmarc__google.com_smtp_tls_report",
    "stalwart-mail-auth/rpt01.eml": "stalwart-mail-auth__rpt01",
    "stalwart-mail-auth/rpt02.eml": "stalwart-mail-auth__rpt02",
    "tlsrpt-digest/tlsrpt_failure.eml": "tlsrpt-digest__tlsrpt_failure",
    "tlsrpt-digest/tlsrpt_success_google_1.eml": "tlsrpt-digest__tlsrpt_success_google_1",
    "tlsrpt-digest/tlsrpt_success_google_2.eml": "tlsrpt-digest__tlsrpt_success_google_2",
    "tlsrpt-digest/tlsrpt_success_microsoft.eml": "tlsrpt-digest__tlsrpt_success_microsoft",
}


def only(found: list[ExtractedReport]) -> ExtractedReport:
    assert len(found) == 1, found
    return found[0]


def test_every_corpus_message_is_listed() -> None:
    assert set(EML_FILES) == set(EXPECTED) == set(DECODED)


@pytest.mark.parametrize("name", EML_FILES)
def test_corpus_messages(name: str) -> None:
    ctype, report_id, submitter, domain, repairs = EXPECTED[name]
    part = only(extract_reports((CORPUS / name).read_bytes()))
    assert part.error is None and part.parsed is not None
    assert part.content_type == ctype
    assert part.filename is not None and part.filename.endswith((".json", ".json.gz"))
    assert part.parsed.report.report_id == report_id
    assert part.parsed.repair_codes == repairs
    assert (part.message.submitter, part.message.report_domain) == (submitter, domain)
    assert part.message.is_tlsrpt
    assert part.message.subject is not None and part.message.subject.startswith("Report Domain:")
    # the payload is the attachment as sent; inflated, it is the decoded JSON byte for byte
    decoded = (CORPUS / "decoded" / f"{DECODED[name]}.json").read_bytes()
    payload = gzip.decompress(part.payload) if ctype.endswith("gzip") else part.payload
    assert payload == decoded
    assert part.parsed.report == parse_report(decoded).report


def test_google_envelope() -> None:
    part = only(extract_reports((CORPUS / "mox/example.eml").read_bytes()))
    info = part.message
    assert info.sender == "noreply-smtp-tls-reporting@google.com"
    assert info.message_id == "<000000000000f47cc505e8c8905c@google.com>"
    assert info.subject_report_id == "<2022.09.15T00.00.00Z+test.xmox.nl@google.com>"
    assert part.filename == "google.com!test.xmox.nl!1663200000!1663286399!001.json.gz"
    assert part.parsed is not None and part.parsed.report.sessions() == (3, 0)


def test_microsoft_folded_subject() -> None:
    info = only(extract_reports((CORPUS / "mox/microsoft.eml").read_bytes())).message
    assert info.subject == (
        "Report Domain: test.xmox.nl Submitter: microsoft.com "
        "Report-ID: 133198585438131172+test.xmox.nl"
    )
    assert info.subject_report_id == "133198585438131172+test.xmox.nl"
    assert info.sender == "tlsrpt-noreply@microsoft.com"  # From: <tlsrpt-noreply@...>


def test_rfc_example_message_totals() -> None:
    part = only(extract_reports((CORPUS / "stalwart-mail-auth/rpt01.eml").read_bytes()))
    assert part.parsed is not None
    assert part.parsed.report.organization_name == "Company-X"
    assert part.parsed.report.sessions() == (5326, 303)
    assert part.message.subject_report_id == "<735ff.e317+bf22029@example.net>"


# --- variants built here ------------------------------------------------------------------


def envelope(msg: EmailMessage | MIMEMultipart) -> bytes:
    msg["From"] = "tlsrpt@sender.example"
    msg["To"] = "tlsrpt@receiver.example"
    msg["Subject"] = "Report Domain: receiver.example Submitter: sender.example Report-ID: <1@x>"
    msg["Message-ID"] = "<1@sender.example>"
    return msg.as_bytes()


def report_part(data: bytes, subtype: str, filename: str | None = None) -> MIMEApplication:
    part = MIMEApplication(data, subtype)
    if filename:
        part.add_header("Content-Disposition", "attachment", filename=filename)
    return part


def tlsrpt_message(*parts: MIMEApplication | MIMEText | MIMEMultipart) -> MIMEMultipart:
    msg = MIMEMultipart("report", report_type="tlsrpt")
    msg.attach(MIMEText("This is an aggregate TLS report from sender.example"))
    for p in parts:
        msg.attach(p)
    return msg


@pytest.mark.parametrize(
    ("subtype", "data", "filename"),
    [
        ("tlsrpt+gzip", gzip.compress(RFC_EXAMPLE), "r.json.gz"),
        ("tlsrpt+gzip", gzip.compress(RFC_EXAMPLE), None),
        ("tlsrpt+json", RFC_EXAMPLE, None),
        ("tlsrpt", gzip.compress(RFC_EXAMPLE), None),
        ("gzip", gzip.compress(RFC_EXAMPLE), None),
        ("x-gzip", gzip.compress(RFC_EXAMPLE), None),
        ("json", RFC_EXAMPLE, None),
        ("octet-stream", gzip.compress(RFC_EXAMPLE), None),
        ("octet-stream", gzip.compress(RFC_EXAMPLE), "sender!receiver!1!2.json.gz"),
    ],
)
def test_report_part_types(subtype: str, data: bytes, filename: str | None) -> None:
    raw = envelope(tlsrpt_message(report_part(data, subtype, filename)))
    part = only(extract_reports(raw))
    assert part.content_type == f"application/{subtype}"
    assert part.payload == data
    assert part.parsed is not None and part.parsed.report.report_id.startswith("5065427c")
    assert part.message.sender == "tlsrpt@sender.example"
    assert part.message.message_id == "<1@sender.example>"
    assert part.message.subject_report_id == "<1@x>"


def test_base64_is_wrapped_at_76_columns() -> None:
    raw = envelope(tlsrpt_message(report_part(gzip.compress(RFC_EXAMPLE), "tlsrpt+gzip")))
    body = raw.split(b"Content-Transfer-Encoding: base64")[1].split(b"\n\n", 1)[1]
    lines = body.split(b"\n--")[0].split()
    assert len(lines) > 2 and {len(line) for line in lines[:-1]} == {76}
    assert only(extract_reports(raw)).parsed is not None
    # and CRLF line endings work alike
    assert only(extract_reports(raw.replace(b"\n", b"\r\n"))).parsed is not None


def test_attachment_by_name_outside_a_report() -> None:
    """A plain multipart/mixed message, as a mail client forwards it."""
    msg = MIMEMultipart("mixed")
    msg.attach(MIMEText("see attached"))
    msg.attach(report_part(gzip.compress(RFC_EXAMPLE), "octet-stream", "report.json.gz"))
    msg.attach(report_part(RFC_EXAMPLE, "octet-stream", "REPORT.JSON"))
    found = extract_reports(envelope(msg))
    assert [p.filename for p in found] == ["report.json.gz", "REPORT.JSON"]
    assert all(p.parsed is not None for p in found)
    assert not found[0].message.is_tlsrpt


def test_generic_types_need_a_report_or_a_name() -> None:
    """A DMARC aggregate report (application/gzip, *.xml.gz) is no TLS report."""
    msg = MIMEMultipart("mixed")
    msg.attach(MIMEText("DMARC aggregate report"))
    msg.attach(report_part(gzip.compress(b"<feedback/>"), "gzip", "google.com!x!1!2.xml.gz"))
    msg.attach(report_part(b"\x00" * 10, "octet-stream"))
    assert extract_reports(envelope(msg)) == []
    assert extract_reports(envelope(EmailMessage())) == []


def test_nested_multiparts_and_forwarded_messages() -> None:
    inner = tlsrpt_message(report_part(gzip.compress(RFC_EXAMPLE), "tlsrpt+gzip"))
    alternative = MIMEMultipart("alternative")
    alternative.attach(MIMEText("text"))
    alternative.attach(MIMEText("<p>html</p>", "html"))
    mixed = MIMEMultipart("mixed")
    mixed.attach(alternative)
    mixed.attach(inner)
    found = only(extract_reports(envelope(mixed)))
    assert found.parsed is not None

    forwarded = EmailMessage()
    forwarded["Subject"] = "Fwd: TLS report"
    forwarded.set_content("forwarding this")
    original = tlsrpt_message(report_part(gzip.compress(RFC_EXAMPLE), "tlsrpt+gzip"))
    forwarded.add_attachment(email.message_from_bytes(envelope(original), policy=default))
    part = only(extract_reports(forwarded.as_bytes()))
    assert part.parsed is not None
    assert part.message.subject == "Fwd: TLS report"


def test_several_reports_and_errors_per_part() -> None:
    other = json.loads(RFC_EXAMPLE)
    other["report-id"] = "second"
    raw = envelope(
        tlsrpt_message(
            report_part(gzip.compress(RFC_EXAMPLE), "tlsrpt+gzip", "a.json.gz"),
            report_part(b"\x1f\x8b\x08\x00broken", "tlsrpt+gzip", "b.json.gz"),
            report_part(json.dumps(other).encode(), "tlsrpt+json", "c.json"),
            report_part(b"[1, 2]", "tlsrpt+json", "d.json"),
        )
    )
    found = extract_reports(raw)
    assert [p.filename for p in found] == ["a.json.gz", "b.json.gz", "c.json", "d.json"]
    assert [p.error.code if p.error else None for p in found] == [
        None,
        "report-gzip-invalid",
        None,
        "report-not-object",
    ]
    assert [p.parsed.report.report_id if p.parsed else None for p in found] == [
        "5065427c-23d3-47ca-b6e0-946ea0e8c4be",
        None,
        "second",
        None,
    ]
    assert found[1].payload == b"\x1f\x8b\x08\x00broken"


def test_quoted_printable_json() -> None:
    part = MIMEText(RFC_EXAMPLE.decode(), "plain", "utf-8")
    del part["Content-Type"]
    part["Content-Type"] = "application/tlsrpt+json"
    del part["Content-Transfer-Encoding"]
    part["Content-Transfer-Encoding"] = "quoted-printable"
    part.set_payload(quopri.encodestring(RFC_EXAMPLE).decode())
    found = only(extract_reports(envelope(tlsrpt_message(part))))
    assert found.payload == RFC_EXAMPLE
    assert found.parsed is not None


def test_limits_per_part_and_per_message() -> None:
    big = gzip.compress(RFC_EXAMPLE)
    raw = envelope(tlsrpt_message(report_part(big, "tlsrpt+gzip")))
    found = only(extract_reports(raw, Limits(max_compressed_bytes=len(big) - 1)))
    assert found.error is not None and found.error.code == "report-too-large"

    with pytest.raises(LimitExceeded) as info:
        extract_reports(raw, Limits(max_message_bytes=len(raw) - 1))
    assert info.value.code == "message-too-large"

    many = envelope(tlsrpt_message(*(report_part(big, "tlsrpt+gzip") for _ in range(3))))
    assert len(extract_reports(many, Limits(max_reports_per_message=3))) == 3
    with pytest.raises(LimitExceeded) as info:
        extract_reports(many, Limits(max_reports_per_message=2))
    assert info.value.code == "message-too-many-reports"


def test_broken_base64_gives_an_error_not_an_exception() -> None:
    raw = envelope(tlsrpt_message(report_part(gzip.compress(RFC_EXAMPLE), "tlsrpt+gzip")))
    head, _, tail = raw.partition(b"H4sI")
    found = only(extract_reports(head + b"H4s!!I" + tail[:40] + b"\n--" + tail.split(b"\n--")[-1]))
    assert found.error is not None


# --- robustness ---------------------------------------------------------------------------

MESSAGES = [(CORPUS / n).read_bytes() for n in EML_FILES]


@given(st.binary(max_size=2000))
def test_arbitrary_bytes_raise_only_report_error(data: bytes) -> None:
    with contextlib.suppress(ReportError):
        extract_reports(data)


@settings(max_examples=300)
@given(
    st.sampled_from(MESSAGES),
    st.lists(st.tuples(st.integers(0, 15_000), st.binary(max_size=20)), max_size=5),
    st.integers(0, 15_000),
)
def test_mangled_corpus_messages_raise_only_report_error(
    message: bytes, edits: list[tuple[int, bytes]], cut: int
) -> None:
    data = bytearray(message)
    for at, noise in edits:
        at %= len(data)
        data[at : at + len(noise)] = noise
    with contextlib.suppress(ReportError):
        extract_reports(bytes(data[: max(cut, 200)]))


@given(st.text(max_size=200), st.text(max_size=200), st.text(max_size=80))
def test_odd_headers_raise_only_report_error(subject: str, filename: str, ctype: str) -> None:
    head = (
        f"Subject: {subject}\r\nFrom: {subject}\r\nContent-Type: multipart/report; "
        f'report-type=tlsrpt; boundary="b"\r\n\r\n--b\r\nContent-Type: {ctype}\r\n'
        f'Content-Disposition: attachment; filename="{filename}"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\nH4sIAAAA\r\n--b--\r\n"
    )
    with contextlib.suppress(ReportError):
        extract_reports(head.encode("utf-8", "surrogateescape"))
