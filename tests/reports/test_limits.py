"""Caps on report size, decompression, nesting and counts (mtasts.reports.limits)."""

from __future__ import annotations

import contextlib
import gzip
import json
import tracemalloc
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mtasts.protocol.errors import LimitExceeded, ReportError
from mtasts.protocol.report import parse_report
from mtasts.reports.limits import Limits, check_json_depth, decompress, load_report

CORPUS = Path(__file__).resolve().parent.parent / "data" / "tlsrpt"
JSON_FILES = sorted(p.relative_to(CORPUS).as_posix() for p in CORPUS.glob("*/*.json"))
MiB = 1 << 20
RFC_EXAMPLE = (CORPUS / "cry-inc-dmarc-report-viewer/rfc-example.json").read_bytes()


def test_defaults() -> None:
    limits = Limits()
    # Issue 11: 4 MiB of JSON is ~2,000x the largest corpus report (2.1 KiB) and holds
    # ~16,000 failure details; the old 50 MiB let 48 uploads take 2.5 GiB.
    assert limits.max_compressed_bytes == 4 * MiB
    assert limits.max_decompressed_bytes == 4 * MiB
    assert limits.max_depth == 32
    assert limits.max_policies == 1000
    assert limits.max_failure_details == 20_000
    assert limits.max_message_bytes == 8 * MiB


@pytest.mark.parametrize(
    "changes",
    [{"max_depth": 0}, {"max_depth": 10_000}, {"max_policies": -1}, {"max_message_bytes": True}],
)
def test_nonsense_limits_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"Limits\.max_"):
        Limits(**changes)


@pytest.mark.parametrize("name", JSON_FILES)
def test_corpus_loads_plain_and_gzipped(name: str) -> None:
    data = (CORPUS / name).read_bytes()
    expected = parse_report(data)
    assert load_report(data) == expected
    assert load_report(gzip.compress(data)) == expected


def test_concatenated_gzip_members_and_padding() -> None:
    half = len(RFC_EXAMPLE) // 2
    data = gzip.compress(RFC_EXAMPLE[:half]) + gzip.compress(RFC_EXAMPLE[half:]) + b"\0" * 8
    assert decompress(data, Limits()) == RFC_EXAMPLE
    assert load_report(data).report == parse_report(RFC_EXAMPLE).report


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (gzip.compress(RFC_EXAMPLE)[:-6], "truncated"),
        (gzip.compress(RFC_EXAMPLE) + b"trailing", "garbage"),
        (b"\x1f\x8b", "truncated"),
        (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03garbage!", "Error"),
    ],
)
def test_broken_gzip(data: bytes, reason: str) -> None:
    with pytest.raises(ReportError) as info:
        load_report(data)
    assert info.value.code == "report-gzip-invalid"
    assert reason in info.value.message
    assert not isinstance(info.value, LimitExceeded)


def test_compressed_size_cap() -> None:
    limits = Limits(max_compressed_bytes=1000)
    data = gzip.compress(RFC_EXAMPLE)
    assert len(data) < 1000 < len(RFC_EXAMPLE)
    load_report(data, limits)
    with pytest.raises(LimitExceeded) as info:
        load_report(RFC_EXAMPLE, limits)
    assert info.value.code == "report-too-large"
    assert info.value.limit == 1000


def test_decompressed_size_cap_is_exact() -> None:
    data = gzip.compress(RFC_EXAMPLE)
    assert decompress(data, Limits(max_decompressed_bytes=len(RFC_EXAMPLE))) == RFC_EXAMPLE
    with pytest.raises(LimitExceeded) as info:
        decompress(data, Limits(max_decompressed_bytes=len(RFC_EXAMPLE) - 1))
    assert info.value.code == "report-decompressed-too-large"
    with pytest.raises(LimitExceeded) as info:
        decompress(RFC_EXAMPLE, Limits(max_decompressed_bytes=len(RFC_EXAMPLE) - 1))
    assert info.value.code == "report-decompressed-too-large"


def gzip_of_zeros(size: int) -> bytes:
    """gzip of ``size`` zero bytes, produced 1 MiB at a time."""
    packer = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(MiB)
    parts = [packer.compress(block) for _ in range(size // MiB)]
    parts.append(packer.flush())
    return b"".join(parts)


def test_gzip_bomb_is_refused_with_bounded_memory() -> None:
    bomb = gzip_of_zeros(1024 * MiB)  # 1 GiB of zeros in about 1 MiB
    assert len(bomb) < 2 * MiB
    tracemalloc.start()
    try:
        with pytest.raises(LimitExceeded) as info:
            load_report(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.code == "report-decompressed-too-large"
    assert info.value.limit == 4 * MiB
    assert peak < 3 * 4 * MiB, f"peak {peak / MiB:.1f} MiB"


def test_json_whitespace_bomb_is_refused_before_json_parsing() -> None:
    # 50 KiB of gzip inflating to 49 MiB of whitespace inside a valid JSON object: the
    # issue 11 attack. Refused from the running inflate total, never decoded or parsed.
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [packer.compress(b"{")]
    parts += [packer.compress(b" " * MiB) for _ in range(49)]
    bomb = b"".join([*parts, packer.compress(b"}"), packer.flush()])
    assert len(bomb) < 100 * 1024
    tracemalloc.start()
    try:
        with pytest.raises(LimitExceeded) as info:
            load_report(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.code == "report-decompressed-too-large"
    assert peak < 3 * 4 * MiB, f"peak {peak / MiB:.1f} MiB, 49 MiB inflated"


def test_multi_member_gzip_bomb_against_a_small_cap() -> None:
    # RFC 1952 §2.2 members, each below the cap: the cap holds for their sum.
    member = gzip.compress(b" " * (256 * 1024), compresslevel=9)
    bomb = gzip.compress(b"{", mtime=0) + member * 160 + gzip.compress(b"}", mtime=0)
    for limits, bound in ((Limits(), 12 * MiB), (Limits(max_decompressed_bytes=1 * MiB), 4 * MiB)):
        tracemalloc.start()
        try:
            with pytest.raises(LimitExceeded) as info:
                load_report(bomb, limits)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert info.value.code == "report-decompressed-too-large"
        assert peak < bound, f"peak {peak / MiB:.1f} MiB, 40 MiB inflatable"
    # below the cap, the members join into one report
    few = gzip.compress(RFC_EXAMPLE[:10]) * 1 + gzip.compress(RFC_EXAMPLE[10:])
    assert load_report(few, limits).report == parse_report(RFC_EXAMPLE).report


def test_small_limit_keeps_memory_smaller_still() -> None:
    bomb = gzip_of_zeros(64 * MiB)
    tracemalloc.start()
    try:
        with pytest.raises(LimitExceeded):
            decompress(bomb, Limits(max_decompressed_bytes=1 * MiB))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * MiB, f"peak {peak / MiB:.1f} MiB"


@pytest.mark.parametrize("wrap", [lambda b: b, gzip.compress])
def test_deep_nesting_is_refused_before_parsing(wrap: Any) -> None:
    deep = b'{"organization-name": ' + b"[" * 40 + b"]" * 40 + b"}"
    with pytest.raises(LimitExceeded) as info:
        load_report(wrap(deep))
    assert info.value.code == "report-too-deep"
    assert info.value.limit == 32
    # a million levels: refused quickly, and never a RecursionError
    with pytest.raises(LimitExceeded):
        load_report(wrap(b"[" * 1_000_000 + b"]" * 1_000_000))
    shallow = b'{"organization-name": ' + b"[" * 30 + b"]" * 30 + b"}"
    with pytest.raises(ReportError) as refused:
        load_report(wrap(shallow))
    assert refused.value.code == "report-field-type"  # parsed, then refused for its content


def test_check_json_depth() -> None:
    limits = Limits(max_depth=3)
    check_json_depth(b"[[[]]]", limits)
    check_json_depth('["[[[[[["]', limits)
    with pytest.raises(LimitExceeded) as info:
        check_json_depth("[[[[]]]]", limits)
    assert info.value.code == "report-too-deep"
    with pytest.raises(LimitExceeded) as info:
        check_json_depth("[" + "[]," * 10 + "[]]", Limits(max_json_containers=10))
    assert info.value.code == "report-too-many-values"


def report_with(policies: int, details: int) -> bytes:
    obj = json.loads(RFC_EXAMPLE)
    policy = obj["policies"][0]
    policy["failure-details"] = policy["failure-details"][:1] * details
    obj["policies"] = [policy] * policies
    return json.dumps(obj).encode()


def test_many_policies_are_refused() -> None:
    assert len(load_report(report_with(1000, 1)).report.policies) == 1000
    with pytest.raises(LimitExceeded) as info:
        load_report(gzip.compress(report_with(1001, 1)))
    assert info.value.code == "report-too-many-policies"
    assert "1001 policies" in info.value.message


def test_many_failure_details_are_refused() -> None:
    limits = Limits(max_failure_details=50)
    assert len(load_report(report_with(2, 50), limits).report.policies[1].failure_details) == 50
    with pytest.raises(LimitExceeded) as info:
        load_report(report_with(2, 51), limits)
    assert info.value.code == "report-too-many-failure-details"


def test_many_containers_are_refused_before_json_loads() -> None:
    # 24 MiB of empty arrays would be ~0.5 GB of Python lists: refused from the text alone
    # (under a decompression cap raised so that the container count is what refuses it).
    data = gzip.compress(b"[" + b"[]," * 8_000_000 + b"[]]")
    tracemalloc.start()
    try:
        with pytest.raises(LimitExceeded) as info:
            load_report(data, Limits(max_decompressed_bytes=50 * MiB))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.code == "report-too-many-values"
    assert peak < 128 * MiB, f"peak {peak / MiB:.1f} MiB"


@given(st.binary(max_size=500))
def test_arbitrary_bytes_raise_only_report_error(data: bytes) -> None:
    for payload in (data, gzip.compress(data), b"\x1f\x8b" + data):
        with contextlib.suppress(ReportError):
            load_report(payload)


@given(st.binary(min_size=1, max_size=64), st.integers(0, 400))
def test_corrupted_gzip_raises_only_report_error(noise: bytes, at: int) -> None:
    data = bytearray(gzip.compress(RFC_EXAMPLE))
    at = min(at, len(data) - 1)
    data[at : at + len(noise)] = noise
    with contextlib.suppress(ReportError):
        load_report(bytes(data))
