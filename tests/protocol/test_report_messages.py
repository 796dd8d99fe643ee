# ruff: noqa: E501 (the tables hold the exact messages, one line each)
"""What a user reads about a TLS report (RFC 8460 §4): the exact message, RFC section and fix
of each reason a report is refused, and the exact message of each deviation tolerated."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
from tests.protocol.test_report import parse_obj, variant

from mtasts.protocol.errors import LimitExceeded, ReportError
from mtasts.protocol.report import (
    FailureDetail,
    ParsedReport,
    PolicyResult,
    Report,
    decode_report_json,
    format_datetime,
    parse_report,
    serialize_report,
)

SENDER = "nothing to change on your side: the sending organisation produced this report"

# (code, message, rfc, fix) of the error each call raises
ERRORS: list[tuple[Callable[[], object], tuple[str, str, str, str | None]]] = [
    (
        lambda: parse_obj(variant(**{"report__id": ...})),
        (
            "report-id-missing",
            "the report has no 'report-id' (it is required)",
            "RFC 8460 §4.3",
            SENDER,
        ),
    ),
    (
        lambda: parse_obj(variant(**{"report__id": ""})),
        (
            "report-id-missing",
            "the report has no 'report-id' (it is required)",
            "RFC 8460 §4.3",
            SENDER,
        ),
    ),
    (
        lambda: parse_obj(variant(**{"report__id": 5})),
        ("report-field-type", "report-id must be a string, not a number", "RFC 8460 §4.4", SENDER),
    ),
    (
        lambda: parse_obj(variant(**{"organization__name": ...})),
        (
            "report-organization-missing",
            "the report has no 'organization-name' (it is required)",
            "RFC 8460 §4.3",
            SENDER,
        ),
    ),
    (
        lambda: parse_obj(variant(**{"organization__name": None})),
        (
            "report-organization-missing",
            "the report has no 'organization-name' (it is required)",
            "RFC 8460 §4.3",
            SENDER,
        ),
    ),
    (
        lambda: parse_obj(variant(**{"organization__name": ["x"]})),
        (
            "report-field-type",
            "organization-name must be a string, not an array",
            "RFC 8460 §4.4",
            SENDER,
        ),
    ),
    (
        lambda: parse_obj(variant(**{"date__range": ...})),
        (
            "report-date-range-missing",
            "the report has no 'date-range' (it is required)",
            "RFC 8460 §4.3",
            SENDER,
        ),
    ),
    (
        lambda: parse_obj(variant(**{"date__range.end__datetime": ...})),
        (
            "report-date-range-missing",
            "the report has no date-range.end-datetime (it is required)",
            "RFC 8460 §4.3",
            SENDER,
        ),
    ),
    (
        lambda: parse_obj(variant(**{"date__range": "2016-04-01"})),
        (
            "report-field-type",
            "date-range must be an object, not a string",
            "RFC 8460 §4.4",
            SENDER,
        ),
    ),
    (
        lambda: parse_obj(variant(**{"date__range.start__datetime": "2016-04-01"})),
        (
            "report-datetime-invalid",
            "date-range.start-datetime: '2016-04-01' is not an RFC 3339 date-time (2016-04-01T00:00:00Z)",
            "RFC 8460 §4.3",
            SENDER,
        ),
    ),
    (
        lambda: parse_obj(variant(**{"date__range.start__datetime": "2016-13-01T00:00:00Z"})),
        (
            "report-datetime-invalid",
            "date-range.start-datetime: '2016-13-01T00:00:00Z' is not a valid date-time (month must be in 1..12)",
            "RFC 8460 §4.3",
            SENDER,
        ),
    ),
    (
        lambda: parse_obj(variant(**{"date__range.start__datetime": "0001-01-01T00:00:00+01:00"})),
        (
            "report-datetime-invalid",
            "date-range.start-datetime: '0001-01-01T00:00:00+01:00' is not a valid date-time (date value out of range)",
            "RFC 8460 §4.3",
            SENDER,
        ),
    ),
    (
        lambda: parse_obj(variant(**{"date__range.start__datetime": 1459468800})),
        (
            "report-field-type",
            "date-range.start-datetime must be a date-time string, not a number",
            "RFC 8460 §4.4",
            SENDER,
        ),
    ),
    (
        lambda: parse_obj(variant(**{"date__range.start__datetime": "2016-04-02T00:00:00Z"})),
        (
            "report-date-range-reversed",
            "date-range ends (2016-04-01T23:59:59Z) before it starts (2016-04-02T00:00:00Z)",
            "RFC 8460 §4.3",
            SENDER,
        ),
    ),
    (
        lambda: parse_obj(variant(**{"contact__info": 1})),
        (
            "report-field-type",
            "contact-info must be a string, not a number",
            "RFC 8460 §4.4",
            SENDER,
        ),
    ),
    (
        lambda: parse_obj(variant(**{"policies": ...})),
        (
            "report-policies-missing",
            "the report has no 'policies' (it is required)",
            "RFC 8460 §4.3",
            SENDER,
        ),
    ),
    (
        lambda: parse_obj(variant(**{"policies": {}})),
        ("report-field-type", "policies must be an array, not an object", "RFC 8460 §4.4", SENDER),
    ),
    (
        lambda: parse_obj(variant(**{"policies.0": "sts"})),
        (
            "report-field-type",
            "policies[0] must be an object, not a string",
            "RFC 8460 §4.4",
            SENDER,
        ),
    ),
    (
        lambda: parse_obj(variant(**{"policies.0.policy": ...})),
        (
            "report-field-missing",
            "the report has no policies[0].policy (it is required)",
            "RFC 8460 §4.3",
            SENDER,
        ),
    ),
    (
        lambda: parse_obj(variant(**{"policies.0.summary": ...})),
        (
            "report-field-missing",
            "the report has no policies[0].summary (it is required)",
            "RFC 8460 §4.3",
            SENDER,
        ),
    ),
    (
        lambda: parse_obj(variant(**{"policies.0.summary": [1, 2]})),
        (
            "report-field-type",
            "policies[0].summary must be an object, not an array",
            "RFC 8460 §4.4",
            SENDER,
        ),
    ),
    (
        lambda: parse_obj(variant(**{"policies.0.policy.policy__type": ...})),
        (
            "report-field-missing",
            "the report has no policies[0].policy.'policy-type' (it is required)",
            "RFC 8460 §4.3",
            SENDER,
        ),
    ),
    (
        lambda: parse_obj(variant(**{"policies.0.policy.policy__type": 1})),
        (
            "report-field-type",
            "policies[0].policy.policy-type must be a string, not a number",
            "RFC 8460 §4.4",
            SENDER,
        ),
    ),
    (
        lambda: parse_obj(variant(**{"policies.0.policy.policy__domain": 1})),
        (
            "report-field-type",
            "policies[0].policy.policy-domain must be a string, not a number",
            "RFC 8460 §4.4",
            SENDER,
        ),
    ),
    (
        lambda: parse_obj(variant(**{"policies.0.policy.policy__string": [1]})),
        (
            "report-field-type",
            "policies[0].policy.policy-string[0] must be a string, not a number",
            "RFC 8460 §4.4",
            SENDER,
        ),
    ),
    (
        lambda: parse_obj(variant(**{"policies.0.policy.mx__host": {"a": 1}})),
        (
            "report-field-type",
            "policies[0].policy.mx-host must be an array, not an object",
            "RFC 8460 §4.4",
            SENDER,
        ),
    ),
    (
        lambda: parse_obj(variant(**{"policies.0.summary.total__successful__session__count": -1})),
        (
            "report-count-invalid",
            "policies[0].summary.total-successful-session-count is -1: session counts are whole numbers from 0 to 2^63-1",
            "RFC 8460 §4.3",
            SENDER,
        ),
    ),
    (
        lambda: parse_obj(variant(**{"policies.0.summary.total__failure__session__count": 2**63})),
        (
            "report-count-invalid",
            "policies[0].summary.total-failure-session-count is 9223372036854775808: session counts are whole numbers from 0 to 2^63-1",
            "RFC 8460 §4.3",
            SENDER,
        ),
    ),
    (
        lambda: parse_obj(variant(**{"policies.0.summary.total__failure__session__count": 1.0})),
        (
            "report-field-type",
            "policies[0].summary.total-failure-session-count must be a whole number, not a number",
            "RFC 8460 §4.4",
            SENDER,
        ),
    ),
    (
        lambda: parse_obj(variant(**{"policies.0.summary.total__failure__session__count": "303"})),
        (
            "report-field-type",
            "policies[0].summary.total-failure-session-count must be a whole number, not a string",
            "RFC 8460 §4.4",
            SENDER,
        ),
    ),
    (
        lambda: parse_obj(variant(**{"policies.0.summary.total__failure__session__count": True})),
        (
            "report-field-type",
            "policies[0].summary.total-failure-session-count must be a whole number, not a boolean",
            "RFC 8460 §4.4",
            SENDER,
        ),
    ),
    (
        lambda: parse_obj(variant(**{"policies.0.failure__details": {}})),
        (
            "report-field-type",
            "policies[0].failure-details must be an array, not an object",
            "RFC 8460 §4.4",
            SENDER,
        ),
    ),
    (
        lambda: parse_obj(variant(**{"policies.0.failure__details.0": 1})),
        (
            "report-field-type",
            "policies[0].failure-details[0] must be an object, not a number",
            "RFC 8460 §4.4",
            SENDER,
        ),
    ),
    (
        lambda: parse_obj(variant(**{"policies.0.failure__details.0.result__type": ...})),
        (
            "report-field-missing",
            "the report has no policies[0].failure-details[0].'result-type' (it is required)",
            "RFC 8460 §4.3",
            SENDER,
        ),
    ),
    (
        lambda: parse_obj(variant(**{"policies.0.failure__details.0.failed__session__count": ...})),
        (
            "report-field-missing",
            "the report has no policies[0].failure-details[0].failed-session-count (it is required)",
            "RFC 8460 §4.3",
            SENDER,
        ),
    ),
    (
        lambda: parse_obj(variant(**{"policies.0.failure__details.0.failed__session__count": -5})),
        (
            "report-count-invalid",
            "policies[0].failure-details[0].failed-session-count is -5: session counts are whole numbers from 0 to 2^63-1",
            "RFC 8460 §4.3",
            SENDER,
        ),
    ),
    (
        lambda: parse_obj(variant(**{"policies.0.failure__details.0.sending__mta__ip": 12})),
        (
            "report-field-type",
            "policies[0].failure-details[0].sending-mta-ip must be a string, not a number",
            "RFC 8460 §4.4",
            SENDER,
        ),
    ),
    (
        lambda: parse_report(b""),
        (
            "report-not-json",
            "the report is not JSON: Expecting value: line 1 column 1 (char 0)",
            "RFC 8460 §4.4",
            SENDER,
        ),
    ),
    (
        lambda: parse_report(b'{"a": NaN}'),
        (
            "report-not-json",
            "the report is not JSON: NaN is not a JSON value",
            "RFC 8460 §4.4",
            SENDER,
        ),
    ),
    (
        lambda: parse_report(b'{"a": -Infinity}'),
        (
            "report-not-json",
            "the report is not JSON: -Infinity is not a JSON value",
            "RFC 8460 §4.4",
            SENDER,
        ),
    ),
    (
        lambda: parse_report(b"\x1f\x8b\x08\x00"),
        (
            "report-encoding",
            "byte 0x8b at offset 1 is not UTF-8 (it is gzip: decompress it first)",
            "RFC 8460 §4.4",
            SENDER,
        ),
    ),
    (
        lambda: parse_report(b'{"organization-name": "\xff"}'),
        ("report-encoding", "byte 0xff at offset 23 is not UTF-8", "RFC 8460 §4.4", SENDER),
    ),
    (
        lambda: parse_report(b"[]"),
        (
            "report-not-object",
            "the report must be a JSON object, not an array",
            "RFC 8460 §4.4",
            SENDER,
        ),
    ),
    (
        lambda: parse_report("null"),
        (
            "report-not-object",
            "the report must be a JSON object, not null",
            "RFC 8460 §4.4",
            SENDER,
        ),
    ),
    (
        lambda: parse_report("[" * 600),
        (
            "report-too-deep",
            "the JSON nests deeper than 512 levels (a TLS report nests 5)",
            "RFC 8460 §4.4",
            SENDER,
        ),
    ),
    (
        lambda: decode_report_json("[[1]]", max_depth=1),
        (
            "report-too-deep",
            "the JSON nests deeper than 1 levels (a TLS report nests 5)",
            "RFC 8460 §4.4",
            SENDER,
        ),
    ),
    (
        lambda: decode_report_json(b"[[1]]", max_depth=1),
        (
            "report-too-deep",
            "the JSON nests deeper than 1 levels (a TLS report nests 5)",
            "RFC 8460 §4.4",
            SENDER,
        ),
    ),
    (
        lambda: decode_report_json("[[],{}]", max_containers=2),
        (
            "report-too-many-values",
            "the JSON holds 3 arrays and objects, more than the 2 accepted",
            "RFC 8460 §4.4",
            SENDER,
        ),
    ),
]

# (code, message) of the repairs of each report accepted
REPAIRS: list[tuple[Callable[[], ParsedReport], list[tuple[str, str]]]] = [
    (
        lambda: parse_report("\ufeff" + json.dumps(variant())),
        [("utf8-bom", "the report starts with a byte order mark")],
    ),
    (
        lambda: parse_report(b"\xef\xbb\xbf" + json.dumps(variant()).encode()),
        [("utf8-bom", "the report starts with a UTF-8 BOM; ignored")],
    ),
    (
        lambda: parse_obj(
            variant(
                **{
                    "date-range.start-datetime": "2016-04-01T00:00:00",
                    "date-range.end-datetime": "2016-04-02T00:00:00Z",
                    "contact-info": None,
                }
            )
        ),
        [
            (
                "datetime-without-zone",
                "date-range.start-datetime: '2016-04-01T00:00:00' has no time zone; read as UTC",
            ),
            (
                "end-next-day-midnight",
                "date-range.end-datetime is 2016-04-02T00:00:00Z, an exclusive end; kept as written (the report ends with 2016-04-01)",
            ),
            ("contact-info-null", "contact-info is null"),
        ],
    ),
    (
        lambda: parse_obj(variant(**{"contact-info": ...})),
        [("contact-info-missing", "contact-info is absent")],
    ),
    (
        lambda: parse_obj(
            variant(
                **{
                    "policies.0.failure-details.0.result-type": " Certificate-Expired",
                    "policies.0.policy.policy-type": "STS ",
                }
            )
        ),
        [
            (
                "policy-type-case",
                "policies[0].policy.policy-type 'STS ' is not in lower case; corrected",
            ),
            (
                "result-type-case",
                "policies[0].failure-details[0].result-type ' Certificate-Expired' is not in lower case; corrected",
            ),
        ],
    ),
    (
        lambda: parse_obj(
            variant(
                **{
                    "policies.0.failure-details.0.result-type": "quantum-failure",
                    "policies.0.policy.policy-type": "dnssec",
                }
            )
        ),
        [
            (
                "unknown-policy-type",
                "policies[0].policy.policy-type 'dnssec' is not tlsa, sts or no-policy-found; kept as written",
            ),
            (
                "unknown-result-type",
                "policies[0].failure-details[0].result-type 'quantum-failure' is not an RFC 8460 §4.3.2 type; kept as written",
            ),
        ],
    ),
    (
        lambda: parse_obj(variant(**{"policies.0.policy.policy-domain": ""})),
        [("policy-domain-missing", "policies[0].policy.policy-domain is absent")],
    ),
    (
        lambda: parse_obj(
            variant(
                **{
                    "policies.0.policy.policy-domain": ...,
                    "policies.0.policy.policy-type": "no-policy-found",
                    "policies.0.policy.policy-string": ...,
                    "policies.0.policy.mx-host": ...,
                }
            )
        ),
        [("policy-domain-missing", "policies[0].policy.policy-domain is absent")],
    ),
    (
        lambda: parse_obj(
            variant(**{"policies.0.policy.policy-string": ..., "policies.0.policy.mx-host": ...})
        ),
        [
            ("policy-string-missing", "policies[0].policy.policy-string is absent; read as []"),
            ("mx-host-missing", "policies[0].policy.mx-host is absent; read as []"),
        ],
    ),
    (
        lambda: parse_obj(
            variant(
                **{
                    "policies.0.policy.policy-string": "version: STSv1",
                    "policies.0.policy.mx-host": "mx: mx: *.example.com",
                }
            )
        ),
        [
            ("policy-string-string", "policies[0].policy.policy-string is a string; read as [it]"),
            ("mx-host-string", "policies[0].policy.mx-host is a string; read as [it]"),
            ("mx-host-prefixed", "policies[0].policy.mx-host entries start with 'mx:'; removed"),
        ],
    ),
    (
        lambda: parse_obj(
            variant(**{"policies.0.policy.policy-string": ["version: STSv1\r", "mode: testing\r"]})
        ),
        [
            (
                "policy-string-cr",
                "policies[0].policy.policy-string lines end with a carriage return; removed",
            )
        ],
    ),
    (
        lambda: parse_obj(
            variant(
                **{
                    "policies.0.policy.policy-type": "tlsa",
                    "policies.0.policy.policy-string": ['["3 1 1 ab", "3 1 1 cd"]'],
                }
            )
        ),
        [
            (
                "tlsa-policy-string-json",
                "policies[0].policy.policy-string holds one JSON-encoded array of 2 records; read as that array",
            )
        ],
    ),
    (
        lambda: parse_obj(
            variant(
                **{
                    "policies.0.policy.policy-type": "tlsa",
                    "policies.0.policy.policy-string": ['["[\\"3 1 1 ab\\"]"]'],
                }
            )
        ),
        [
            (
                "tlsa-policy-string-json",
                "policies[0].policy.policy-string holds one JSON-encoded array of 1 records; read as that array",
            )
        ],
    ),
    (
        lambda: parse_obj(
            variant(
                **{
                    "policies.0.failure-details.1.receiving-ip": None,
                    "policies.0.failure-details.0.sending-mta-ip": ...,
                }
            )
        ),
        [
            (
                "detail-missing-ip-mx",
                "policies[0].failure-details[0] has no sending-mta-ip or receiving-mx-hostname",
            ),
            ("field-null", "policies[0].failure-details[1].receiving-ip is null; read as absent"),
        ],
    ),
    (
        lambda: parse_obj(
            variant(
                **{
                    "policies.0.summary.total-successful-session-count": ...,
                    "policies.0.summary.total-failure-session-count": ...,
                }
            )
        ),
        [
            (
                "summary-count-missing",
                "policies[0].summary.total-successful-session-count is absent; read as 0",
            ),
            (
                "summary-count-missing",
                "policies[0].summary.total-failure-session-count is absent; read as 0",
            ),
            (
                "failure-count-exceeds-total",
                "policies[0]: failure details add up to 303 sessions, the summary says 0; both kept as written, totals use the summary",
            ),
        ],
    ),
]


@pytest.mark.parametrize(("make", "expected"), ERRORS)
def test_refusals_say_exactly_what_is_wrong(
    make: Callable[[], object], expected: tuple[str, str, str, str | None]
) -> None:
    with pytest.raises(ReportError) as info:
        make()
    error = info.value
    assert (error.code, error.message, error.rfc, error.fix) == expected


@pytest.mark.parametrize(("make", "expected"), REPAIRS)
def test_repairs_say_exactly_what_was_tolerated(
    make: Callable[[], ParsedReport], expected: list[tuple[str, str]]
) -> None:
    assert [(r.code, r.message) for r in make().repairs] == expected


@pytest.mark.parametrize(
    ("make", "limit"),
    [
        (lambda: decode_report_json("[[1]]", max_depth=1), 1),
        (lambda: decode_report_json("[" * 600), 512),
        (lambda: decode_report_json("[[],{}]", max_containers=2), 2),
    ],
)
def test_limits_name_their_cap(make: Callable[[], object], limit: int) -> None:
    with pytest.raises(LimitExceeded) as info:
        make()
    assert info.value.limit == limit


def test_mx_host_entries_lose_every_mx_prefix() -> None:
    # RFC 8460 §4.4: mx-host holds the policy's patterns, not its "mx:" lines.
    parsed = parse_obj(
        variant(**{"policies.0.policy.mx-host": ["mx:mx1.example.com", "mx: mx:*.example.com"]})
    )
    assert parsed.report.policies[0].mx_hosts == ("mx1.example.com", "*.example.com")
    assert parsed.repair_codes == ("mx-host-prefixed",)


def test_a_naive_date_time_is_refused_when_writing() -> None:
    # RFC 8460 §4.3: date-times are RFC 3339 with a zone; we write UTC with "Z".
    with pytest.raises(ReportError) as info:
        format_datetime(datetime(2024, 1, 1))
    error = info.value
    assert (error.code, error.message, error.rfc, error.fix) == (
        "report-datetime-invalid",
        "datetime.datetime(2024, 1, 1, 0, 0) has no time zone; reports need aware date-times",
        "RFC 8460 §4.3",
        None,
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2016-04-01T00:00:00.1234567-01:30", datetime(2016, 4, 1, 1, 30, 0, 123456, tzinfo=UTC)),
        ("2016-04-01T23:30:00+01:15", datetime(2016, 4, 1, 22, 15, tzinfo=UTC)),
        (" 2016-04-01 00:00:09z ", datetime(2016, 4, 1, 0, 0, 9, tzinfo=UTC)),
        ("2016-04-01T00:00:00.05Z", datetime(2016, 4, 1, 0, 0, 0, 50000, tzinfo=UTC)),
    ],
)
def test_date_times_are_read_in_utc(text: str, expected: datetime) -> None:
    # RFC 3339 §5.6 (RFC 8460 §4.3): fractions, offsets, lower-case "t"/"z", a space for "T".
    parsed = parse_obj(variant(**{"date-range.start-datetime": text}))
    assert parsed.report.start_datetime == expected
    assert parsed.repairs == ()


FULL = PolicyResult(
    policy_type="sts",
    policy_strings=("version: STSv1", "mode: testing"),
    policy_domain="ñ.example",
    mx_hosts=("*.ñ.example",),
    total_successful=2,
    total_failure=1,
    failure_details=(
        FailureDetail(
            result_type="certificate-expired",
            sending_mta_ip="192.0.2.1",
            receiving_mx_hostname="mx.example",
            receiving_mx_helo="helo.example",
            receiving_ip="192.0.2.2",
            failed_session_count=1,
            additional_information="https://r.example/x",
            failure_reason_code="X509",
        ),
    ),
)
WRITTEN = (
    '"date-range":{"start-datetime":"2024-01-01T00:00:00.000001Z","end-datetime":'
    '"2024-01-01T23:59:59Z"},"contact-info":"a@b.example","report-id":"r1","policies":[{'
    '"policy":{"policy-type":"sts","policy-string":["version: STSv1","mode: testing"],'
    '"policy-domain":"ñ.example","mx-host":["*.ñ.example"]},"summary":{'
    '"total-successful-session-count":2,"total-failure-session-count":1},"failure-details":[{'
    '"result-type":"certificate-expired","sending-mta-ip":"192.0.2.1","receiving-mx-hostname":'
    '"mx.example","receiving-mx-helo":"helo.example","receiving-ip":"192.0.2.2",'
    '"failed-session-count":1,"additional-information":"https://r.example/x",'
    '"failure-reason-code":"X509"}]}]}'
)


def written(organization: str) -> Report:
    return Report(
        organization_name=organization,
        start_datetime=datetime(2024, 1, 1, 1, 0, 0, 1, tzinfo=timezone(timedelta(hours=1))),
        end_datetime=datetime(2024, 1, 1, 23, 59, 59, tzinfo=UTC),
        contact_info="a@b.example",
        report_id="r1",
        policies=(FULL,),
    )


def test_the_written_form_is_compact_utf8_in_the_rfc_order() -> None:
    # RFC 8460 §4.4: the JSON of the report, in UTF-8; date-times in UTC with "Z".
    assert (
        serialize_report(written("Ñandú")) == ('{"organization-name":"Ñandú",' + WRITTEN).encode()
    )


def test_a_lone_surrogate_is_written_as_json_escapes() -> None:
    # Not encodable as UTF-8: the whole text falls back to \u escapes, still valid JSON.
    data = serialize_report(written("Ñandú \ud800"))
    assert (
        data
        == (
            '{"organization-name":"\\u00d1and\\u00fa \\ud800",' + WRITTEN.replace("ñ", "\\u00f1")
        ).encode()
    )
