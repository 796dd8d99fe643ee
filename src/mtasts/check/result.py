"""What one check saw and concluded, and its JSON form (the `mtasts check` contract)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mtasts.check.findings import Finding, Severity, StsFetchResult
from mtasts.i18n import _
from mtasts.net.addresses import AddressVerdict
from mtasts.net.certs import CertInfo
from mtasts.net.dns import AddressAnswer, DnsAnswer, MxAnswer
from mtasts.net.fetch import FetchResult
from mtasts.net.starttls import ProbeResult
from mtasts.protocol.policy import Policy
from mtasts.protocol.record import StsRecord
from mtasts.protocol.tlsrpt import TlsRptRecord


@dataclass
class MxHostResult:
    hostname: str
    preference: int
    matched_pattern: str | None
    matches_policy: bool | None  # None when there is no policy to match against
    addresses: AddressAnswer | None = None
    probes: list[ProbeResult] = field(default_factory=list)
    # Under a probe policy (checks tenants trigger): addresses refused and never connected
    # to, allowed addresses beyond the per-host cap, and whether the host itself was
    # beyond the cap on MX hosts (then neither resolved nor probed).
    refused: list[AddressVerdict] = field(default_factory=list)
    unprobed: list[str] = field(default_factory=list)
    skipped: bool = False

    def to_dict(self, now: datetime) -> dict[str, Any]:
        data: dict[str, Any] = {
            "hostname": self.hostname,
            "preference": self.preference,
            "matches_policy": self.matches_policy,
            "matched_pattern": self.matched_pattern,
        }
        if self.probes or self.refused or self.unprobed:
            data["addresses"] = (
                [_probe_dict(p, now) for p in self.probes]
                + [
                    {"ip": v.address, "error_code": "address-not-allowed", "error": v.reason}
                    for v in self.refused
                ]
                + [
                    {"ip": ip, "error_code": "not-probed", "error": "beyond the probe limit"}
                    for ip in self.unprobed
                ]
            )
        else:
            data["addresses"] = [
                {"ip": ip} for ip in (self.addresses.addresses if self.addresses else ())
            ]
        if self.skipped:
            data["probed"] = False
        return data

    @property
    def tls_ok(self) -> bool:
        return bool(self.probes) and all(p.ok for p in self.probes) and not self.refused


@dataclass
class CheckResult:
    """Everything a check saw, and what it concluded."""

    domain: str
    checked_at: datetime
    sts_fetch_result: StsFetchResult = StsFetchResult.NONE
    record_answer: DnsAnswer | None = None
    record: StsRecord | None = None
    fetch: FetchResult | None = None
    policy: Policy | None = None
    mx_answer: MxAnswer | None = None
    mx_hosts: list[MxHostResult] = field(default_factory=list)
    tlsrpt_answer: DnsAnswer | None = None
    tlsrpt: TlsRptRecord | None = None
    findings: list[Finding] = field(default_factory=list)
    # A line of an input file that is not a domain name: never checked, so no verdict.
    input_line: int | None = None
    checked: bool = True

    @property
    def ok(self) -> bool:
        return not any(f.severity is Severity.ERROR for f in self.findings)

    def count(self, severity: Severity) -> int:
        return sum(1 for f in self.findings if f.severity is severity)

    def to_dict(self) -> dict[str, Any]:
        now = self.checked_at
        record: dict[str, Any] | None = None
        if self.record is not None:
            fields = {"v": "STSv1", "id": self.record.id, **dict(self.record.extensions)}
            record = {"raw": self.record.raw, "id": self.record.id, "fields": fields}
        elif self.record_answer is not None and self.record_answer.records:
            record = {"raw": None, "id": None, "fields": {}}
        if record is not None and self.record_answer is not None:
            record["txt"] = list(self.record_answer.records)
            record["cname_chain"] = list(self.record_answer.cname_chain)
        policy: dict[str, Any] | None = None
        if self.fetch is not None and self.fetch.body is not None:
            raw = self.fetch.body.decode("utf-8", "replace")
            policy = {"raw": raw, "version": None, "mode": None, "mx": [], "max_age": None}
            if self.policy is not None:
                policy.update(
                    version=self.policy.version,
                    mode=self.policy.mode.value,
                    mx=list(self.policy.mx),
                    max_age=self.policy.max_age,
                )
        tlsrpt = None
        if self.tlsrpt is not None:
            tlsrpt = {"raw": self.tlsrpt.raw, "rua": list(self.tlsrpt.rua)}
        if not self.checked:
            return {
                "domain": self.domain,
                "sts_fetch_result": None,
                "sts_fetch_result_meaning": _("not checked: the input is not a domain name"),
                "line": self.input_line,
                "findings": [f.to_dict() for f in self.findings],
            }
        return {
            "domain": self.domain,
            "sts_fetch_result": self.sts_fetch_result.value,
            "sts_fetch_result_meaning": self.sts_fetch_result.meaning,
            "checked_at": now.isoformat(),
            "record": record,
            "policy": policy,
            "policy_fetch": _fetch_dict(self.fetch, now) if self.fetch else None,
            "mx_hosts": [h.to_dict(now) for h in self.mx_hosts],
            "tlsrpt": tlsrpt,
            "findings": [f.to_dict() for f in self.findings],
        }


def _cert_dict(cert: CertInfo | None, now: datetime) -> dict[str, Any] | None:
    if cert is None:
        return None
    return {
        "subject": cert.subject,
        "subject_alt_names": list(cert.subject_alt_names),
        "issuer": cert.issuer,
        "not_before": cert.not_before.isoformat(),
        "not_after": cert.not_after.isoformat(),
        "days_left": cert.days_left(now),
        "fingerprint_sha256": cert.fingerprint_sha256,
    }


def _probe_dict(p: ProbeResult, now: datetime) -> dict[str, Any]:
    cert = _cert_dict(p.certificate, now)
    if cert is not None:
        cert.update(trusted=p.trusted, hostname_match=p.hostname_match)
    return {
        "ip": p.address,
        "banner": p.banner,
        "starttls": p.starttls_offered,
        "tls_version": p.tls_version,
        "cipher": p.cipher,
        "certificate": cert,
        "error_code": p.error_code,
        "error": p.error,
    }


def _fetch_dict(f: FetchResult, now: datetime) -> dict[str, Any]:
    return {
        "url": f.url,
        "addresses": list(f.addresses),
        "status_code": f.status_code,
        "content_type": f.content_type,
        "location": f.location,
        "tls_version": f.tls_version,
        "certificate": _cert_dict(f.certificate, now),
        "error_code": f.error_code,
        "error": f.error,
    }


def input_invalid(text: str, line: int, problem: str) -> CheckResult:
    """The result for line ``line`` of an input file that is not a domain name: finding
    ``input-invalid``, no verdict (nothing was checked)."""
    result = CheckResult(domain=text, checked_at=datetime.now(UTC), input_line=line, checked=False)
    result.findings.append(
        Finding(
            "input-invalid",
            Severity.ERROR,
            f"line {line}",
            _("line {line}: {problem}").format(line=line, problem=problem),
            "RFC 1035 §2.3.1",
            fix=_(
                "Give one mail domain per line (the part after @, e.g. example.com); "
                "'#' starts a comment."
            ),
        )
    )
    return result
