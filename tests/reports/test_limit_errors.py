"""Every refusal of mtasts.reports.limits as a whole error value: stable code, the RFC
section, the cap in ``limit``, a message naming the numbers, and the fix. The callers (the
HTTPS answer, the SMTP reply, the import summary) show these fields as they are, so a
refusal that lost its cap or its RFC reference would go unnoticed by the code tests."""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path

import pytest

from mtasts.protocol.errors import LimitExceeded, ReportError
from mtasts.reports.limits import Limits, check_json_depth, decompress, inflate, load_report

CORPUS = Path(__file__).resolve().parent.parent / "data" / "tlsrpt"
RFC_EXAMPLE = (CORPUS / "cry-inc-dmarc-report-viewer/rfc-example.json").read_bytes()
SENDER_FIX = "nothing to change on your side: the sending organisation produced this report"
RAISE_FIX = "raise Limits for this route if such reports are expected"


def refused(exc: pytest.ExceptionInfo[ReportError]) -> tuple[str, str, str, str | None, int]:
    e = exc.value
    assert str(e) == e.message
    return e.code, e.message, e.rfc, e.fix, getattr(e, "limit", -1)


def test_too_large_as_received() -> None:
    with pytest.raises(LimitExceeded) as info:
        decompress(RFC_EXAMPLE, Limits(max_compressed_bytes=100))
    assert refused(info) == (
        "report-too-large",
        f"the report ({len(RFC_EXAMPLE)} bytes) exceeds the limit of 100 bytes",
        "RFC 8460 §5.3",
        RAISE_FIX,
        100,
    )
    assert decompress(RFC_EXAMPLE, Limits(max_compressed_bytes=len(RFC_EXAMPLE))) == RFC_EXAMPLE


def test_too_large_once_inflated_gzip_and_plain() -> None:
    cap = len(RFC_EXAMPLE) - 1
    with pytest.raises(LimitExceeded) as info:
        decompress(gzip.compress(RFC_EXAMPLE), Limits(max_decompressed_bytes=cap))
    assert refused(info) == (
        "report-decompressed-too-large",
        f"the decompressed report exceeds the limit of {cap} bytes",
        "RFC 8460 §5.3",
        RAISE_FIX,
        cap,
    )
    with pytest.raises(LimitExceeded) as info:
        decompress(RFC_EXAMPLE, Limits(max_decompressed_bytes=cap))
    assert refused(info) == (
        "report-decompressed-too-large",
        f"the report ({len(RFC_EXAMPLE)} bytes) exceeds the limit of {cap} bytes",
        "RFC 8460 §5.3",
        RAISE_FIX,
        cap,
    )


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (gzip.compress(b"{}")[:-3], "the data is truncated"),
        (gzip.compress(b"{}") + b"junk", "4 bytes of garbage after the gzip data"),
    ],
)
def test_broken_gzip_is_the_senders_fault(data: bytes, reason: str) -> None:
    with pytest.raises(ReportError) as info:
        inflate(data, 1000)
    assert refused(info) == (
        "report-gzip-invalid",
        f"the report is not valid gzip: {reason}",
        "RFC 8460 §5.3",
        SENDER_FIX,
        -1,  # not a cap: a plain ReportError
    )


def test_too_deep() -> None:
    with pytest.raises(LimitExceeded) as info:
        check_json_depth("[[[[]]]]", Limits(max_depth=3))
    assert refused(info) == (
        "report-too-deep",
        "the JSON nests deeper than 3 levels (a TLS report nests 5)",
        "RFC 8460 §4.4",
        None,
        3,
    )


def test_too_many_containers_boundary() -> None:
    ten = "[" + "[]," * 8 + "[]]"  # 10 arrays
    check_json_depth(ten, Limits(max_json_containers=10))  # exactly the cap: accepted
    with pytest.raises(LimitExceeded) as info:
        check_json_depth(ten, Limits(max_json_containers=9))
    assert refused(info) == (
        "report-too-many-values",
        "the JSON holds 10 arrays and objects, more than the 9 accepted",
        "RFC 8460 §4.4",
        None,
        9,
    )


def report_with(policies: int, details: int) -> bytes:
    obj = json.loads(RFC_EXAMPLE)
    policy = obj["policies"][0]
    policy["failure-details"] = policy["failure-details"][:1] * details
    obj["policies"] = [policy] * policies
    return json.dumps(obj).encode()


def test_too_many_policies() -> None:
    limits = Limits(max_policies=3)
    assert len(load_report(report_with(3, 1), limits).report.policies) == 3
    with pytest.raises(LimitExceeded) as info:
        load_report(report_with(4, 1), limits)
    assert refused(info) == (
        "report-too-many-policies",
        "the report lists 4 policies, more than the 3 accepted",
        "RFC 8460 §4.4",
        None,
        3,
    )


def test_too_many_failure_details_names_the_policy() -> None:
    obj = json.loads(report_with(3, 1))
    obj["policies"][2] = {**obj["policies"][2], "failure-details": [{}] * 6}
    with pytest.raises(LimitExceeded) as info:
        load_report(json.dumps(obj).encode(), Limits(max_failure_details=5))
    assert refused(info) == (
        "report-too-many-failure-details",
        "policies[2] lists 6 failure details, more than the 5 accepted",
        "RFC 8460 §4.4",
        None,
        5,
    )


def test_zlib_data_is_not_gzip() -> None:
    # wbits 16+15 takes gzip only; zlib's own format (or raw deflate) is refused
    for data in (zlib.compress(RFC_EXAMPLE), zlib.compress(RFC_EXAMPLE, wbits=-15)):
        with pytest.raises(ReportError) as info:
            inflate(data, 10 * len(RFC_EXAMPLE))
        assert info.value.code == "report-gzip-invalid"


def test_policies_that_are_not_objects_are_a_report_error() -> None:
    # the count check looks into dict policies only: the parser names the bad entries
    obj = json.loads(RFC_EXAMPLE)
    for bad in (1, "x", None, ["failure-details"]):
        obj["policies"] = [bad]
        with pytest.raises(ReportError) as info:
            load_report(json.dumps(obj).encode())
        assert not isinstance(info.value, LimitExceeded)


def test_member_boundary_one_byte_before_an_input_chunk_ends() -> None:
    # inflate feeds 64 KiB at a time: a first member of 65,535 bytes leaves one byte of
    # the next member's magic in the first chunk; both must be joined to be recognised
    first = next(
        gzip.compress(b"a" * n, compresslevel=0, mtime=0)
        for n in range(65_400, 65_536)
        if len(gzip.compress(b"a" * n, compresslevel=0, mtime=0)) == 64 * 1024 - 1
    )
    second = gzip.compress(b"b" * 10, mtime=0)
    assert inflate(first + second, 1 << 20) == gzip.decompress(first) + b"b" * 10


def test_plain_json_of_exactly_the_cap_is_accepted() -> None:
    exact = Limits(max_decompressed_bytes=len(RFC_EXAMPLE))
    assert decompress(RFC_EXAMPLE, exact) == RFC_EXAMPLE


def test_nul_padding_longer_than_an_input_chunk_is_ignored() -> None:
    data = gzip.compress(RFC_EXAMPLE) + b"\0" * 200_000
    assert inflate(data, len(RFC_EXAMPLE)) == RFC_EXAMPLE


@pytest.mark.parametrize(
    "after",
    [
        b"XX",  # right after the member
        b"\0" * 70_000 + b"XX",  # after padding that runs past the first 64 KiB chunk
        b"\0" * 70_000 + b"\n",
    ],
)
def test_garbage_after_the_gzip_data_is_refused_and_counted(after: bytes) -> None:
    member = gzip.compress(RFC_EXAMPLE)
    with pytest.raises(ReportError) as info:
        inflate(member + after, len(RFC_EXAMPLE))
    # counted from the end of the gzip data, or, after padding, from the end of the
    # 64 KiB chunk the padding began in (what has not been read yet)
    unread = len(after) if after[:1] != b"\0" else len(member) + len(after) - 64 * 1024
    assert info.value.code == "report-gzip-invalid"
    assert info.value.message == (
        f"the report is not valid gzip: {unread} bytes of garbage after the gzip data"
    )


def test_repairs_are_kept() -> None:
    parsed = load_report(b"\xef\xbb\xbf" + RFC_EXAMPLE)
    assert [r.code for r in parsed.repairs] == ["utf8-bom"]


def test_the_smallest_and_largest_limits_are_accepted() -> None:
    from dataclasses import fields

    from mtasts.protocol.report import MAX_JSON_DEPTH

    ones = Limits(**{f.name: 1 for f in fields(Limits)})
    assert ones.max_depth == 1 and ones.max_stored_bytes == 1
    assert Limits(max_depth=MAX_JSON_DEPTH).max_depth == MAX_JSON_DEPTH
    with pytest.raises(ValueError, match="max_depth must be at most"):
        Limits(max_depth=MAX_JSON_DEPTH + 1)
