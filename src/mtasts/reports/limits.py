"""Explicit caps on what a TLS report may cost before it is parsed (RFC 8460 §5, §7).

Reports come from anyone: a 10 KiB gzip can inflate to gigabytes, a JSON text can nest
deeper than any parser's recursion, and a well-formed report can hold millions of
entries. Every cap here is checked with bounded memory, before the next step runs.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

from mtasts.protocol.errors import LimitExceeded, ReportError, Text
from mtasts.protocol.report import (
    MAX_JSON_DEPTH,
    ParsedReport,
    decode_report_json,
    json_shape,
    report_from_json,
)

__all__ = [
    "LimitExceeded",
    "Limits",
    "check_json_depth",
    "decompress",
    "inflate",
    "load_report",
]

MiB = 1 << 20
RFC_GZIP = "RFC 8460 §5.3"  # application/tlsrpt+gzip; the HTTPS route (§5.4) alike
RFC_SCHEMA = "RFC 8460 §4.4"
_GZIP_MAGIC = b"\x1f\x8b"  # RFC 1952 §2.3.1: ID1 ID2
_IN_CHUNK = 64 * 1024  # compressed bytes fed to zlib at a time
_OUT_CHUNK = 1 * MiB  # most bytes zlib may produce per call


@dataclass(frozen=True)
class Limits:
    """Caps for one report (and for the e-mail carrying reports).

    The size caps fit real reports with a wide margin and bound what one report may cost:
    the largest report of the corpus (tests/data/tlsrpt, ../shared/corpus/tlsrpt) is 2.1 KiB
    of JSON with 12 arrays and objects; Google and Microsoft send one report per domain
    and day whose failure details are aggregated per (result type, sending IP, MX), so even
    a large domain's report stays well under 1 MiB (a failure detail is about 250 bytes:
    4 MiB holds some 16,000). Parsing a report costs about 4-5x its JSON size in memory
    (measured with tracemalloc), and at most ``max_json_containers`` objects.
    """

    max_compressed_bytes: int = 4 * MiB  # the payload as received (gzip or plain JSON)
    max_decompressed_bytes: int = 4 * MiB  # the JSON text after inflating
    max_depth: int = 32  # JSON nesting; a report nests 5
    max_json_containers: int = 100_000  # arrays + objects: bounds json.loads' memory
    max_policies: int = 1000  # entries of "policies"
    max_failure_details: int = 20_000  # entries of "failure-details", per policy
    max_message_bytes: int = 8 * MiB  # a whole e-mail (base64 adds a third)
    max_reports_per_message: int = 20  # report parts in one e-mail
    max_stored_bytes: int = 2 * MiB  # the payload as stored (gzip'd)

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Limits.{name} must be a positive integer, not {value!r}")
        if self.max_depth > MAX_JSON_DEPTH:
            raise ValueError(f"Limits.max_depth must be at most {MAX_JSON_DEPTH}")


def _too_large(code: str, what: str, limit: int) -> LimitExceeded:
    return LimitExceeded(
        code,
        Text("{what} exceeds the limit of {limit} bytes", what=what, limit=limit),
        RFC_GZIP,
        Text("raise Limits for this route if such reports are expected"),
        limit=limit,
    )


def _bad_gzip(reason: str) -> ReportError:
    return ReportError(
        "report-gzip-invalid",
        Text("the report is not valid gzip: {reason}", reason=reason),
        RFC_GZIP,
        Text("nothing to change on your side: the sending organisation produced this report"),
    )


def decompress(data: bytes, limits: Limits) -> bytes:
    """The report text of ``data``: inflated when it starts with the gzip magic bytes,
    as is otherwise (senders label content types loosely, so the bytes decide).

    Inflating streams: zlib produces at most ~1 MiB per call and the output stops one byte
    past ``max_decompressed_bytes``, so a gzip bomb costs about that much memory and no
    more. Concatenated gzip members (RFC 1952 §2.2) are joined; trailing NUL padding is
    ignored. Raise LimitExceeded (``report-too-large``, ``report-decompressed-too-large``)
    or ReportError ``report-gzip-invalid``.
    """
    if len(data) > limits.max_compressed_bytes:
        raise _too_large(
            "report-too-large",
            Text("the report ({size} bytes)", size=len(data)),
            limits.max_compressed_bytes,
        )
    if not data.startswith(_GZIP_MAGIC):
        if len(data) > limits.max_decompressed_bytes:
            raise _too_large(
                "report-decompressed-too-large",
                Text("the report ({size} bytes)", size=len(data)),
                limits.max_decompressed_bytes,
            )
        return data
    return inflate(data, limits.max_decompressed_bytes)


def inflate(data: bytes, cap: int) -> bytes:
    """The gzip ``data`` inflated, refused (LimitExceeded) as soon as the output passes
    ``cap`` bytes, whatever the number of members: the running total spans them all.

    Memory stays about ``cap`` plus one chunk: zlib produces at most ~1 MiB per call, and
    the input is fed 64 KiB at a time from a view, never copied whole (a file of many tiny
    members costs linear time, not quadratic)."""
    out = bytearray()
    view = memoryview(data)
    pos = 0
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)  # 16+: gzip header and trailer
    pending: bytes | memoryview = b""
    try:
        while True:
            if not pending:
                if pos >= len(view):
                    break
                pending, pos = view[pos : pos + _IN_CHUNK], pos + _IN_CHUNK
            chunk = inflater.decompress(pending, min(_OUT_CHUNK, cap - len(out) + 1))
            pending = inflater.unconsumed_tail
            if len(out) + len(chunk) > cap:
                raise _too_large(
                    "report-decompressed-too-large", Text("the decompressed report"), cap
                )
            out += chunk
            if inflater.eof:
                # RFC 1952 §2.2: a gzip file may hold several members, one after the other
                tail = inflater.unused_data + bytes(pending)
                while len(tail) < len(_GZIP_MAGIC) and pos < len(view):
                    tail += bytes(view[pos : pos + _IN_CHUNK])
                    pos += _IN_CHUNK
                if not tail.strip(b"\0"):
                    rest = view[pos:]
                    if rest.nbytes and bytes(rest).strip(b"\0"):
                        raise _bad_gzip(
                            Text("{size} bytes of garbage after the gzip data", size=rest.nbytes)
                        )
                    break
                if not tail.startswith(_GZIP_MAGIC):
                    garbage = len(tail) + len(view) - min(pos, len(view))
                    raise _bad_gzip(
                        Text("{size} bytes of garbage after the gzip data", size=garbage)
                    )
                pending = tail
                inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    except zlib.error as exc:
        raise _bad_gzip(str(exc)) from None
    if not inflater.eof:
        raise _bad_gzip(Text("the data is truncated"))
    return bytes(out)


def check_json_depth(data: bytes | str, limits: Limits) -> None:
    """Refuse a JSON text nesting deeper than ``limits.max_depth`` or holding more than
    ``limits.max_json_containers`` arrays and objects; scans the text, no recursion."""
    shape = json_shape(data, limits.max_depth)
    if shape.depth > limits.max_depth:
        raise LimitExceeded(
            "report-too-deep",
            Text(
                "the JSON nests deeper than {limit} levels (a TLS report nests 5)",
                limit=limits.max_depth,
            ),
            RFC_SCHEMA,
            limit=limits.max_depth,
        )
    if shape.containers > limits.max_json_containers:
        raise LimitExceeded(
            "report-too-many-values",
            Text(
                "the JSON holds {containers} arrays and objects, more than the {limit} accepted",
                containers=shape.containers,
                limit=limits.max_json_containers,
            ),
            RFC_SCHEMA,
            limit=limits.max_json_containers,
        )


def _check_counts(value: Any, limits: Limits) -> None:
    policies = value.get("policies") if isinstance(value, dict) else None
    if not isinstance(policies, list):
        return  # parsing reports the missing or mistyped field
    if len(policies) > limits.max_policies:
        raise LimitExceeded(
            "report-too-many-policies",
            Text(
                "the report lists {count} policies, more than the {limit} accepted",
                count=len(policies),
                limit=limits.max_policies,
            ),
            RFC_SCHEMA,
            limit=limits.max_policies,
        )
    for i, policy in enumerate(policies):
        details = policy.get("failure-details") if isinstance(policy, dict) else None
        if isinstance(details, list) and len(details) > limits.max_failure_details:
            raise LimitExceeded(
                "report-too-many-failure-details",
                Text(
                    "policies[{index}] lists {count} failure details, more than the "
                    "{limit} accepted",
                    index=i,
                    count=len(details),
                    limit=limits.max_failure_details,
                ),
                RFC_SCHEMA,
                limit=limits.max_failure_details,
            )


def load_report(data: bytes, limits: Limits | None = None) -> ParsedReport:
    """A report as received (gzip or plain JSON bytes), checked against ``limits`` at
    every step: size, decompressed size, nesting and container count (before json.loads),
    number of policies and failure details (before the model is built), then parsed
    leniently (`mtasts.protocol.report.parse_report`). Raises only ReportError
    (LimitExceeded for a cap)."""
    limits = limits or Limits()
    text = decompress(data, limits)
    value, repairs = decode_report_json(
        text, max_depth=limits.max_depth, max_containers=limits.max_json_containers
    )
    _check_counts(value, limits)
    return report_from_json(value, repairs)
