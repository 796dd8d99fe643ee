"""The SMTP TLS report (RFC 8460 §4): a typed model, a lenient parser and a strict serializer.

Parsing is lenient exactly where real senders deviate from the RFC (see the corpus README in
tests/data/tlsrpt/): every deviation tolerated is recorded as a `Repair` with a stable code.
Anything that makes a report unusable raises `ReportError` with a stable code and the RFC
8460 section. Serialization writes the strict form (erratum 6241: `mx-host` is a list;
date-times in UTC with `Z`) and checks that it parses back to the same report.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from mtasts.protocol.errors import LimitExceeded, ReportError, Text
from mtasts.protocol.jsonerrors import json_problem

RFC = "RFC 8460 §4"
RFC_FIELDS = "RFC 8460 §4.3"
RFC_SCHEMA = "RFC 8460 §4.4"
RFC_RESULT_TYPES = "RFC 8460 §4.3.2"
# json.loads recurses once per nesting level: keep well below the interpreter's limit (1000)
# so deep input is refused with ReportError, never RecursionError. A valid report nests 5.
MAX_JSON_DEPTH = 512
MAX_COUNT = 2**63 - 1  # counts must fit a signed 64-bit column

_FIX_SENDER = Text("nothing to change on your side: the sending organisation produced this report")


class PolicyType(StrEnum):
    """RFC 8460 §4.3 `policy-type`; other values are kept as written (and flagged)."""

    TLSA = "tlsa"
    STS = "sts"
    NO_POLICY_FOUND = "no-policy-found"


class ResultType(StrEnum):
    """RFC 8460 §4.3.2 `result-type`; other values are kept as written (and flagged)."""

    # RFC 8460 §4.3.2.1: negotiation failures
    STARTTLS_NOT_SUPPORTED = "starttls-not-supported"
    CERTIFICATE_HOST_MISMATCH = "certificate-host-mismatch"
    CERTIFICATE_EXPIRED = "certificate-expired"
    CERTIFICATE_NOT_TRUSTED = "certificate-not-trusted"
    VALIDATION_FAILURE = "validation-failure"
    # RFC 8460 §4.3.2.2: policy failures, DANE
    TLSA_INVALID = "tlsa-invalid"
    DNSSEC_INVALID = "dnssec-invalid"
    DANE_REQUIRED = "dane-required"
    # RFC 8460 §4.3.2.2: policy failures, MTA-STS
    STS_POLICY_FETCH_ERROR = "sts-policy-fetch-error"
    STS_POLICY_INVALID = "sts-policy-invalid"
    STS_WEBPKI_INVALID = "sts-webpki-invalid"


POLICY_TYPES = frozenset(t.value for t in PolicyType)
RESULT_TYPES = frozenset(t.value for t in ResultType)


@dataclass(frozen=True)
class Repair:
    """A deviation from RFC 8460 that the parser tolerated; ``message`` says where and what
    was done (kept as written, or corrected)."""

    code: str
    message: str


@dataclass(frozen=True, kw_only=True)
class FailureDetail:
    """One `failure-details` entry (RFC 8460 §4.3)."""

    result_type: str  # a ResultType value, or an unknown one kept as written
    sending_mta_ip: str | None = None
    receiving_mx_hostname: str | None = None
    receiving_mx_helo: str | None = None
    receiving_ip: str | None = None
    failed_session_count: int
    additional_information: str | None = None
    failure_reason_code: str | None = None

    @property
    def known_result_type(self) -> bool:
        return self.result_type in RESULT_TYPES


@dataclass(frozen=True, kw_only=True)
class PolicyResult:
    """One `policies` entry: the policy applied and its session counts (RFC 8460 §4.3)."""

    policy_type: str  # a PolicyType value, or an unknown one kept as written
    policy_strings: tuple[str, ...] = ()
    policy_domain: str | None = None
    mx_hosts: tuple[str, ...] = ()
    total_successful: int = 0
    total_failure: int = 0
    failure_details: tuple[FailureDetail, ...] = ()

    @property
    def known_policy_type(self) -> bool:
        return self.policy_type in POLICY_TYPES


@dataclass(frozen=True, kw_only=True)
class Report:
    """An RFC 8460 §4 report. Date-times are timezone-aware, in UTC."""

    organization_name: str
    start_datetime: datetime
    end_datetime: datetime
    contact_info: str | None
    report_id: str
    policies: tuple[PolicyResult, ...]

    def sessions(self) -> tuple[int, int]:
        """(successful, failed) sessions of the report, each session counted once.

        Rule, per policy domain: the `sts` and `tlsa` entries describe the same sessions
        (a session to a domain is validated against DANE or MTA-STS, RFC 8461 §2, yet
        Microsoft lists every session under both), so of these two the entry with more
        sessions counts (on a tie, the one with more failures); `no-policy-found` and
        unknown types describe other sessions and are added. Entries of one type for one
        domain are added up. Summing everything would double-count Microsoft's reports.
        """
        per_domain: dict[str, dict[str, list[int]]] = defaultdict(
            lambda: defaultdict(lambda: [0, 0])
        )
        for p in self.policies:
            counts = per_domain[(p.policy_domain or "").lower().rstrip(".")][p.policy_type]
            counts[0] += p.total_successful
            counts[1] += p.total_failure
        ok = failed = 0
        for by_type in per_domain.values():
            validated = [by_type[t] for t in (PolicyType.STS, PolicyType.TLSA) if t in by_type]
            if validated:
                best = max(validated, key=lambda c: (c[0] + c[1], c[1]))
                ok, failed = ok + best[0], failed + best[1]
            for type_, (s, f) in by_type.items():
                if type_ not in (PolicyType.STS, PolicyType.TLSA):
                    ok, failed = ok + s, failed + f
        return ok, failed

    def serialize(self) -> bytes:
        """Strict RFC 8460 JSON (UTF-8); see `serialize_report`."""
        return serialize_report(self)


@dataclass(frozen=True)
class ParsedReport:
    """A report and the deviations tolerated while parsing it."""

    report: Report
    repairs: tuple[Repair, ...] = ()

    @property
    def repair_codes(self) -> tuple[str, ...]:
        return tuple(r.code for r in self.repairs)


# --- JSON text -----------------------------------------------------------------------

# Objects and arrays nest alike: "{" -> "[", "}" -> "]", everything else deleted.
_BRACKETS = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_WINDOW = 1 << 18  # bytes split at a time: bounds the pieces alive at once


@dataclass(frozen=True)
class JsonShape:
    depth: int  # deepest nesting of arrays/objects (a lower bound once over the limit)
    containers: int  # arrays and objects in the text


def _brackets(raw: bytes) -> bytes:
    """The brackets of a JSON text that are not inside strings, objects' as arrays'."""
    # Escaped backslashes first (a run pairs from the left), then escaped quotes: what is
    # left of a string is '"' ... '"' with no quote inside.
    text = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    out = []
    inside = False
    for start in range(0, len(text), _WINDOW):
        pieces = text[start : start + _WINDOW].split(b'"')
        out.append(b"".join(pieces[inside::2]).translate(_BRACKETS, _NOT_BRACKET))
        if len(pieces) % 2 == 0:  # an odd number of quotes: a string spans the boundary
            inside = not inside
    return b"".join(out)


def json_shape(data: bytes | str, stop_above: int = MAX_JSON_DEPTH) -> JsonShape:
    """Nesting depth and number of containers of a JSON text, found without recursion and
    with C-speed passes only (brackets inside strings do not count).

    Each pass removes the innermost bracket pairs (``bytes.replace`` does not rescan what
    it produced), so the depth is the number of passes; they stop once it exceeds
    ``stop_above``. Works on UTF-8 bytes: `"`, `\\` and brackets never occur inside a
    multi-byte sequence. Unbalanced brackets (invalid JSON, which json.loads refuses)
    count conservatively: each unmatched opener as one more level.
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    brackets = _brackets(raw)
    containers = brackets.count(b"[")
    too_deep = b"[" * (stop_above + 1)
    depth = 0
    while brackets and depth <= stop_above:
        if too_deep in brackets:
            return JsonShape(depth + stop_above + 1, containers)
        reduced = brackets.replace(b"[]", b"")
        if len(reduced) == len(brackets):  # unbalanced
            return JsonShape(depth + reduced.count(b"["), containers)
        depth, brackets = depth + 1, reduced
    return JsonShape(depth, containers)


def json_depth(data: bytes | str, stop_above: int = MAX_JSON_DEPTH) -> int:
    """The deepest nesting of arrays/objects in a JSON text (see `json_shape`)."""
    return json_shape(data, stop_above).depth


def _reject_constant(name: str) -> Any:
    # RFC 8259 §6: NaN and Infinity are not JSON numbers; Python accepts them by default.
    raise ValueError(Text("{name} is not a JSON value", name=name))


def decode_report_json(
    data: bytes | str, *, max_depth: int = MAX_JSON_DEPTH, max_containers: int | None = None
) -> tuple[Any, tuple[Repair, ...]]:
    """The JSON value of a report body (UTF-8, RFC 8460 §4.4). Its shape is checked before
    ``json.loads`` builds it, so deep or huge structures cost no recursion and no memory.

    Codes: ``report-encoding``, ``report-not-json``; LimitExceeded ``report-too-deep``
    (nesting over ``max_depth``, capped at MAX_JSON_DEPTH) and ``report-too-many-values``
    (more than ``max_containers`` arrays and objects).
    """
    repairs: list[Repair] = []
    if isinstance(data, bytes):
        if data.startswith(b"\xef\xbb\xbf"):
            # RFC 8259 §8.1: no BOM in JSON texts; decoders may ignore it.
            repairs.append(Repair("utf8-bom", "the report starts with a UTF-8 BOM; ignored"))
            data = data[3:]
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            gz = Text(" (it is gzip: decompress it first)") if data[:2] == b"\x1f\x8b" else ""
            raise ReportError(
                "report-encoding",
                Text(
                    "byte {byte:#04x} at offset {offset} is not UTF-8{gz}",
                    byte=data[exc.start],
                    offset=exc.start,
                    gz=gz,
                ),
                RFC_SCHEMA,
                _FIX_SENDER,
            ) from None
        shape = json_shape(data, min(max_depth, MAX_JSON_DEPTH))
    else:
        text = data
        if text.startswith("\ufeff"):
            repairs.append(Repair("utf8-bom", "the report starts with a byte order mark"))
            text = text[1:]
        shape = json_shape(text, min(max_depth, MAX_JSON_DEPTH))
    limit = min(max_depth, MAX_JSON_DEPTH)
    if shape.depth > limit:
        raise LimitExceeded(
            "report-too-deep",
            Text("the JSON nests deeper than {limit} levels (a TLS report nests 5)", limit=limit),
            RFC_SCHEMA,
            _FIX_SENDER,
            limit=limit,
        )
    if max_containers is not None and shape.containers > max_containers:
        raise LimitExceeded(
            "report-too-many-values",
            Text(
                "the JSON holds {containers} arrays and objects, more than the {limit} accepted",
                containers=shape.containers,
                limit=max_containers,
            ),
            RFC_SCHEMA,
            _FIX_SENDER,
            limit=max_containers,
        )
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise ReportError(
            "report-not-json",
            Text("the report is not JSON: {reason}", reason=json_problem(exc)),
            RFC_SCHEMA,
            _FIX_SENDER,
        ) from None
    return value, tuple(repairs)


# --- date-times ----------------------------------------------------------------------

# RFC 3339 §5.6 date-time; "T"/"Z" may be lower case and "T" a space (§5.6 NOTE).
_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))?"
)


def _parse_datetime(value: object, where: str, repairs: list[Repair]) -> datetime:
    if not isinstance(value, str):
        raise _type_error(where, value, Text("a date-time string"))
    m = _DATETIME.fullmatch(value.strip())
    if not m:
        raise ReportError(
            "report-datetime-invalid",
            Text(
                "{where}: {value!r} is not an RFC 3339 date-time (2016-04-01T00:00:00Z)",
                where=where,
                value=value[:60],
            ),
            "RFC 8460 §4.3",
            _FIX_SENDER,
        )
    y, mo, d, h, mi, s, frac, z, sign, oh, om = m.groups()
    try:
        when = datetime(
            int(y), int(mo), int(d), int(h), int(mi), int(s), int((frac or "0")[:6].ljust(6, "0"))
        )
        if sign:
            offset = timedelta(hours=int(oh), minutes=int(om))
            when = (when - offset) if sign == "+" else (when + offset)
        elif not z:
            # Microsoft (2023) wrote date-times without zone; RFC 8460 reports are in UTC.
            repairs.append(
                Repair(
                    "datetime-without-zone",
                    f"{where}: {value!r} has no time zone; read as UTC",
                )
            )
    except (ValueError, OverflowError) as exc:
        raise ReportError(
            "report-datetime-invalid",
            Text(
                "{where}: {value!r} is not a valid date-time ({reason})",
                where=where,
                value=value,
                reason=str(exc),
            ),
            "RFC 8460 §4.3",
            _FIX_SENDER,
        ) from None
    return when.replace(tzinfo=UTC)


def format_datetime(when: datetime) -> str:
    """RFC 3339 in UTC with `Z`; fractions of a second only when there are any."""
    if when.tzinfo is None:
        raise ReportError(
            "report-datetime-invalid",
            Text("{when!r} has no time zone; reports need aware date-times", when=when),
            "RFC 8460 §4.3",
        )
    u = when.astimezone(UTC)
    text = f"{u.year:04d}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:{u.second:02d}"
    return text + (f".{u.microsecond:06d}" if u.microsecond else "") + "Z"


# --- fields --------------------------------------------------------------------------


def _kind(value: object) -> str:
    return {
        dict: Text("an object"),
        list: Text("an array"),
        str: Text("a string"),
        bool: Text("a boolean"),
        int: Text("a number"),
        float: Text("a number"),
        type(None): Text("null"),
    }.get(type(value), type(value).__name__)


def _type_error(where: str, value: object, expected: str) -> ReportError:
    return ReportError(
        "report-field-type",
        Text(
            "{where} must be {expected}, not {kind}",
            where=where,
            expected=expected,
            kind=_kind(value),
        ),
        RFC_SCHEMA,
        _FIX_SENDER,
    )


def _missing(code: str, where: str) -> ReportError:
    return ReportError(
        code,
        Text("the report has no {where} (it is required)", where=where),
        RFC_FIELDS,
        _FIX_SENDER,
    )


def _object(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise _type_error(where, value, Text("an object"))
    return value


def _array(value: object, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise _type_error(where, value, Text("an array"))
    return value


def _required_str(obj: Mapping[str, Any], key: str, where: str, code: str) -> str:
    value = obj.get(key)
    if value is None or value == "":
        raise _missing(code, f"{where}{key!r}")
    if not isinstance(value, str):
        raise _type_error(f"{where}{key}", value, Text("a string"))
    return value


def _optional_str(
    obj: Mapping[str, Any], key: str, where: str, repairs: list[Repair]
) -> str | None:
    if key not in obj:
        return None
    value = obj[key]
    if value is None:
        repairs.append(Repair("field-null", f"{where}{key} is null; read as absent"))
        return None
    if not isinstance(value, str):
        raise _type_error(f"{where}{key}", value, Text("a string"))
    return value


def _count(value: object, where: str) -> int:
    # bool is an int in Python, not a number in JSON.
    if isinstance(value, bool) or not isinstance(value, int):
        raise _type_error(where, value, Text("a whole number"))
    if not 0 <= value <= MAX_COUNT:
        raise ReportError(
            "report-count-invalid",
            Text(
                "{where} is {value}: session counts are whole numbers from 0 to 2^63-1",
                where=where,
                value=value,
            ),
            RFC_FIELDS,
            _FIX_SENDER,
        )
    return value


def _strings(value: object, where: str) -> list[str]:
    items = _array(value, where)
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise _type_error(f"{where}[{i}]", item, Text("a string"))
    return items


def _policy_strings(
    policy: Mapping[str, Any], policy_type: str, where: str, repairs: list[Repair]
) -> tuple[str, ...]:
    value = policy.get("policy-string")
    if value is None:
        if policy_type != PolicyType.NO_POLICY_FOUND:
            # RFC 8460 §4.3: policy-string describes the policy applied; senders omit it
            # when they could not get one (e.g. sts-policy-fetch-error).
            repairs.append(
                Repair("policy-string-missing", f"{where}policy-string is absent; read as []")
            )
        return ()
    if isinstance(value, str):
        repairs.append(
            Repair("policy-string-string", f"{where}policy-string is a string; read as [it]")
        )
        value = [value]
    lines = _strings(value, f"{where}policy-string")
    if policy_type == PolicyType.TLSA and len(lines) == 1 and lines[0].lstrip().startswith("["):
        # Microsoft writes the TLSA records as one string holding a JSON array.
        inner = _json_string_array(lines[0])
        # A doubly encoded array is unpacked too, so that parsing again changes nothing.
        while inner is not None and len(inner) == 1 and inner[0].lstrip().startswith("["):
            deeper = _json_string_array(inner[0])
            if deeper is None:
                break
            inner = deeper
        if inner is not None:
            repairs.append(
                Repair(
                    "tlsa-policy-string-json",
                    f"{where}policy-string holds one JSON-encoded array of {len(inner)} "
                    "records; read as that array",
                )
            )
            lines = inner
    if any(line.endswith("\r") for line in lines):
        # A policy file with CRLF endings split on LF only (Google, 2022).
        repairs.append(
            Repair(
                "policy-string-cr",
                f"{where}policy-string lines end with a carriage return; removed",
            )
        )
        lines = [line.rstrip("\r") for line in lines]
    return tuple(lines)


def _json_string_array(text: str) -> list[str] | None:
    if json_depth(text, 1) != 1:  # only a flat array of strings is meant
        return None
    try:
        value = json.loads(text)  # NaN or Infinity in it is not a string: refused below
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def _mx_hosts(
    policy: Mapping[str, Any], policy_type: str, where: str, repairs: list[Repair]
) -> tuple[str, ...]:
    value = policy.get("mx-host")
    if value is None:
        if policy_type == PolicyType.STS:
            # RFC 8460 §4.3: mx-host lists the policy's MX patterns; Microsoft omits it.
            repairs.append(Repair("mx-host-missing", f"{where}mx-host is absent; read as []"))
        return ()
    if isinstance(value, str):
        # RFC 8460 §4.4 shows a string; erratum 6241 makes it an array. Both occur.
        repairs.append(Repair("mx-host-string", f"{where}mx-host is a string; read as [it]"))
        value = [value]
    hosts = _strings(value, f"{where}mx-host")
    if any(h.startswith("mx:") for h in hosts):
        # Some senders copy the policy line ("mx: mx.example.com") instead of the pattern.
        repairs.append(
            Repair("mx-host-prefixed", f"{where}mx-host entries start with 'mx:'; removed")
        )
        hosts = [_strip_mx_prefix(h) for h in hosts]
    return tuple(hosts)


def _strip_mx_prefix(host: str) -> str:
    while host.startswith("mx:"):
        host = host[3:].strip()
    return host


_DETAIL_STRINGS = (
    ("sending-mta-ip", "sending_mta_ip"),
    ("receiving-mx-hostname", "receiving_mx_hostname"),
    ("receiving-mx-helo", "receiving_mx_helo"),
    ("receiving-ip", "receiving_ip"),
    ("additional-information", "additional_information"),
    ("failure-reason-code", "failure_reason_code"),
)


def _failure_detail(value: object, where: str, repairs: list[Repair]) -> FailureDetail:
    obj = _object(value, where)
    prefix = f"{where}."
    result_type = _required_str(obj, "result-type", prefix, "report-field-missing")
    if result_type not in RESULT_TYPES:
        if result_type.strip().lower() in RESULT_TYPES:
            repairs.append(
                Repair(
                    "result-type-case",
                    f"{prefix}result-type {result_type!r} is not in lower case; corrected",
                )
            )
            result_type = result_type.strip().lower()
        else:
            repairs.append(
                Repair(
                    "unknown-result-type",
                    f"{prefix}result-type {result_type!r} is not an RFC 8460 §4.3.2 type; "
                    "kept as written",
                )
            )
    if "failed-session-count" not in obj:
        raise _missing("report-field-missing", f"{prefix}failed-session-count")
    count = _count(obj["failed-session-count"], f"{prefix}failed-session-count")
    strings = {attr: _optional_str(obj, key, prefix, repairs) for key, attr in _DETAIL_STRINGS}
    if strings["sending_mta_ip"] is None or strings["receiving_mx_hostname"] is None:
        # RFC 8460 §4.3 lists both for every failure; policy fetch errors often lack them.
        repairs.append(
            Repair(
                "detail-missing-ip-mx",
                f"{where} has no sending-mta-ip or receiving-mx-hostname",
            )
        )
    return FailureDetail(result_type=result_type, failed_session_count=count, **strings)


def _policy_result(value: object, where: str, repairs: list[Repair]) -> PolicyResult:
    obj = _object(value, where)
    if "policy" not in obj:
        raise _missing("report-field-missing", f"{where}.policy")
    policy = _object(obj["policy"], f"{where}.policy")
    prefix = f"{where}.policy."
    policy_type = _required_str(policy, "policy-type", prefix, "report-field-missing")
    if policy_type not in POLICY_TYPES:
        if policy_type.strip().lower() in POLICY_TYPES:
            repairs.append(
                Repair(
                    "policy-type-case",
                    f"{prefix}policy-type {policy_type!r} is not in lower case; corrected",
                )
            )
            policy_type = policy_type.strip().lower()
        else:
            repairs.append(
                Repair(
                    "unknown-policy-type",
                    f"{prefix}policy-type {policy_type!r} is not tlsa, sts or "
                    "no-policy-found; kept as written",
                )
            )
    domain = policy.get("policy-domain")
    if domain is None or domain == "":
        # RFC 8460 §4.3 requires it; some no-policy-found entries lack it.
        repairs.append(Repair("policy-domain-missing", f"{prefix}policy-domain is absent"))
        domain = None
    elif not isinstance(domain, str):
        raise _type_error(f"{prefix}policy-domain", domain, Text("a string"))
    if "summary" not in obj:
        raise _missing("report-field-missing", f"{where}.summary")
    summary = _object(obj["summary"], f"{where}.summary")
    totals = []
    for key in ("total-successful-session-count", "total-failure-session-count"):
        if key in summary:
            totals.append(_count(summary[key], f"{where}.summary.{key}"))
        else:
            repairs.append(
                Repair("summary-count-missing", f"{where}.summary.{key} is absent; read as 0")
            )
            totals.append(0)
    raw_details = obj.get("failure-details")
    if raw_details is None:
        raw_details = []
    details = tuple(
        _failure_detail(d, f"{where}.failure-details[{i}]", repairs)
        for i, d in enumerate(_array(raw_details, f"{where}.failure-details"))
    )
    detailed = sum(d.failed_session_count for d in details)
    if detailed > totals[1]:
        # Mail.ru lists one detail per failure reason, so one session may appear twice.
        repairs.append(
            Repair(
                "failure-count-exceeds-total",
                f"{where}: failure details add up to {detailed} sessions, the summary says "
                f"{totals[1]}; both kept as written, totals use the summary",
            )
        )
    return PolicyResult(
        policy_type=policy_type,
        policy_strings=_policy_strings(policy, policy_type, prefix, repairs),
        policy_domain=domain,
        mx_hosts=_mx_hosts(policy, policy_type, prefix, repairs),
        total_successful=totals[0],
        total_failure=totals[1],
        failure_details=details,
    )


def report_from_json(value: object, repairs: tuple[Repair, ...] = ()) -> ParsedReport:
    """Build a report from a decoded JSON value (see `parse_report` for codes)."""
    if not isinstance(value, dict):
        raise ReportError(
            "report-not-object",
            Text("the report must be a JSON object, not {kind}", kind=_kind(value)),
            RFC_SCHEMA,
            _FIX_SENDER,
        )
    found = list(repairs)
    organization = _required_str(value, "organization-name", "", "report-organization-missing")
    report_id = _required_str(value, "report-id", "", "report-id-missing")
    if "date-range" not in value:
        raise _missing("report-date-range-missing", "'date-range'")
    date_range = _object(value["date-range"], "date-range")
    bounds = []
    for key in ("start-datetime", "end-datetime"):
        if key not in date_range:
            raise _missing("report-date-range-missing", f"date-range.{key}")
        bounds.append(_parse_datetime(date_range[key], f"date-range.{key}", found))
    start, end = bounds
    if end < start:
        raise ReportError(
            "report-date-range-reversed",
            Text(
                "date-range ends ({end}) before it starts ({start})",
                end=format_datetime(end),
                start=format_datetime(start),
            ),
            RFC_FIELDS,
            _FIX_SENDER,
        )
    if end.time() == datetime.min.time() and end.date() > start.date():
        # RFC 8460 §4.1: reports cover 00:00-24:00 UTC; the RFC example ends at 23:59:59Z.
        repairs_day = (end - timedelta(seconds=1)).date().isoformat()
        found.append(
            Repair(
                "end-next-day-midnight",
                f"date-range.end-datetime is {format_datetime(end)}, an exclusive end; kept "
                f"as written (the report ends with {repairs_day})",
            )
        )
    if "contact-info" not in value:
        found.append(Repair("contact-info-missing", "contact-info is absent"))
        contact = None
    elif value["contact-info"] is None:
        found.append(Repair("contact-info-null", "contact-info is null"))
        contact = None
    elif isinstance(value["contact-info"], str):
        contact = value["contact-info"]
    else:
        raise _type_error("contact-info", value["contact-info"], Text("a string"))
    if "policies" not in value:
        raise _missing("report-policies-missing", "'policies'")
    policies = tuple(
        _policy_result(p, f"policies[{i}]", found)
        for i, p in enumerate(_array(value["policies"], "policies"))
    )
    report = Report(
        organization_name=organization,
        start_datetime=start,
        end_datetime=end,
        contact_info=contact,
        report_id=report_id,
        policies=policies,
    )
    return ParsedReport(report, tuple(found))


def parse_report(data: bytes | str) -> ParsedReport:
    """Parse one RFC 8460 report (UTF-8 JSON, already decompressed).

    Raise ReportError when the report is unusable. Codes: ``report-encoding``,
    ``report-too-deep``, ``report-not-json``, ``report-not-object``,
    ``report-organization-missing``, ``report-id-missing``, ``report-date-range-missing``,
    ``report-datetime-invalid``, ``report-date-range-reversed``,
    ``report-policies-missing``, ``report-field-missing``, ``report-field-type``,
    ``report-count-invalid``.

    Repair codes (tolerated deviations): ``utf8-bom``, ``datetime-without-zone``,
    ``end-next-day-midnight``, ``contact-info-null``, ``contact-info-missing``,
    ``field-null``, ``policy-type-case``, ``unknown-policy-type``,
    ``policy-domain-missing``, ``policy-string-missing``, ``policy-string-string``,
    ``tlsa-policy-string-json``, ``policy-string-cr``, ``mx-host-missing``,
    ``mx-host-string``, ``mx-host-prefixed``, ``summary-count-missing``,
    ``failure-count-exceeds-total``, ``result-type-case``, ``unknown-result-type``,
    ``detail-missing-ip-mx``.
    """
    value, repairs = decode_report_json(data)
    return report_from_json(value, repairs)


# --- serialization -------------------------------------------------------------------


def _detail_json(d: FailureDetail) -> dict[str, Any]:
    out: dict[str, Any] = {"result-type": d.result_type}
    for key, attr in _DETAIL_STRINGS[:4]:
        if getattr(d, attr) is not None:
            out[key] = getattr(d, attr)
    out["failed-session-count"] = d.failed_session_count
    for key, attr in _DETAIL_STRINGS[4:]:
        if getattr(d, attr) is not None:
            out[key] = getattr(d, attr)
    return out


def _policy_json(p: PolicyResult) -> dict[str, Any]:
    policy: dict[str, Any] = {"policy-type": p.policy_type}
    if p.policy_strings:
        policy["policy-string"] = list(p.policy_strings)
    if p.policy_domain is not None:
        policy["policy-domain"] = p.policy_domain
    if p.mx_hosts:
        policy["mx-host"] = list(p.mx_hosts)  # RFC 8460 erratum 6241: an array
    out: dict[str, Any] = {
        "policy": policy,
        "summary": {
            "total-successful-session-count": p.total_successful,
            "total-failure-session-count": p.total_failure,
        },
    }
    if p.failure_details:
        out["failure-details"] = [_detail_json(d) for d in p.failure_details]
    return out


def report_to_json(report: Report) -> dict[str, Any]:
    """The report as the JSON object of RFC 8460 §4.4 (keys in the RFC's order)."""
    out: dict[str, Any] = {
        "organization-name": report.organization_name,
        "date-range": {
            "start-datetime": format_datetime(report.start_datetime),
            "end-datetime": format_datetime(report.end_datetime),
        },
    }
    if report.contact_info is not None:
        out["contact-info"] = report.contact_info
    out["report-id"] = report.report_id
    out["policies"] = [_policy_json(p) for p in report.policies]
    return out


def serialize_report(report: Report) -> bytes:
    """Strict RFC 8460 §4.4 JSON, UTF-8: `mx-host` as an array (erratum 6241), date-times
    in UTC with `Z`, absent optional fields left out.

    Raise ReportError (``report-not-canonical`` or a parse code) when the result would not
    parse back to ``report``: e.g. a negative count, a naive date-time, an empty report-id,
    or a value that parsing would repair (a `\\r` ending a policy line).
    """
    obj = report_to_json(report)
    try:
        text = json.dumps(obj, ensure_ascii=False, indent=None, separators=(",", ":"))
        data = text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: \u escapes keep the JSON valid
        data = json.dumps(obj, separators=(",", ":")).encode("ascii")
    back = parse_report(data).report
    if back != report:
        raise ReportError(
            "report-not-canonical",
            Text(
                "the report does not parse back to itself: check for values that parsing "
                "corrects (policy-string lines ending in CR, mx-host entries starting with "
                "'mx:', policy-type or result-type not in lower case, a TLSA policy-string "
                "holding a JSON array, empty policy-domain)"
            ),
            RFC_SCHEMA,
        )
    return data
