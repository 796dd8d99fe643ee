"""The TLS report (RFC 8460 §4): corpus of real reports, repairs, errors, round trips."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mtasts.protocol.errors import LimitExceeded, ProtocolError, ReportError
from mtasts.protocol.report import (
    _WINDOW,
    POLICY_TYPES,
    RESULT_TYPES,
    FailureDetail,
    PolicyResult,
    PolicyType,
    Report,
    ResultType,
    json_depth,
    json_shape,
    parse_report,
    serialize_report,
)

CORPUS = Path(__file__).resolve().parent.parent / "data" / "tlsrpt"
JSON_FILES = sorted(p.relative_to(CORPUS).as_posix() for p in CORPUS.glob("*/*.json"))

# file -> (organisation, report-id, (successful, failed), repair codes in order)
EXPECTED: dict[str, tuple[str, str, tuple[int, int], tuple[str, ...]]] = {
    "cry-inc-dmarc-report-viewer/google.json": (
        "Google Inc.",
        "2025-05-22T00:00:00Z_foo-bar.io",
        (1, 0),
        (),
    ),
    "cry-inc-dmarc-report-viewer/microsoft.json": (
        "Microsoft Corporation",
        "133925885310113267+random.net",
        (2, 0),  # sts and tlsa list the same 2 sessions: not 4
        ("mx-host-missing", "tlsa-policy-string-json"),
    ),
    "cry-inc-dmarc-report-viewer/no-contact.json": (
        "server.com",
        "123_456",
        (1, 0),
        ("end-next-day-midnight", "contact-info-null", "mx-host-prefixed"),
    ),
    "cry-inc-dmarc-report-viewer/no-policy.json": (
        "Google Inc.",
        "2025-03-27T00:00:00Z_foo-bar.io",
        (1, 0),
        (),
    ),
    "cry-inc-dmarc-report-viewer/no_ip_and_mx.json": (
        "Microsoft Corporation",
        "1234567890+",
        (0, 3),
        ("detail-missing-ip-mx", "policy-string-missing", "mx-host-missing"),
    ),
    "cry-inc-dmarc-report-viewer/rfc-example.json": (
        "Company-X",
        "5065427c-23d3-47ca-b6e0-946ea0e8c4be",
        (5326, 303),
        (),
    ),
    "decoded/internet-message-parser__google-digilicious.json": (
        "Google Inc.",
        "2022-01-09T00:00:00Z_digilicious.com",
        (5, 0),
        ("policy-string-cr", "mx-host-missing"),
    ),
    "decoded/mail-tls-rpt__email.json": (
        "Google Inc.",
        "2020-03-02T00:00:00Z_fastmaildmarc.com",
        (343, 0),
        (),
    ),
    "decoded/mox__example.json": (
        "Google Inc.",
        "2022-09-15T00:00:00Z_test.xmox.nl",
        (3, 0),
        (),
    ),
    "decoded/mox__microsoft.json": (
        "Microsoft Corporation",
        "133198585438131172+test.xmox.nl",
        (2, 0),
        ("datetime-without-zone", "datetime-without-zone", "mx-host-missing"),
    ),
    "decoded/parsedmarc__google.com_smtp_tls_report.json": (
        "Google Inc.",
        "2024-09-03T00:00:00Z_cardinalhealth.ca",
        (48, 0),
        (),
    ),
    "decoded/stalwart-mail-auth__rpt01.json": (
        "Company-X",
        "5065427c-23d3-47ca-b6e0-946ea0e8c4be",
        (5326, 303),
        (),
    ),
    "decoded/stalwart-mail-auth__rpt02.json": (
        "Google Inc.",
        "2020-01-01T00:00:00Z_example.com",
        (23, 1),
        ("mx-host-missing",),
    ),
    "decoded/tlsrpt-digest__tlsrpt_failure.json": (
        "Google Inc.",
        "2026-02-08T00:00:00Z_example.com",
        (4523, 2),
        ("end-next-day-midnight", "mx-host-missing"),
    ),
    "decoded/tlsrpt-digest__tlsrpt_success_google_1.json": (
        "Google Inc.",
        "2026-05-11T00:00:00Z_example.com",
        (1, 0),
        (),
    ),
    "decoded/tlsrpt-digest__tlsrpt_success_google_2.json": (
        "Google Inc.",
        "2026-05-12T00:00:00Z_example.com",
        (4, 0),
        (),
    ),
    "decoded/tlsrpt-digest__tlsrpt_success_microsoft.json": (
        "Microsoft Corporation",
        "134232617934286362+example.com",
        (2, 0),
        ("mx-host-missing",),
    ),
    "mail-tls-rpt/report.json": (
        "Google Inc.",
        "2020-03-02T00:00:00Z_fastmaildmarc.com",
        (343, 0),
        (),
    ),
    "parsedmarc/mail.ru.json": (
        "Mail.ru",
        "b28254de-7b2e-be36-bb5c-4c3b92da8b25@mail.ru",
        (0, 1),
        (
            "end-next-day-midnight",
            "detail-missing-ip-mx",
            "detail-missing-ip-mx",
            "failure-count-exceeds-total",
            "policy-string-missing",
            "mx-host-missing",
        ),
    ),
    "parsedmarc/rfc8460.json": (
        "Company-X",
        "5065427c-23d3-47ca-b6e0-946ea0e8c4be",
        (5326, 303),
        ("mx-host-string",),
    ),
    "parsedmarc/smtp_tls.json": (
        "Example Inc.",
        "2024-01-09T00:00:00Z_example.com",
        (0, 3),
        ("mx-host-missing",),
    ),
    "stalwart-mail-auth/rpt01.json": (
        "Company-X",
        "5065427c-23d3-47ca-b6e0-946ea0e8c4be",
        (5326, 303),
        (),
    ),
    "stalwart-mail-auth/rpt02.json": (
        "Google Inc.",
        "2020-01-01T00:00:00Z_example.com",
        (23, 1),
        ("mx-host-missing",),
    ),
    "stalwart-mail-auth/rpt03.json": (
        "Google Inc.",
        "2019-04-14T00:00:00Z_example.org",
        (2, 0),
        (
            "policy-domain-missing",
            "summary-count-missing",
            "unknown-policy-type",
            "policy-domain-missing",
            "summary-count-missing",
            "policy-string-missing",
        ),
    ),
}


def load(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


def test_every_corpus_json_file_is_listed() -> None:
    assert set(JSON_FILES) == set(EXPECTED)
    assert len(JSON_FILES) == 24


@pytest.mark.parametrize("name", JSON_FILES)
def test_corpus_parses_with_expected_repairs(name: str) -> None:
    org, report_id, sessions, repairs = EXPECTED[name]
    parsed = parse_report(load(name))
    report = parsed.report
    assert (report.organization_name, report.report_id) == (org, report_id)
    assert report.sessions() == sessions
    assert parsed.repair_codes == repairs
    assert report.start_datetime.tzinfo is UTC and report.end_datetime.tzinfo is UTC
    assert report.start_datetime <= report.end_datetime


@pytest.mark.parametrize("name", JSON_FILES)
def test_corpus_round_trips_strictly(name: str) -> None:
    report = parse_report(load(name)).report
    data = serialize_report(report)
    again = parse_report(data)
    assert again.report == report
    obj = json.loads(data)
    for policy in obj["policies"]:
        # RFC 8460 erratum 6241: mx-host is an array
        assert isinstance(policy["policy"].get("mx-host", []), list)
    assert obj["date-range"]["start-datetime"].endswith("Z")
    # Only what cannot be corrected stays flagged once written strictly.
    assert set(again.repair_codes) <= {
        "end-next-day-midnight",
        "detail-missing-ip-mx",
        "failure-count-exceeds-total",
        "unknown-policy-type",
        "policy-domain-missing",
        "policy-string-missing",
        "mx-host-missing",
        "contact-info-missing",
    }


@pytest.mark.parametrize("name", [n for n in JSON_FILES if n.startswith("decoded/")])
def test_decoded_payloads_parse_as_text_too(name: str) -> None:
    assert parse_report(load(name).decode()).report == parse_report(load(name)).report


def test_rfc_example_details() -> None:
    report = parse_report(load("cry-inc-dmarc-report-viewer/rfc-example.json")).report
    (policy,) = report.policies
    assert policy.policy_type == PolicyType.STS
    assert policy.policy_domain == "company-y.example"
    assert policy.mx_hosts == ("*.mail.company-y.example",)
    assert policy.policy_strings[1] == "mode: testing"
    assert (policy.total_successful, policy.total_failure) == (5326, 303)
    assert [d.result_type for d in policy.failure_details] == [
        "certificate-expired",
        "starttls-not-supported",
        "validation-failure",
    ]
    expired, starttls, validation = policy.failure_details
    assert expired == FailureDetail(
        result_type="certificate-expired",
        sending_mta_ip="2001:db8:abcd:0012::1",
        receiving_mx_hostname="mx1.mail.company-y.example",
        failed_session_count=100,
    )
    assert starttls.receiving_ip == "203.0.113.56"
    assert starttls.additional_information is not None
    assert starttls.additional_information.endswith("#StarttlsNotSupported")
    assert validation.failure_reason_code == "X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED"
    assert all(d.known_result_type for d in policy.failure_details)
    assert report.start_datetime == datetime(2016, 4, 1, tzinfo=UTC)
    assert report.end_datetime == datetime(2016, 4, 1, 23, 59, 59, tzinfo=UTC)
    assert report.contact_info == "sts-reporting@company-x.example"


def test_mx_host_string_and_list_give_the_same_report() -> None:
    as_string = parse_report(load("parsedmarc/rfc8460.json")).report
    as_list = parse_report(load("cry-inc-dmarc-report-viewer/rfc-example.json")).report
    assert as_string == as_list


def test_microsoft_tlsa_policy_string_is_unpacked() -> None:
    parsed = parse_report(load("cry-inc-dmarc-report-viewer/microsoft.json"))
    sts, tlsa = parsed.report.policies
    assert (sts.policy_type, tlsa.policy_type) == ("sts", "tlsa")
    assert tlsa.policy_strings == (
        "3 1 1 6007EEE553E85D8DF007A845D19EC343283D4E416E9A33F9EF3040C8B7C285BC",
        "3 1 1 837C773D54C2E2BD71871A3FC352BE8214D5646CBAE5E3091401A7274717998B",
    )
    assert sum(p.total_successful for p in parsed.report.policies) == 4
    assert parsed.report.sessions() == (2, 0)


def test_microsoft_2023_datetimes_without_zone_are_utc() -> None:
    parsed = parse_report(load("decoded/mox__microsoft.json"))
    assert parsed.report.start_datetime == datetime(2023, 1, 10, tzinfo=UTC)
    assert parsed.report.end_datetime == datetime(2023, 1, 10, 23, 59, 59, tzinfo=UTC)
    assert "'2023-01-10T00:00:00' has no time zone" in parsed.repairs[0].message


def test_quirks_of_small_senders() -> None:
    parsed = parse_report(load("cry-inc-dmarc-report-viewer/no-contact.json"))
    assert parsed.report.contact_info is None
    (policy,) = parsed.report.policies
    assert policy.mx_hosts == ("mx.server.com",)  # was "mx: mx.server.com"
    # the exclusive end is kept as written, and said so
    assert parsed.report.end_datetime == datetime(2026, 1, 12, tzinfo=UTC)
    assert "ends with 2026-01-11" in parsed.repairs[0].message


def test_fetch_error_without_ip_and_mx() -> None:
    report = parse_report(load("cry-inc-dmarc-report-viewer/no_ip_and_mx.json")).report
    (detail,) = report.policies[0].failure_details
    assert detail.result_type == ResultType.STS_POLICY_FETCH_ERROR
    assert (detail.sending_mta_ip, detail.receiving_mx_hostname) == (None, None)
    assert detail.failed_session_count == 3
    assert report.policies[0].policy_strings == ()


def test_mail_ru_details_exceed_the_total_and_totals_follow_the_summary() -> None:
    parsed = parse_report(load("parsedmarc/mail.ru.json"))
    (policy,) = parsed.report.policies
    assert [d.failure_reason_code for d in policy.failure_details] == [
        "bad https response code: 404",
        "bad https response code: 500",
    ]
    assert policy.total_failure == 1
    assert parsed.report.sessions() == (0, 1)
    message = next(r.message for r in parsed.repairs if r.code == "failure-count-exceeds-total")
    assert "add up to 2" in message and "says 1" in message


def test_google_crlf_policy_lines_are_trimmed() -> None:
    report = parse_report(load("decoded/internet-message-parser__google-digilicious.json")).report
    assert report.policies[0].policy_strings == (
        "version: STSv1",
        "mode: enforce",
        "max_age: 2419200",
        "mx: digilicious.com",
    )


def test_robustness_case_keeps_unknown_policy_type() -> None:
    report = parse_report(load("stalwart-mail-auth/rpt03.json")).report
    assert [p.policy_type for p in report.policies] == ["no-policy-found", "invalid-policy-type"]
    assert not report.policies[1].known_policy_type
    assert [p.policy_domain for p in report.policies] == [None, None]
    assert [p.total_failure for p in report.policies] == [0, 0]


# --- hand-written deviations and errors ------------------------------------------------

BASE: dict[str, Any] = json.loads(load("cry-inc-dmarc-report-viewer/rfc-example.json"))


def variant(**changes: Any) -> dict[str, Any]:
    """A copy of the RFC example; keys are dotted paths (``policies.0.summary``), and the
    value ``...`` deletes the key."""
    obj: dict[str, Any] = json.loads(json.dumps(BASE))
    for path, value in changes.items():
        *parents, last = path.replace("__", "-").split(".")
        node = obj
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if value is ...:
            del node[int(last) if isinstance(node, list) else last]
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return obj


def parse_obj(obj: Any) -> Any:
    return parse_report(json.dumps(obj))


@pytest.mark.parametrize(
    ("changes", "codes"),
    [
        ({"contact__info": ...}, ("contact-info-missing",)),
        (
            {"policies.0.failure__details.0.result__type": "Certificate-Expired"},
            ("result-type-case",),
        ),
        (
            {"policies.0.failure__details.0.result__type": "quantum-failure"},
            ("unknown-result-type",),
        ),
        ({"policies.0.policy.policy__type": "STS"}, ("policy-type-case",)),
        ({"policies.0.policy.policy__type": "dnssec"}, ("unknown-policy-type",)),
        ({"policies.0.policy.policy__domain": ""}, ("policy-domain-missing",)),
        ({"policies.0.policy.policy__string": "version: STSv1"}, ("policy-string-string",)),
        ({"policies.0.failure__details.1.receiving__ip": None}, ("field-null",)),
        ({"policies.0.failure__details": None}, ()),
        ({"date__range.start__datetime": "2016-04-01T02:00:00+02:00"}, ()),
        ({"date__range.start__datetime": "2016-04-01t00:00:00.5z"}, ()),
        ({"date__range.start__datetime": "2016-04-01 00:00:00Z"}, ()),
    ],
)
def test_deviations_are_repaired(changes: dict[str, Any], codes: tuple[str, ...]) -> None:
    parsed = parse_obj(variant(**changes))
    assert parsed.repair_codes == codes


def test_details_and_types_after_repair() -> None:
    parsed = parse_obj(
        variant(
            **{
                "policies.0.failure__details.0.result__type": "Certificate-Expired",
                "policies.0.failure__details.1.result__type": "quantum-failure",
                "date__range.start__datetime": "2016-04-01T02:00:00+02:00",
            }
        )
    )
    details = parsed.report.policies[0].failure_details
    assert details[0].result_type == "certificate-expired"
    assert details[1].result_type == "quantum-failure" and not details[1].known_result_type
    assert parsed.report.start_datetime == datetime(2016, 4, 1, tzinfo=UTC)
    assert parse_obj(
        variant(**{"date__range.start__datetime": "2016-04-01t00:00:00.5z"})
    ).report.start_datetime == datetime(2016, 4, 1, 0, 0, 0, 500000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "report-not-json"),
        (b"not json", "report-not-json"),
        (b'{"a": NaN}', "report-not-json"),
        (b"\x1f\x8b\x08\x00", "report-encoding"),
        (b'{"organization-name": "\xff"}', "report-encoding"),
        (b"[]", "report-not-object"),
        (b'"report"', "report-not-object"),
        (b"null", "report-not-object"),
        (b"[" * 100_000 + b"]" * 100_000, "report-too-deep"),
        (b'{"a":' * 600 + b"1" + b"}" * 600, "report-too-deep"),
    ],
)
def test_unusable_text(data: bytes, code: str) -> None:
    with pytest.raises(ReportError) as info:
        parse_report(data)
    assert info.value.code == code
    assert info.value.rfc.startswith("RFC 8460 §")


def test_deep_nesting_is_a_limit() -> None:
    with pytest.raises(LimitExceeded) as info:
        parse_report("[" * 10_000)
    assert info.value.limit == 512


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"report__id": ...}, "report-id-missing"),
        ({"report__id": ""}, "report-id-missing"),
        ({"report__id": 5}, "report-field-type"),
        ({"organization__name": ...}, "report-organization-missing"),
        ({"organization__name": None}, "report-organization-missing"),
        ({"organization__name": ["x"]}, "report-field-type"),
        ({"date__range": ...}, "report-date-range-missing"),
        ({"date__range.end__datetime": ...}, "report-date-range-missing"),
        ({"date__range": "2016-04-01"}, "report-field-type"),
        ({"date__range.start__datetime": "2016-04-01"}, "report-datetime-invalid"),
        ({"date__range.start__datetime": "2016-13-01T00:00:00Z"}, "report-datetime-invalid"),
        ({"date__range.start__datetime": "0001-01-01T00:00:00+01:00"}, "report-datetime-invalid"),
        ({"date__range.start__datetime": 1459468800}, "report-field-type"),
        ({"date__range.start__datetime": "2016-04-02T00:00:00Z"}, "report-date-range-reversed"),
        ({"contact__info": 1}, "report-field-type"),
        ({"policies": ...}, "report-policies-missing"),
        ({"policies": {}}, "report-field-type"),
        ({"policies.0": "sts"}, "report-field-type"),
        ({"policies.0.policy": ...}, "report-field-missing"),
        ({"policies.0.summary": ...}, "report-field-missing"),
        ({"policies.0.summary": [1, 2]}, "report-field-type"),
        ({"policies.0.policy.policy__type": ...}, "report-field-missing"),
        ({"policies.0.policy.policy__type": 1}, "report-field-type"),
        ({"policies.0.policy.policy__domain": 1}, "report-field-type"),
        ({"policies.0.policy.policy__string": [1]}, "report-field-type"),
        ({"policies.0.policy.mx__host": {"a": 1}}, "report-field-type"),
        ({"policies.0.summary.total__successful__session__count": -1}, "report-count-invalid"),
        ({"policies.0.summary.total__failure__session__count": 2**63}, "report-count-invalid"),
        ({"policies.0.summary.total__failure__session__count": 1.0}, "report-field-type"),
        ({"policies.0.summary.total__failure__session__count": "303"}, "report-field-type"),
        ({"policies.0.summary.total__failure__session__count": True}, "report-field-type"),
        ({"policies.0.failure__details": {}}, "report-field-type"),
        ({"policies.0.failure__details.0": 1}, "report-field-type"),
        ({"policies.0.failure__details.0.result__type": ...}, "report-field-missing"),
        ({"policies.0.failure__details.0.failed__session__count": ...}, "report-field-missing"),
        ({"policies.0.failure__details.0.failed__session__count": -5}, "report-count-invalid"),
        ({"policies.0.failure__details.0.sending__mta__ip": 12}, "report-field-type"),
    ],
)
def test_unusable_reports(changes: dict[str, Any], code: str) -> None:
    with pytest.raises(ReportError) as info:
        parse_obj(variant(**changes))
    assert info.value.code == code
    assert isinstance(info.value, ProtocolError)
    assert info.value.fix


def test_error_messages_say_where() -> None:
    with pytest.raises(ReportError) as info:
        parse_obj(variant(**{"policies.0.failure__details.2.failed__session__count": -5}))
    assert "policies[0].failure-details[2].failed-session-count is -5" in info.value.message


# --- sessions(): one count per session --------------------------------------------------

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def policy(type_: str, domain: str | None, ok: int, failed: int) -> PolicyResult:
    return PolicyResult(
        policy_type=type_, policy_domain=domain, total_successful=ok, total_failure=failed
    )


def report_of(*policies: PolicyResult) -> Report:
    return Report(
        organization_name="Org",
        start_datetime=T0,
        end_datetime=T0 + timedelta(hours=24, seconds=-1),
        contact_info=None,
        report_id="r1",
        policies=policies,
    )


@pytest.mark.parametrize(
    ("policies", "sessions"),
    [
        ((), (0, 0)),
        ((policy("sts", "a.example", 2, 1), policy("tlsa", "a.example", 2, 1)), (2, 1)),
        ((policy("sts", "a.example", 2, 1), policy("tlsa", "A.example.", 1, 0)), (2, 1)),
        ((policy("sts", "a.example", 3, 0), policy("tlsa", "a.example", 2, 1)), (2, 1)),
        ((policy("sts", "a.example", 4, 0), policy("tlsa", "a.example", 2, 1)), (4, 0)),
        ((policy("sts", "a.example", 2, 0), policy("tlsa", "a.example", 1, 1)), (1, 1)),
        ((policy("sts", "a.example", 2, 0), policy("sts", "b.example", 5, 1)), (7, 1)),
        ((policy("sts", "a.example", 2, 0), policy("no-policy-found", "a.example", 4, 0)), (6, 0)),
        ((policy("no-policy-found", None, 1, 0), policy("odd", None, 1, 0)), (2, 0)),
        ((policy("sts", "a.example", 2, 0), policy("sts", "a.example", 1, 1)), (3, 1)),
        ((policy("sts", "a.example", 0, 1), policy("sts", "a.example", 0, 2)), (0, 3)),
        ((policy("no-policy-found", None, 1, 2),), (1, 2)),
        # distinct domains stay distinct, also where upper-casing would merge them (ß -> SS)
        ((policy("sts", "ss.example", 1, 0), policy("tlsa", "ß.example", 1, 0)), (2, 0)),
        # an entry without a domain is never merged with a named one
        ((policy("sts", "xxxx", 1, 0), policy("tlsa", None, 1, 0)), (2, 0)),
    ],
)
def test_sessions_count_each_session_once(
    policies: tuple[PolicyResult, ...], sessions: tuple[int, int]
) -> None:
    assert report_of(*policies).sessions() == sessions


# --- strict serialization ---------------------------------------------------------------


def test_serialize_refuses_what_would_not_parse_back() -> None:
    good = report_of(policy("sts", "a.example", 1, 0))
    assert parse_report(serialize_report(good)).report == good
    with pytest.raises(ReportError) as info:
        serialize_report(report_of(policy("sts", "a.example", -1, 0)))
    assert info.value.code == "report-count-invalid"
    with pytest.raises(ReportError) as info:
        serialize_report(dataclasses.replace(good, report_id=""))
    assert info.value.code == "report-id-missing"
    with pytest.raises(ReportError) as info:
        serialize_report(dataclasses.replace(good, start_datetime=datetime(2024, 1, 1)))
    assert info.value.code == "report-datetime-invalid"
    bad_line = dataclasses.replace(
        good, policies=(dataclasses.replace(good.policies[0], policy_strings=("mode: x\r",)),)
    )
    with pytest.raises(ReportError) as info:
        serialize_report(bad_line)
    assert info.value.code == "report-not-canonical"


def test_serialized_form_is_the_rfc_one() -> None:
    report = parse_report(load("parsedmarc/rfc8460.json")).report
    obj = json.loads(serialize_report(report))
    assert list(obj) == [
        "organization-name",
        "date-range",
        "contact-info",
        "report-id",
        "policies",
    ]
    assert obj["date-range"] == {
        "start-datetime": "2016-04-01T00:00:00Z",
        "end-datetime": "2016-04-01T23:59:59Z",
    }
    assert obj["policies"][0]["policy"]["mx-host"] == ["*.mail.company-y.example"]
    assert obj["policies"][0]["failure-details"][0] == {
        "result-type": "certificate-expired",
        "sending-mta-ip": "2001:db8:abcd:0012::1",
        "receiving-mx-hostname": "mx1.mail.company-y.example",
        "failed-session-count": 100,
    }
    assert serialize_report(report) == report.serialize()


# --- JSON shape scanning ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "depth", "containers"),
    [
        ("", 0, 0),
        ("1", 0, 0),
        ("[]", 1, 1),
        ('{"a": [1, {"b": []}]}', 4, 4),
        ('{"a": "[[[{{"}', 1, 1),
        (r'{"a": "\"[[", "b": "\\", "c": ["\\\"]"]}', 2, 2),
        ("[[],{},[[]]]", 3, 5),
        ("[[[", 3, 3),
    ],
)
def test_json_shape(text: str, depth: int, containers: int) -> None:
    shape = json_shape(text)
    assert (shape.depth, shape.containers) == (depth, containers)
    assert json_depth(text.encode()) == depth


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=30,
)


def true_depth(value: object) -> int:
    if isinstance(value, list):
        return 1 + max((true_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((true_depth(v) for v in value.values()), default=0)
    return 0


@given(JSON_VALUES, st.booleans())
def test_json_shape_matches_the_parsed_value(value: object, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert json_depth(text) == true_depth(value)


# --- property-based -----------------------------------------------------------------------

TEXT = st.text(st.characters(codec="utf-8"), max_size=20)
NAME = st.from_regex(r"[a-z0-9]{1,10}(\.[a-z0-9]{1,10}){0,2}\.[a-z]{2,6}", fullmatch=True)
IP = st.ip_addresses().map(str)
COUNT = st.integers(0, 2**63 - 1)
DATETIME = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)
# Values parsing would repair are not canonical: leave them out.
POLICY_LINE = TEXT.filter(lambda s: not s.endswith("\r"))
MX_HOST = NAME | NAME.map(lambda n: "*." + n)
RESULT = st.sampled_from(sorted(RESULT_TYPES)) | st.from_regex(r"x-[a-z-]{1,12}", fullmatch=True)
PTYPE = st.sampled_from(sorted(POLICY_TYPES)) | st.from_regex(r"x-[a-z]{1,8}", fullmatch=True)

DETAILS = st.builds(
    FailureDetail,
    result_type=RESULT,
    sending_mta_ip=st.none() | IP,
    receiving_mx_hostname=st.none() | NAME,
    receiving_mx_helo=st.none() | NAME,
    receiving_ip=st.none() | IP,
    failed_session_count=COUNT,
    additional_information=st.none() | TEXT,
    failure_reason_code=st.none() | TEXT,
)


@st.composite
def policy_results(draw: st.DrawFn) -> PolicyResult:
    type_ = draw(PTYPE)
    lines = draw(st.lists(POLICY_LINE, max_size=5))
    if type_ == "tlsa" and len(lines) == 1 and lines[0].lstrip().startswith("["):
        lines = []
    return PolicyResult(
        policy_type=type_,
        policy_strings=tuple(lines),
        policy_domain=draw(st.none() | NAME),
        mx_hosts=tuple(draw(st.lists(MX_HOST, max_size=3))),
        total_successful=draw(COUNT),
        total_failure=draw(COUNT),
        failure_details=tuple(draw(st.lists(DETAILS, max_size=3))),
    )


@st.composite
def reports(draw: st.DrawFn) -> Report:
    start = draw(DATETIME)
    end = start + draw(st.timedeltas(timedelta(0), timedelta(days=8)))
    return Report(
        organization_name=draw(TEXT.filter(bool)),
        start_datetime=start,
        end_datetime=end,
        contact_info=draw(st.none() | TEXT),
        report_id=draw(TEXT.filter(bool)),
        policies=tuple(draw(st.lists(policy_results(), max_size=4))),
    )


@settings(max_examples=3 * settings().max_examples)  # 300; 75 in `make mutation`
@given(reports())
def test_generated_reports_round_trip(report: Report) -> None:
    data = serialize_report(report)
    assert parse_report(data).report == report
    assert parse_report(data.decode()).report == report


@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_arbitrary_bytes_raise_only_report_error(data: bytes) -> None:
    with contextlib.suppress(ReportError):
        parse_report(data)


@given(st.text(max_size=300))
def test_arbitrary_text_raises_only_report_error(text: str) -> None:
    with contextlib.suppress(ReportError):
        parse_report(text)


@given(JSON_VALUES)
def test_arbitrary_json_raises_only_report_error(value: object) -> None:
    with contextlib.suppress(ReportError):
        parse_report(json.dumps(value))


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            found += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += _paths(v, (*prefix, i))
    return found


@settings(max_examples=3 * settings().max_examples)  # 300; 75 in `make mutation`
@given(st.data(), st.sampled_from(JSON_FILES), JSON_VALUES | st.just(...))
def test_mutated_corpus_reports_raise_only_report_error(
    data: st.DataObject, name: str, replacement: Any
) -> None:
    """Replace (or delete) one node anywhere in a real report."""
    obj = json.loads(load(name))
    path = data.draw(st.sampled_from(_paths(obj)[1:]))
    node = obj
    for key in path[:-1]:
        node = node[key]
    if replacement is ...:
        del node[path[-1]]
    else:
        node[path[-1]] = replacement
    try:
        parsed = parse_report(json.dumps(obj))
    except ReportError:
        return
    assert parse_report(serialize_report(parsed.report)).report == parsed.report


# Strings are found window by window (_WINDOW bytes at a time): one that opens in a window
# and closes in a later one must still hide its brackets and quotes, whatever the offset.
@pytest.mark.parametrize("offset", range(-4, 4))
@pytest.mark.parametrize("windows", [1, 2])
def test_json_shape_across_windows(offset: int, windows: int) -> None:
    pad = "a" * (windows * _WINDOW - 2 + offset)
    text = '[["' + pad + '[{\\"]}\\\\"], [[]], "' + pad + '"]'
    assert json.loads(text)  # valid JSON: [[string], [[]], string]
    shape = json_shape(text)
    assert (shape.depth, shape.containers) == (3, 4)
    assert json_shape(text.encode()) == shape


@given(JSON_VALUES, st.integers(0, 6))
def test_json_shape_stops_just_above_the_bound(value: object, stop_above: int) -> None:
    # RFC 8460 §4.4: reports are JSON; past the bound only "deeper than it" matters.
    depth = true_depth(value)
    found = json_shape(json.dumps(value), stop_above).depth
    assert json_depth(json.dumps(value), stop_above) == found
    if depth <= stop_above:
        assert found == depth
    else:
        assert found > stop_above
