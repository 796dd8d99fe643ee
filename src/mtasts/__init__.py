"""mtasts: diagnose, generate, host and watch SMTP MTA-STS (RFC 8461) and TLS reporting
(RFC 8460)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mtasts.check.checker import Checker, CheckOptions
    from mtasts.check.findings import Finding, ResultType, Severity, StsFetchResult
    from mtasts.check.result import CheckResult
    from mtasts.net.dns import Resolver
    from mtasts.protocol.errors import (
        LimitExceeded,
        MxPatternError,
        PolicyError,
        ProtocolError,
        RecordError,
        ReportError,
        TlsRptRecordError,
    )
    from mtasts.protocol.mx import mx_matches
    from mtasts.protocol.policy import Mode, Policy, parse_policy
    from mtasts.protocol.record import StsRecord, parse_sts_record, select_sts_record
    from mtasts.protocol.report import ParsedReport, Report, parse_report, serialize_report
    from mtasts.protocol.tlsrpt import TlsRptRecord, parse_tlsrpt_record, select_tlsrpt_record

# The public API is imported when first used (PEP 562), so `import mtasts.cli` and the
# commands that need little start fast: name -> module defining it.
_LAZY = {
    "CheckOptions": "mtasts.check.checker",
    "Checker": "mtasts.check.checker",
    "Finding": "mtasts.check.findings",
    "ResultType": "mtasts.check.findings",
    "Severity": "mtasts.check.findings",
    "StsFetchResult": "mtasts.check.findings",
    "CheckResult": "mtasts.check.result",
    "Resolver": "mtasts.net.dns",
    "LimitExceeded": "mtasts.protocol.errors",
    "MxPatternError": "mtasts.protocol.errors",
    "PolicyError": "mtasts.protocol.errors",
    "ProtocolError": "mtasts.protocol.errors",
    "RecordError": "mtasts.protocol.errors",
    "ReportError": "mtasts.protocol.errors",
    "TlsRptRecordError": "mtasts.protocol.errors",
    "mx_matches": "mtasts.protocol.mx",
    "Mode": "mtasts.protocol.policy",
    "Policy": "mtasts.protocol.policy",
    "parse_policy": "mtasts.protocol.policy",
    "StsRecord": "mtasts.protocol.record",
    "parse_sts_record": "mtasts.protocol.record",
    "select_sts_record": "mtasts.protocol.record",
    "ParsedReport": "mtasts.protocol.report",
    "Report": "mtasts.protocol.report",
    "parse_report": "mtasts.protocol.report",
    "serialize_report": "mtasts.protocol.report",
    "TlsRptRecord": "mtasts.protocol.tlsrpt",
    "parse_tlsrpt_record": "mtasts.protocol.tlsrpt",
    "select_tlsrpt_record": "mtasts.protocol.tlsrpt",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mtasts' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups do not come here again
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__version__ = "0.1.0"

__all__ = [
    "CheckOptions",
    "CheckResult",
    "Checker",
    "Finding",
    "LimitExceeded",
    "Mode",
    "MxPatternError",
    "ParsedReport",
    "Policy",
    "PolicyError",
    "ProtocolError",
    "RecordError",
    "Report",
    "ReportError",
    "Resolver",
    "ResultType",
    "Severity",
    "StsFetchResult",
    "StsRecord",
    "TlsRptRecord",
    "TlsRptRecordError",
    "mx_matches",
    "parse_policy",
    "parse_report",
    "parse_sts_record",
    "parse_tlsrpt_record",
    "select_sts_record",
    "select_tlsrpt_record",
    "serialize_report",
]
