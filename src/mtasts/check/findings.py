"""Findings: what the diagnosis found, each with a stable code, a severity, the subject it
concerns, the RFC rule, the TLS-RPT result type a sender would report, and a fix."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from mtasts.i18n import N_, _


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        return {"error": 0, "warning": 1, "info": 2}[self.value]


class StsFetchResult(StrEnum):
    """The outcome senders log (postfix-mta-sts-resolver's `STSFetchResult`)."""

    NONE = "NONE"
    VALID = "VALID"
    FETCH_ERROR = "FETCH_ERROR"

    @property
    def meaning(self) -> str:
        return _(_MEANINGS[self])


_MEANINGS = {
    StsFetchResult.NONE: N_(
        "Senders see no usable MTA-STS policy (no single valid `_mta-sts` TXT record): "
        "they deliver with opportunistic TLS, unprotected against downgrade."
    ),
    StsFetchResult.FETCH_ERROR: N_(
        "Senders see a `_mta-sts` record but cannot obtain a valid policy: they keep a cached "
        "policy if they have one, otherwise they deliver as if there were none, and report "
        "the failure in TLS-RPT."
    ),
    StsFetchResult.VALID: N_("Senders find and accept the policy and apply it to every MX host."),
}


# RFC 8460 §4.3: result types in a TLS report.
class ResultType(StrEnum):
    STARTTLS_NOT_SUPPORTED = "starttls-not-supported"
    CERTIFICATE_HOST_MISMATCH = "certificate-host-mismatch"
    CERTIFICATE_EXPIRED = "certificate-expired"
    CERTIFICATE_NOT_TRUSTED = "certificate-not-trusted"
    VALIDATION_FAILURE = "validation-failure"
    STS_POLICY_FETCH_ERROR = "sts-policy-fetch-error"
    STS_POLICY_INVALID = "sts-policy-invalid"
    STS_WEBPKI_INVALID = "sts-webpki-invalid"


@dataclass(frozen=True)
class Finding:
    code: str
    severity: Severity
    subject: str
    message: str
    rfc: str
    tlsrpt_result_type: ResultType | None = None
    fix: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["severity"] = self.severity.value
        data["tlsrpt_result_type"] = self.tlsrpt_result_type and self.tlsrpt_result_type.value
        return data


def sort_findings(findings: list[Finding]) -> list[Finding]:
    """Errors first, then warnings, then info; otherwise in the order they were found."""
    return sorted(findings, key=lambda f: f.severity.rank)
