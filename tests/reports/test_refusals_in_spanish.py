"""Issue 13: why a TLS report is refused, in the reader's language. The parser, its limits
and the e-mail reader build their reasons as ``Text`` (English, with its template); the
import summary and the HTTPS answer say them in Spanish when asked, and in English exactly
as before otherwise."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from mtasts import i18n
from mtasts.protocol.errors import ReportError, Text
from mtasts.protocol.report import (
    PolicyResult,
    Report,
    decode_report_json,
    format_datetime,
    parse_report,
    serialize_report,
)
from mtasts.reports.ingest import check_field_lengths, file_under
from mtasts.reports.limits import Limits, check_json_depth, decompress, inflate, load_report
from mtasts.reports.mime import extract_reports
from mtasts.reports.quota import OverQuota
from tests.hosting.serving import Running
from tests.lab import World
from tests.reports.test_routes import hosting

CORPUS = Path(__file__).resolve().parent.parent / "data" / "tlsrpt"
RFC_EXAMPLE = (CORPUS / "cry-inc-dmarc-report-viewer/rfc-example.json").read_bytes()


def report(**changes: object) -> bytes:
    obj = json.loads(RFC_EXAMPLE)
    obj.update(changes)
    return json.dumps(obj).encode()


def with_dates(start: str, end: str) -> bytes:
    return report(**{"date-range": {"start-datetime": start, "end-datetime": end}})


def mail(parts: int) -> bytes:
    body = "".join(
        "--b\r\nContent-Type: application/tlsrpt+json\r\n\r\n" + RFC_EXAMPLE.decode() + "\r\n"
        for _ in range(parts)
    )
    return (
        "From: a@example.net\r\nSubject: Report Domain: example.com\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=tlsrpt; boundary="b"'
        f"\r\n\r\n{body}--b--\r\n"
    ).encode()


def not_canonical() -> object:
    day = datetime(2024, 1, 1, tzinfo=UTC)
    policy = PolicyResult(policy_type="sts", policy_strings=("mode: enforce\r",))
    return serialize_report(Report(organization_name="o", start_datetime=day,
                                   end_datetime=day, contact_info=None, report_id="r",
                                   policies=(policy,)))  # fmt: skip


def long_field() -> None:
    check_field_lengths(load_report(report(**{"report-id": "x" * 300})))


def foreign() -> None:
    file_under(load_report(RFC_EXAMPLE), "example.org")


def overflow() -> None:
    obj = json.loads(RFC_EXAMPLE)
    obj["policies"] = [obj["policies"][0]] * 2
    obj["policies"][0]["summary"]["total-successful-session-count"] = 2**63 - 1
    file_under(load_report(json.dumps(obj).encode()), "company-y.example")


# Every way of refusing a report (parser, limits, e-mail reader, filing), each with the
# reason it gives.
REFUSALS: list[Callable[[], object]] = [
    lambda: parse_report(b"\xff{}"),
    lambda: parse_report(b"\x1f\x8b\x08"),
    lambda: decode_report_json("[" * 40 + "]" * 40, max_depth=32),
    lambda: decode_report_json("[[],[]]", max_containers=2),
    lambda: parse_report(b"not json"),
    lambda: parse_report(b'{"a": NaN}'),
    lambda: parse_report(b"[]"),
    lambda: parse_report(b"{}"),
    lambda: parse_report(report(policies={})),
    lambda: parse_report(report(**{"contact-info": True})),
    lambda: parse_report(with_dates("yesterday", "2016-04-01T23:59:59Z")),
    lambda: parse_report(with_dates("2016-13-01T00:00:00Z", "2016-04-01T23:59:59Z")),
    lambda: parse_report(with_dates("2016-04-02T00:00:00Z", "2016-04-01T23:59:59Z")),
    lambda: parse_report(with_dates(7, "2016-04-01T23:59:59Z")),  # type: ignore[arg-type]
    lambda: parse_report(RFC_EXAMPLE.replace(b": 200,", b": -1,")),
    lambda: format_datetime(datetime(2024, 1, 1)),  # naive on purpose
    not_canonical,
    lambda: decompress(RFC_EXAMPLE, Limits(max_compressed_bytes=100)),
    lambda: decompress(RFC_EXAMPLE, Limits(max_decompressed_bytes=100)),
    lambda: decompress(gzip.compress(RFC_EXAMPLE), Limits(max_decompressed_bytes=100)),
    lambda: inflate(gzip.compress(b"{}")[:-3], 1000),
    lambda: inflate(gzip.compress(b"{}") + b"junk", 1000),
    lambda: check_json_depth("[[[[]]]]", Limits(max_depth=3)),
    lambda: check_json_depth("[[],[]]", Limits(max_json_containers=2)),
    lambda: load_report(report(policies=[{}, {}]), Limits(max_policies=1)),
    lambda: load_report(RFC_EXAMPLE, Limits(max_failure_details=1)),
    lambda: extract_reports(mail(1), Limits(max_message_bytes=100)),
    lambda: extract_reports(mail(3), Limits(max_reports_per_message=2)),
    long_field,
    foreign,
    overflow,
]


def refusal(make: Callable[[], object]) -> ReportError:
    with pytest.raises(ReportError) as info:
        make()
    return info.value


def texts(value: object) -> Iterator[Text]:
    if isinstance(value, Text):
        yield value
        for field in value.fields.values():
            yield from texts(field)


@pytest.mark.parametrize("make", REFUSALS)
def test_every_refusal_is_said_in_spanish(make: Callable[[], object]) -> None:
    error = refusal(make)
    assert isinstance(error.message, Text), error.message
    spanish = i18n.catalogue("es")
    for part in (error.message, error.fix):
        for text in texts(part):
            assert text.template in spanish, text.template
    with i18n.use("es"):
        said = i18n.say(error.message)
    assert said != error.message


def test_quota_refusal_is_said_in_spanish() -> None:
    over = OverQuota("organization", "reports", 50, 3600).message
    assert over == (
        "the daily quota of 50 reports for this sending organisation is used up; "
        "retry after 3600 s (next UTC day)"
    )
    with i18n.use("es"):
        assert i18n.say(over) == (
            "se ha agotado la cuota diaria de 50 informes de esta organización remitente; "
            "vuelva a intentarlo dentro de 3600 s (el próximo día UTC)"
        )


@pytest.mark.parametrize(
    ("data", "english", "spanish"),
    [
        (
            b"",
            "the report is not JSON: Expecting value: line 1 column 1 (char 0)",
            "el informe no es JSON: se esperaba un valor: línea 1, columna 1 (carácter 0)",
        ),
        (
            b'{"a": NaN}',
            "the report is not JSON: NaN is not a JSON value",
            "el informe no es JSON: NaN no es un valor JSON",
        ),
        (
            b"[]",
            "the report must be a JSON object, not an array",
            "el informe debe ser un objeto JSON, no un array",
        ),
        (
            report(policies={}),
            "policies must be an array, not an object",
            "policies debe ser un array, no un objeto",
        ),
        (
            b"\x1f\x8b\x08",
            "byte 0x8b at offset 1 is not UTF-8 (it is gzip: decompress it first)",
            "el byte 0x8b de la posición 1 no es UTF-8 (es gzip: descomprímalo antes)",
        ),
    ],
)
def test_exact_reasons(data: bytes, english: str, spanish: str) -> None:
    error = refusal(lambda: parse_report(data))
    assert error.message == english
    with i18n.use("es"):
        assert i18n.say(error.message) == spanish


def mtasts(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mtasts", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "HOME": str(cwd), "COLUMNS": "300", "LANG": "C.UTF-8"},
        check=False,
    )


def test_reports_import_says_why_in_the_chosen_language(tmp_path: Path) -> None:
    files = tmp_path / "in"
    files.mkdir()
    (files / "a-array.json").write_text("[]")
    (files / "b-broken.json.gz").write_bytes(gzip.compress(RFC_EXAMPLE)[:-3])
    (files / "c-nested.json").write_text("[" * 40 + "]" * 40)
    (files / "d-no-org.json").write_text("{}")
    store = ["--data-dir", str(tmp_path / "store")]
    english = mtasts("reports", "import", str(files), *store, cwd=tmp_path)
    assert english.returncode == 1, english.stderr
    assert [line for line in english.stderr.splitlines() if line.startswith("skipped")] == [
        f"skipped {files}/a-array.json: report-not-object: the report must be a JSON "
        "object, not an array",
        f"skipped {files}/b-broken.json.gz: report-gzip-invalid: the report is not valid "
        "gzip: the data is truncated",
        f"skipped {files}/c-nested.json: report-too-deep: the JSON nests deeper than 32 "
        "levels (a TLS report nests 5)",
        f"skipped {files}/d-no-org.json: report-organization-missing: the report has no "
        "'organization-name' (it is required)",
    ]
    spanish = mtasts("reports", "import", str(files), *store, "--lang", "es", cwd=tmp_path)
    assert spanish.returncode == 1, spanish.stderr
    assert [line for line in spanish.stderr.splitlines() if line.startswith("omitido")] == [
        f"omitido {files}/a-array.json: report-not-object: el informe debe ser un objeto "
        "JSON, no un array",
        f"omitido {files}/b-broken.json.gz: report-gzip-invalid: el informe no es un gzip "
        "válido: los datos están truncados",
        f"omitido {files}/c-nested.json: report-too-deep: el JSON tiene más de 32 niveles "
        "de anidamiento (un informe TLS tiene 5)",
        f"omitido {files}/d-no-org.json: report-organization-missing: al informe le falta "
        "'organization-name' (es obligatorio)",
    ]


@pytest.fixture
def app(tmp_path: Path, lab_world: World) -> Iterator[Running]:
    with hosting(tmp_path, lab_world, ["company-y.example"]) as r:
        yield r


@pytest.mark.lab
def test_https_refusals_follow_accept_language(app: Running) -> None:
    """The endpoint senders POST to keeps its codes; the message is Spanish only when the
    client asks for it (Accept-Language), and English exactly as before otherwise."""
    url = f"{app.base}/tlsrpt/company-y.example"
    json_type = {"Content-Type": "application/tlsrpt+json"}
    cases: list[tuple[str, bytes, dict[str, str], int, str, str, str]] = [
        (
            url,
            b"[]",
            json_type,
            400,
            "report-not-object",
            "the report must be a JSON object, not an array",
            "el informe debe ser un objeto JSON, no un array",
        ),
        (
            url,
            json.dumps({**json.loads(RFC_EXAMPLE), "report-id": "x" * 300}).encode(),
            json_type,
            400,
            "report-field-too-long",
            "the report's report-id is longer than the 255 characters stored",
            "el campo report-id del informe supera los 255 caracteres que se guardan",
        ),
        (
            url,
            b"{}",
            {"Content-Type": "text/plain"},
            415,
            "unsupported-media-type",
            "Send application/tlsrpt+gzip or application/tlsrpt+json (RFC 8460 §5.2), not "
            "text/plain.",
            "Envíe application/tlsrpt+gzip o application/tlsrpt+json (RFC 8460 §5.2) en lugar "
            "de text/plain.",
        ),
        (
            f"{app.base}/tlsrpt/not-hosted.example",
            RFC_EXAMPLE,
            json_type,
            404,
            "domain-not-hosted",
            "No TLS reports are received for not-hosted.example here.",
            "Aquí no se reciben informes TLS de not-hosted.example.",
        ),
    ]
    for target, body, headers, status, code, english, spanish in cases:
        r = httpx.post(target, content=body, headers=headers)
        assert (r.status_code, r.json()) == (status, {"error": {"code": code, "message": english}})
        r = httpx.post(target, content=body, headers={**headers, "Accept-Language": "es-ES"})
        assert (r.status_code, r.json()) == (status, {"error": {"code": code, "message": spanish}})


def test_import_paths_are_refused_in_the_chosen_language(tmp_path: Path) -> None:
    from mtasts.reports.files import discover

    missing = tmp_path / "nope.json"
    with pytest.raises(FileNotFoundError) as info:
        discover([missing])
    assert str(info.value) == f"{missing}: no such file or directory"
    with i18n.use("es"), pytest.raises(FileNotFoundError) as info:
        discover([missing])
    assert str(info.value) == f"{missing}: no existe el fichero o directorio"
