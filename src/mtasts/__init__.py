"""mtasts: diagnose, generate, host and watch SMTP MTA-STS (RFC 8461) and TLS reporting
(RFC 8460)."""

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
