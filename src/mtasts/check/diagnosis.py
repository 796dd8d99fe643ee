"""Turns what a check observed into the verdict senders reach and findings with fixes
(RFC 8461 §3-§5, RFC 8460 §3)."""

from __future__ import annotations

from datetime import datetime

from mtasts import generate
from mtasts.check import advice
from mtasts.check.findings import Finding, ResultType, Severity, StsFetchResult
from mtasts.check.result import CheckResult, MxHostResult
from mtasts.i18n import N_, _, say
from mtasts.net.addresses import AddressClass, AddressVerdict, describe_refused
from mtasts.net.certs import judge_expiry
from mtasts.net.dns import DnsAnswer, DnsStatus, MxAnswer
from mtasts.net.fetch import UNRECOGNISED_MEDIA_TYPE, FetchResult
from mtasts.net.starttls import ProbeResult
from mtasts.protocol.errors import PolicyError, RecordError, TlsRptRecordError
from mtasts.protocol.mx import matching_pattern
from mtasts.protocol.policy import MX_WARNING_NOTES, Mode, Policy, parse_policy
from mtasts.protocol.record import select_sts_record
from mtasts.protocol.tlsrpt import select_tlsrpt_record

SHORT_MAX_AGE = 86_400
ADDRESS_NOT_ALLOWED = "address-not-allowed"  # a probe policy refused the host's address
PROBE_LIMIT = "probe-limit"  # a probe policy capped the fan-out: some MX not probed

_ERR, _WARN, _INFO = Severity.ERROR, Severity.WARNING, Severity.INFO


# RFC 8460 §4.3 result type a sender reports for each policy fetch failure.
_FETCH_TYPES: dict[str, ResultType] = {
    "tls-certificate-expired": ResultType.STS_WEBPKI_INVALID,
    "tls-certificate-untrusted": ResultType.STS_WEBPKI_INVALID,
    "tls-certificate-host-mismatch": ResultType.STS_WEBPKI_INVALID,
    "tls-certificate-invalid": ResultType.STS_WEBPKI_INVALID,
}

_FETCH_MESSAGES: dict[str, str] = {
    "dns-nxdomain": N_("{host} does not exist in DNS, so the policy cannot be fetched."),
    "dns-nodata": N_("{host} has no A or AAAA record, so the policy cannot be fetched."),
    "dns-failure": N_("Looking up {host} failed ({error}); senders treat this as a fetch error."),
    "connect-failed": N_("Nothing accepts HTTPS connections on {host} port 443 ({error})."),
    "timeout": N_("Fetching {url} took longer than the time limit ({error})."),
    "tls-handshake-failed": N_("The TLS handshake with {host} failed ({error})."),
    "tls-certificate-expired": N_("The certificate of {host} has expired ({error})."),
    "tls-certificate-untrusted": N_(
        "The certificate of {host} does not chain to a trusted root CA ({error}); a "
        "self-signed or private-CA certificate is not accepted (RFC 8461 §3.3)."
    ),
    "tls-certificate-host-mismatch": N_(
        "The certificate served for {host} does not name {host} ({error})."
    ),
    "tls-certificate-invalid": N_("The certificate of {host} is not valid ({error})."),
    "http-redirect": N_(
        "{url} answers with a redirect{location}; senders must not follow redirects "
        "(RFC 8461 §3.3)."
    ),
    "http-status": N_("{url} answers HTTP {status} instead of 200."),
    "content-type": N_(
        "{url} is served as {content_type!s}, but senders require the media type text/plain "
        "(RFC 8461 §3.2)."
    ),
    "too-large": N_("The policy at {url} is larger than 64 KiB; senders stop reading it."),
    "http-error": N_("The HTTPS request to {url} failed ({error})."),
}

_PROBE_FINDINGS: dict[str, tuple[str, ResultType | None, str]] = {
    # error_code -> (finding code, TLS-RPT result type, message)
    "connect-failed": (
        "mx-unreachable",
        None,
        N_(
            "Could not connect to port 25 ({error}). If this machine may not reach port 25, "
            "check from another network; senders that cannot connect queue the mail."
        ),
    ),
    "timeout": ("mx-unreachable", None, N_("The SMTP session timed out ({error}).")),
    "smtp-banner": ("mx-smtp-error", None, N_("The server did not greet with 220 ({error}).")),
    "smtp-ehlo": ("mx-smtp-error", None, N_("EHLO was not accepted ({error}).")),
    "starttls-not-offered": (
        "mx-starttls-missing",
        ResultType.STARTTLS_NOT_SUPPORTED,
        N_("STARTTLS is not offered, so MTA-STS senders cannot deliver here in enforce mode."),
    ),
    "starttls-refused": (
        "mx-starttls-missing",
        ResultType.STARTTLS_NOT_SUPPORTED,
        N_("STARTTLS is offered but refused ({error})."),
    ),
    "tls-handshake-failed": (
        "mx-tls-handshake-failed",
        ResultType.VALIDATION_FAILURE,
        N_("The TLS handshake failed ({error})."),
    ),
    "tls-version-too-old": (
        "mx-tls-version-too-old",
        ResultType.VALIDATION_FAILURE,
        N_(
            "Only {tls_version} could be negotiated; TLS 1.2 or later is required "
            "(RFC 8461 §4.2 with RFC 8996)."
        ),
    ),
    "certificate-expired": (
        "mx-certificate-expired",
        ResultType.CERTIFICATE_EXPIRED,
        N_("The certificate expired on {not_after}."),
    ),
    "certificate-not-yet-valid": (
        "mx-certificate-not-yet-valid",
        ResultType.VALIDATION_FAILURE,
        N_("The certificate is not valid before {not_before}."),
    ),
    "certificate-untrusted": (
        "mx-certificate-untrusted",
        ResultType.CERTIFICATE_NOT_TRUSTED,
        N_("The certificate does not chain to a trusted root CA ({error})."),
    ),
    "certificate-invalid": (
        "mx-certificate-invalid",
        ResultType.VALIDATION_FAILURE,
        N_("The certificate could not be validated ({error})."),
    ),
}

# Why an MX host would fail once the policy is enforced: finding code -> short reason.
ENFORCE_FAILURES: dict[str, str] = {
    "mx-not-covered": N_("not listed in the policy"),
    "mx-no-address": N_("no address"),
    ADDRESS_NOT_ALLOWED: N_("address not allowed"),
    "mx-unreachable": N_("unreachable"),
    "mx-smtp-error": N_("SMTP error"),
    "mx-starttls-missing": N_("no STARTTLS"),
    "mx-tls-handshake-failed": N_("TLS handshake failed"),
    "mx-tls-version-too-old": N_("TLS < 1.2"),
    "mx-certificate-expired": N_("certificate expired"),
    "mx-certificate-not-yet-valid": N_("certificate not yet valid"),
    "mx-certificate-untrusted": N_("certificate not trusted"),
    "mx-certificate-host-mismatch": N_("certificate does not name the host"),
    "mx-certificate-invalid": N_("certificate invalid"),
}

_PROBE_FIXES: dict[str, str] = {
    "mx-unreachable": N_(
        "Make {host} accept SMTP connections on port 25 from the internet (mail server "
        "running, listening on its public address, firewall open). If only this machine "
        "cannot reach port 25, check from another network."
    ),
    "mx-smtp-error": N_(
        "Make the mail server on {host} greet with 220 and accept EHLO (check its logs)."
    ),
    "mx-tls-handshake-failed": N_(
        "Check the TLS set-up of {host}: a certificate and its key installed, TLS 1.2 or "
        "1.3 enabled with common ciphers."
    ),
    "mx-certificate-not-yet-valid": N_(
        "Install a certificate of {host} that is valid now (check the server's clock and "
        "the certificate's notBefore date)."
    ),
    "mx-certificate-invalid": N_(
        "Install a publicly trusted, unexpired certificate naming {host} with its full "
        "chain (e.g. `certbot certonly -d {host}`)."
    ),
    "mx-starttls-missing": N_(
        "Enable STARTTLS on the MX with a publicly trusted certificate. Postfix:\n"
        "    smtpd_tls_cert_file = /etc/letsencrypt/live/{host}/fullchain.pem\n"
        "    smtpd_tls_key_file = /etc/letsencrypt/live/{host}/privkey.pem\n"
        "    smtpd_tls_security_level = may"
    ),
    "mx-tls-version-too-old": N_(
        "Enable TLS 1.2 and 1.3 on the MX. Postfix:\n"
        "    smtpd_tls_protocols = >=TLSv1.2\n"
        "    smtpd_tls_mandatory_protocols = >=TLSv1.2"
    ),
    "mx-certificate-expired": N_(
        "Renew the certificate of {host} (e.g. `certbot renew`) and reload the mail server."
    ),
    "mx-certificate-untrusted": N_(
        "Install a certificate from a public CA (e.g. Let's Encrypt: "
        "`certbot certonly --standalone -d {host}`) with its full chain (fullchain.pem)."
    ),
    "mx-certificate-host-mismatch": N_(
        "Use a certificate whose subjectAltName includes {host} "
        "(e.g. `certbot certonly -d {host}`), or point the MX record at a name the "
        "certificate covers and list that name in the policy."
    ),
}


def enforce_failures(
    hosts: list[MxHostResult], findings: list[Finding]
) -> list[tuple[str, list[Finding]]]:
    """Each MX host that would fail once the policy is enforced, in MX order, with the
    findings saying why (codes of ENFORCE_FAILURES, warnings such as an unreachable
    host included). RFC 8461 §5: in enforce, senders deliver to no such host."""
    out = []
    for host in hosts:
        found = [f for f in findings if f.subject == host.hostname and f.code in ENFORCE_FAILURES]
        if found:
            out.append((host.hostname, found))
    return out


def enforce_reason(finding: Finding) -> str:
    """The short reason an enforce-failure finding stands for ("connection refused",
    "no STARTTLS", "TLS < 1.2", ...)."""
    if finding.code == "mx-unreachable" and "refused" in finding.message.lower():
        return _("connection refused")
    reason = ENFORCE_FAILURES.get(finding.code)
    return _(reason) if reason else finding.code


class Diagnosis:
    """Turns the raw observations of one check into the verdict and findings.

    ``redact``: the findings go to a tenant (the check ran under a probe policy), so they
    carry no resolver error text (it names the operator's name servers); probe and fetch
    results arrive already redacted."""

    def __init__(self, result: CheckResult, now: datetime, *, redact: bool = False) -> None:
        self.r = result
        self.now = now
        self.d = result.domain
        self.redact = redact

    def dns_failure(self, answer: DnsAnswer | MxAnswer) -> str:
        """ "SERVFAIL: <resolver detail>", or only the status when redacting."""
        if self.redact or not answer.error:
            return str(answer.status)
        return f"{answer.status}: {answer.error}"

    def add(
        self,
        code: str,
        severity: Severity,
        subject: str,
        message: str,
        rfc: str,
        result_type: ResultType | None = None,
        fix: str | None = None,
    ) -> None:
        self.r.findings.append(Finding(code, severity, subject, message, rfc, result_type, fix))

    def live_mx_names(self) -> list[str]:
        """The MX hosts a suggested policy lists, as `mtasts generate` picks them."""
        answer = self.r.mx_answer
        if answer is not None and answer.status is DnsStatus.NODATA:
            return [self.d]  # RFC 5321 §5.1: no MX record, the domain is the implicit MX
        if answer is None or answer.status is not DnsStatus.OK:
            return [f"mx.{self.d}"]
        return [m.exchange for m in answer.records if m.exchange] or [f"mx.{self.d}"]

    def null_mx(self) -> bool:
        """RFC 7505: the domain publishes a null MX (it accepts no mail)."""
        answer = self.r.mx_answer
        return (
            answer is not None
            and answer.status is DnsStatus.OK
            and any(not m.exchange for m in answer.records)
        )

    # --- record and policy -------------------------------------------------------------

    def judge_record_and_policy(self) -> None:
        r, d = self.r, self.d
        answer = r.record_answer
        assert answer is not None and r.fetch is not None
        subject = f"_mta-sts.{d}"
        record_ok = False
        if answer.status.temporary:
            # RFC 8461 §3.3 / §5: a temporary DNS failure is a fetch error, not "no policy"
            r.sts_fetch_result = StsFetchResult.FETCH_ERROR
            self.add(
                "sts-record-dns-failure",
                _ERR,
                subject,
                _(
                    "The TXT lookup of {subject} failed ({failure}); "
                    "senders cannot tell whether a policy exists."
                ).format(subject=subject, failure=self.dns_failure(answer)),
                "RFC 8461 §3.3",
                ResultType.STS_POLICY_FETCH_ERROR,
                _(
                    "Make every authoritative name server of the domain answer for "
                    "{subject} (check with `dig TXT {subject} @<each NS>`)."
                ).format(subject=subject),
            )
        elif answer.status is not DnsStatus.OK:
            self._record_missing(answer)
        else:
            try:
                r.record = select_sts_record(answer.records, domain=d)
                record_ok = True
                for note in r.record.notes:
                    self.add(
                        note.code,
                        _WARN,
                        subject,
                        say(note.message),
                        note.rfc,
                        fix=advice.sts_record(d, self.now),
                    )
            except RecordError as exc:
                self._record_invalid(exc, answer)
        if answer.cname_chain:
            self.add(
                "sts-record-cname",
                _INFO,
                subject,
                _("{subject} is a CNAME to {target} (delegated).").format(
                    subject=subject, target=" → ".join(answer.cname_chain)
                ),
                "RFC 8461 §3.1",
            )
        self._judge_policy(record_ok)

    def _record_missing(self, answer: DnsAnswer) -> None:
        d = self.d
        fetch = self.r.fetch
        assert fetch is not None
        published = fetch.ok and self._parse_quietly(fetch.body) is not None
        if not published and self.null_mx():
            # RFC 7505: a domain that accepts no mail needs no policy (`mtasts generate`
            # writes none either); the null MX finding says so.
            return
        if published:
            message = _(
                "_mta-sts.{domain} has no TXT record ({status}), although a valid policy is "
                "served at {url}: senders never look for it without the record."
            ).format(domain=d, status=answer.status, url=fetch.url)
            fix = advice.sts_record(d, self.now)
        else:
            message = _(
                "_mta-sts.{domain} has no TXT record ({status}), so senders see no "
                "MTA-STS policy for this domain."
            ).format(domain=d, status=answer.status)
            fix = advice.publish_all(d, self.live_mx_names(), self.now)
        self.add("sts-record-missing", _ERR, f"_mta-sts.{d}", message, "RFC 8461 §3.1", None, fix)

    def _record_invalid(self, exc: RecordError, answer: DnsAnswer) -> None:
        d = self.d
        message = say(exc.message)
        if exc.code not in ("record-missing", "record-multiple", "record-quoted"):
            # postfix-mta-sts-resolver only splits on ";" and "=" and needs v and id present.
            message += " " + _(
                "RFC 8461 §3.1 says senders then assume there is no policy. "
                "Note: postfix-mta-sts-resolver is more lenient and accepts such a record "
                "when it has v=STSv1 and an id, so Postfix users may still see a policy."
            )
        if exc.code == "record-missing" and answer.records:
            message = (
                _(
                    "None of the TXT records at _mta-sts.{domain} starts with v=STSv1 "
                    "(found: {found})."
                ).format(domain=d, found="; ".join(repr(t) for t in answer.records))
                + " "
                + say(exc.message)
            )
        fix = say(exc.fix) if exc.fix else advice.sts_record(d, self.now)
        self.add(
            f"sts-{exc.code}" if not exc.code.startswith("sts-") else exc.code,
            _ERR,
            f"_mta-sts.{d}",
            message,
            exc.rfc,
            None,
            fix,
        )

    @staticmethod
    def _parse_quietly(body: bytes | None) -> Policy | None:
        if body is None:
            return None
        try:
            return parse_policy(body)
        except PolicyError:
            return None

    def _judge_policy(self, record_ok: bool) -> None:
        r, d = self.r, self.d
        fetch = r.fetch
        assert fetch is not None
        # Without a record senders never fetch: only report the policy host if it is usable
        # or half-there (a record is the first thing to fix, and its fix covers the rest).
        severity = _ERR if record_ok else _WARN
        if fetch.refused:
            self._address_not_allowed(fetch.host, _("The policy host"), fetch.refused)
        if not fetch.ok:
            if record_ok:
                r.sts_fetch_result = StsFetchResult.FETCH_ERROR
            elif r.sts_fetch_result is StsFetchResult.NONE and fetch.error_code in (
                "dns-nxdomain",
                "dns-nodata",
            ):
                return
            self._fetch_failed(fetch, severity)
            return
        assert fetch.body is not None
        try:
            r.policy = parse_policy(fetch.body)
        except PolicyError as exc:
            if record_ok:
                r.sts_fetch_result = StsFetchResult.FETCH_ERROR
            fixed = advice.suggested_policy(d, self.live_mx_names(), None)
            self.add(
                exc.code,
                severity,
                fetch.url,
                say(exc.message),
                exc.rfc,
                ResultType.STS_POLICY_INVALID,
                (say(exc.fix) + "\n" if exc.fix else "") + advice.policy_file(d, fixed),
            )
            return
        if record_ok:
            r.sts_fetch_result = StsFetchResult.VALID
        policy = r.policy
        for note in policy.notes:
            if note.code in MX_WARNING_NOTES:
                # Senders accept the policy, but the line covers no MX host (for some senders).
                fix = advice.policy_file(
                    d, advice.suggested_policy(d, self.live_mx_names(), policy)
                )
                self.add(note.code, _WARN, fetch.url, say(note.message), note.rfc, fix=fix)
            else:
                self.add(note.code, _INFO, fetch.url, say(note.message), note.rfc)
        if policy.mode is Mode.TESTING:
            self.add(
                "policy-mode-testing",
                _WARN,
                fetch.url,
                _(
                    "The policy is in testing mode: senders report TLS failures but still "
                    "deliver over unauthenticated or plaintext connections."
                ),
                "RFC 8461 §5",
                fix=_(
                    "When the reports and this check show no failures, set `mode: enforce` "
                    "and publish a new id."
                ),
            )
        elif policy.mode is Mode.NONE:
            self.add(
                "policy-mode-none",
                _WARN,
                fetch.url,
                _("The policy is in mode none: senders treat the domain as having no policy."),
                "RFC 8461 §5",
            )
        if policy.max_age < SHORT_MAX_AGE:
            self.add(
                "policy-max-age-short",
                _WARN,
                fetch.url,
                _(
                    "max_age is {max_age} s (under a day): a cached policy expires quickly "
                    "and gives little protection against a downgrade attack; weeks are "
                    "recommended."
                ).format(max_age=policy.max_age),
                "RFC 8461 §3.2",
                fix=_("Use e.g. `max_age: 604800` (one week) or `max_age: 1209600` (two weeks)."),
            )
        cert = fetch.certificate
        expiry = judge_expiry(cert, self.now) if cert is not None else None
        if expiry is not None and not expiry.expired:  # judged by its own lifetime
            self.add(
                "policy-certificate-expiring",
                _WARN,
                fetch.host,
                _("The certificate of {host} {reason}").format(
                    host=fetch.host, reason=expiry.reason
                ),
                "RFC 8461 §3.3",
                ResultType.STS_WEBPKI_INVALID,
                _("Renew the certificate of {host} (e.g. `certbot renew`).").format(
                    host=fetch.host
                ),
            )

    def _fetch_failed(self, fetch: FetchResult, severity: Severity) -> None:
        d = self.d
        code = fetch.error_code or "http-error"
        if code == ADDRESS_NOT_ALLOWED:
            return  # said by the address-not-allowed finding; nothing was fetched
        template = _FETCH_MESSAGES.get(code, _FETCH_MESSAGES["http-error"])
        location = _(" to {location}").format(location=fetch.location) if fetch.location else ""
        message = _(template).format(
            host=fetch.host,
            url=fetch.url,
            error=say(fetch.error) if fetch.error else fetch.error,
            location=location,
            status=fetch.status_code,
            content_type=_(fetch.content_type)
            if fetch.content_type == UNRECOGNISED_MEDIA_TYPE
            else fetch.content_type or _("no Content-Type"),
        )
        if code in ("http-redirect", "content-type", "http-status", "too-large"):
            fix = advice.policy_host(d)
        elif code.startswith("tls-"):
            fix = (
                _(
                    "Serve mta-sts.{domain} with a publicly trusted, unexpired certificate "
                    "whose subjectAltName includes mta-sts.{domain} (e.g. "
                    "`certbot certonly -d mta-sts.{domain}`, or Caddy, which obtains one "
                    "automatically):"
                ).format(domain=d)
                + "\n"
                + advice.indent(generate.caddy_snippet(d))
            )
        else:
            fix = advice.policy_host(d)
        self.add(
            f"policy-fetch-{code}",
            severity,
            fetch.host,
            message,
            "RFC 8461 §3.3",
            _FETCH_TYPES.get(code, ResultType.STS_POLICY_FETCH_ERROR),
            fix,
        )

    # --- MX --------------------------------------------------------------------------

    def mx_hosts(self) -> list[MxHostResult]:
        r, d = self.r, self.d
        answer = r.mx_answer
        assert answer is not None
        patterns = r.policy.mx if r.policy else None
        if answer.status is DnsStatus.NXDOMAIN:
            self.add(
                "domain-nxdomain",
                _ERR,
                d,
                _("{domain} does not exist in DNS (NXDOMAIN).").format(domain=d),
                "RFC 5321 §5.1",
                fix=_("Check the spelling, or register and delegate the domain."),
            )
            return []
        if answer.status.temporary:
            self.add(
                "mx-dns-failure",
                _ERR,
                d,
                _("The MX lookup of {domain} failed ({failure}).").format(
                    domain=d, failure=self.dns_failure(answer)
                ),
                "RFC 5321 §5.1",
                fix=_("Make every authoritative name server answer MX queries for the domain."),
            )
            return []
        if answer.status is DnsStatus.NODATA:
            # RFC 5321 §5.1: with no MX, the domain itself is the implicit MX.
            self.add(
                "mx-implicit",
                _WARN,
                d,
                _(
                    "{domain} has no MX record; senders deliver to {domain} itself (implicit MX)."
                ).format(domain=d),
                "RFC 5321 §5.1",
                fix=_("Publish an explicit MX record, e.g. `{record}`").format(
                    record=f"{d}. 3600 IN MX 10 mx.{d}."
                ),
            )
        elif any(not m.exchange for m in answer.records):
            # RFC 7505: a null MX says the domain accepts no mail.
            self.add(
                "mx-null",
                _INFO,
                d,
                _(
                    "{domain} publishes a null MX (RFC 7505): it accepts no mail, so MTA-STS "
                    "protects nothing here."
                ).format(domain=d),
                "RFC 7505 §3",
            )
            return []
        return [
            MxHostResult(
                hostname=host,
                preference=pref,
                matched_pattern=matching_pattern(host, patterns) if patterns is not None else None,
                matches_policy=(matching_pattern(host, patterns) is not None)
                if patterns is not None
                else None,
            )
            for pref, host in mx_records(answer, d)
        ]

    def judge_mx(self) -> None:
        r, d = self.r, self.d
        policy = r.policy
        enforcing = policy is not None and policy.mode is Mode.ENFORCE
        active = policy is not None and policy.mode is not Mode.NONE
        severity = _ERR if active else _WARN
        uncovered = [h for h in r.mx_hosts if h.matches_policy is False]
        for host in uncovered:
            assert policy is not None
            fixed = advice.suggested_policy(d, [h.hostname for h in r.mx_hosts], policy)
            if enforcing:
                template = _(
                    "MX {host} is not listed in the policy's mx lines "
                    "({patterns}): senders refuse to deliver to it."
                )
            else:
                template = _(
                    "MX {host} is not listed in the policy's mx lines "
                    "({patterns}): mail to it would bounce in enforce mode."
                )
            message = template.format(host=host.hostname, patterns=", ".join(policy.mx))
            self.add(
                "mx-not-covered",
                _ERR if enforcing else _WARN,
                host.hostname,
                message,
                "RFC 8461 §4.1",
                ResultType.VALIDATION_FAILURE,
                advice.policy_file(d, fixed) + "\n" + advice.new_id_after_change(d, self.now),
            )
        if policy is not None:
            used = {h.matched_pattern for h in r.mx_hosts}
            for pattern in policy.mx:
                if r.mx_hosts and pattern not in used:
                    self.add(
                        "policy-mx-unused",
                        _INFO,
                        pattern,
                        _(
                            "The policy pattern {pattern} matches none of the current MX hosts."
                        ).format(pattern=repr(pattern)),
                        "RFC 8461 §4.1",
                    )
        for host in r.mx_hosts:
            self._judge_host(host, severity)
        self._judge_probe_limits()
        if policy is not None and active and r.mx_hosts:
            self._judge_enforceable(policy, enforcing)

    def _address_not_allowed(
        self, host: str, what: str, refused: tuple[AddressVerdict, ...] | list[AddressVerdict]
    ) -> None:
        """One finding per host whose addresses a probe policy refused (never connected)."""
        reasons = say(describe_refused(refused))
        classes = [say(AddressClass(c).label) for c in sorted({v.address_class for v in refused})]
        self.add(
            ADDRESS_NOT_ALLOWED,
            _ERR,
            host,
            _(
                "{what} {host} resolves to {reasons}. This service does not connect to "
                "loopback, private, link-local, shared, multicast, reserved or other "
                "non-public addresses, so that address was not checked; senders on the "
                "internet cannot reach it either."
            ).format(what=what, host=host, reasons=reasons),
            "RFC 6890",
            fix=_(
                "Publish only public addresses for {host} (remove its {classes} A/AAAA "
                "records). If it is an internal relay of this service, its operator can "
                "allow the network (probe_allowed_networks)."
            ).format(host=host, classes=_(" and ").join(classes)),
        )

    def _judge_probe_limits(self) -> None:
        """Say what a probe policy's fan-out cap left unprobed."""
        r = self.r
        skipped = [h.hostname for h in r.mx_hosts if h.skipped]
        if skipped:
            probed = len(r.mx_hosts) - len(skipped)
            self.add(
                PROBE_LIMIT,
                _WARN,
                self.d,
                _(
                    "Only the {probed} most preferred of {total} MX hosts were checked "
                    "(the limit per check); not checked: {skipped}."
                ).format(probed=probed, total=len(r.mx_hosts), skipped=", ".join(skipped)),
                "RFC 8461 §4",
                fix=_(
                    "Check the remaining MX hosts yourself (e.g. `mtasts check`) before "
                    "enforcing, or publish fewer MX hosts."
                ),
            )
        for h in r.mx_hosts:
            if h.unprobed:
                self.add(
                    PROBE_LIMIT,
                    _WARN,
                    h.hostname,
                    _(
                        "MX {host} has more addresses than are checked per MX host; "
                        "not checked: {addresses}."
                    ).format(host=h.hostname, addresses=", ".join(h.unprobed)),
                    "RFC 8461 §4.2",
                )

    def _judge_host(self, host: MxHostResult, severity: Severity) -> None:
        name = host.hostname
        if host.refused:
            self._address_not_allowed(name, "MX", host.refused)
        answer = host.addresses
        if answer is not None and not answer.addresses:
            self.add(
                "mx-no-address",
                _ERR,
                name,
                _(
                    "MX {host} has no A or AAAA record ({status}); mail cannot be delivered to it."
                ).format(host=name, status=answer.status),
                "RFC 5321 §5.1",
                fix=_("Publish an A/AAAA record for {host}, or remove it from the MX set.").format(
                    host=name
                ),
            )
            return
        # one finding per (host, code), naming every address concerned
        grouped: dict[str, tuple[ResultType | None, str, list[str]]] = {}
        for p in host.probes:
            for code, rtype, message in self._probe_problems(p):
                entry = grouped.setdefault(code, (rtype, message, []))
                entry[2].append(p.address)
        for code, (rtype, message, ips) in grouped.items():
            sev = _WARN if code in ("mx-unreachable", "mx-certificate-expiring") else severity
            where = f" [{', '.join(ips)}]" if len(host.probes) > 1 else ""
            fix = _PROBE_FIXES.get(code)
            self.add(
                code,
                sev,
                name,
                f"MX {name}{where}: {message}",
                "RFC 8461 §4.2" if code != "mx-starttls-missing" else "RFC 8461 §4.2, RFC 3207",
                rtype,
                _(fix).format(host=name) if fix else None,
            )

    def _probe_problems(self, p: ProbeResult) -> list[tuple[str, ResultType | None, str]]:
        out: list[tuple[str, ResultType | None, str]] = []
        cert = p.certificate
        fields = {
            "error": say(p.error) if p.error else p.error,
            "tls_version": p.tls_version,
            "not_after": f"{cert.not_after:%Y-%m-%d}" if cert else "?",
            "not_before": f"{cert.not_before:%Y-%m-%d}" if cert else "?",
        }
        if p.error_code is not None:
            code, rtype, template = _PROBE_FINDINGS.get(
                p.error_code,
                ("mx-tls-handshake-failed", ResultType.VALIDATION_FAILURE, "{error}"),
            )
            out.append((code, rtype, _(template).format(**fields)))
        if cert is not None and p.hostname_match is False:
            names = ", ".join(cert.subject_alt_names) or _("none")
            out.append(
                (
                    "mx-certificate-host-mismatch",
                    ResultType.CERTIFICATE_HOST_MISMATCH,
                    _("The certificate names {names}, not {host} (RFC 6125 match).").format(
                        names=names, host=p.host
                    ),
                )
            )
        expiry = judge_expiry(cert, self.now) if cert is not None else None
        if expiry is not None and not expiry.expired:  # judged by its own lifetime
            reason = _("The certificate {reason}").format(reason=expiry.reason)
            out.append(("mx-certificate-expiring", None, reason))
        return out

    def _judge_enforceable(self, policy: Policy, enforcing: bool) -> None:
        r, d = self.r, self.d
        probed = any(h.probes for h in r.mx_hosts)
        usable = [h for h in r.mx_hosts if h.matches_policy and (h.tls_ok or not probed)]
        if usable:
            return
        failing = enforce_failures(r.mx_hosts, r.findings)
        named = "; ".join(
            f"{host} ({', '.join(enforce_reason(f) for f in found)})" for host, found in failing
        )
        if enforcing:
            message = _(
                "No MX host is both listed in the policy and passing STARTTLS/certificate "
                "checks: MTA-STS senders cannot deliver any mail to this domain."
            )
        else:
            message = _(
                "No MX host is both listed in the policy and passing STARTTLS/certificate "
                "checks: switching to enforce would stop all mail from MTA-STS senders."
            )
        if named:
            message += " " + _("Failing: {hosts}.").format(hosts=named)
        steps = [
            f"- {host}: {found[0].fix.splitlines()[0] if found[0].fix else found[0].message}"
            for host, found in failing
        ]
        self.add(
            "policy-cannot-enforce",
            _ERR if enforcing else _WARN,
            d,
            message,
            "RFC 8461 §5",
            ResultType.VALIDATION_FAILURE,
            _("Keep `mode: testing` until at least one MX host listed in the policy passes")
            + (":\n" + "\n".join(steps) if steps else "."),
        )

    # --- TLS-RPT ---------------------------------------------------------------------

    def judge_tlsrpt(self) -> None:
        r, d = self.r, self.d
        answer = r.tlsrpt_answer
        assert answer is not None
        subject = f"_smtp._tls.{d}"
        if answer.status.temporary:
            self.add(
                "tlsrpt-dns-failure",
                _WARN,
                subject,
                _("The TXT lookup of {subject} failed ({failure}).").format(
                    subject=subject, failure=self.dns_failure(answer)
                ),
                "RFC 8460 §3",
            )
            return
        try:
            r.tlsrpt = select_tlsrpt_record(answer.records, domain=d)
        except TlsRptRecordError as exc:
            missing = exc.code == "tlsrpt-missing"
            message = (
                _(
                    "{subject} has no TLS-RPT record: senders cannot tell you when TLS to your "
                    "MX hosts fails."
                ).format(subject=subject)
                if missing
                else say(exc.message)
                + ". "
                + _("The owner asked for reports and will get none: senders ignore the record.")
            )
            self.add(
                exc.code,
                # RFC 8460 §3: a record published but unusable is an error (reports were
                # asked for and none will come); no record at all is only a warning.
                _WARN if missing else _ERR,
                subject,
                message,
                exc.rfc,
                fix=say(exc.fix) if exc.fix and not missing else advice.tlsrpt_record(d),
            )
            return
        for note in r.tlsrpt.notes:
            self.add(
                note.code, _WARN, subject, say(note.message), note.rfc, fix=advice.tlsrpt_record(d)
            )


def mx_records(answer: MxAnswer, domain: str) -> list[tuple[int, str]]:
    """(preference, host) of the hosts senders deliver ``domain``'s mail to, as the answer
    lists them: none for a domain that does not exist, a failed look-up or a null MX."""
    if answer.status is DnsStatus.NODATA:
        return [(0, domain)]  # RFC 5321 §5.1: the domain itself is the implicit MX
    if answer.status is not DnsStatus.OK or any(not m.exchange for m in answer.records):
        return []  # RFC 7505 §3: a null MX accepts no mail
    return [(m.preference, m.exchange) for m in answer.records]
