"""Plain-language meaning and likely fix of each TLS-RPT result type (RFC 8460 §4.3)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Explanation:
    title: str
    meaning: str
    fix: str
    rfc: str


EXPLANATIONS: dict[str, Explanation] = {
    # RFC 8460 §4.3.1: negotiation failures
    "starttls-not-supported": Explanation(
        "STARTTLS not offered",
        "The sender connected to your MX but it did not offer STARTTLS, so no TLS session "
        "could be made.",
        "Enable STARTTLS on the MX (e.g. Postfix smtpd_tls_security_level = may with a "
        "certificate) and check that no firewall or middlebox strips it from the EHLO reply.",
        "RFC 8460 §4.3.1",
    ),
    "certificate-host-mismatch": Explanation(
        "Certificate name mismatch",
        "The MX presented a certificate that does not name the MX host the sender connected to.",
        "Install a certificate whose subjectAltName covers the MX host name (e.g. "
        "mx1.example.com), or list in the policy only MX names the certificate covers.",
        "RFC 8460 §4.3.1",
    ),
    "certificate-expired": Explanation(
        "Certificate expired",
        "The MX presented a certificate past its expiry date.",
        "Renew the MX certificate (and make renewal automatic, e.g. an ACME client with a "
        "reload hook for the mail server).",
        "RFC 8460 §4.3.1",
    ),
    "certificate-not-trusted": Explanation(
        "Certificate not trusted",
        "The MX certificate does not chain to a CA the sender trusts: self-signed, a private "
        "CA, or a missing intermediate certificate.",
        "Use a certificate from a public CA and configure the full chain (leaf + intermediates).",
        "RFC 8460 §4.3.1",
    ),
    "validation-failure": Explanation(
        "Validation failure",
        "The sender could not validate the MX against the policy for a reason not listed "
        "separately (often: the MX is not in the policy's mx lines).",
        "Check that every MX host is listed in the policy and passes STARTTLS with a valid "
        "certificate; `mtasts check` names the exact problem.",
        "RFC 8460 §4.3.1",
    ),
    # RFC 8460 §4.3.2: DANE/DNSSEC
    "tlsa-invalid": Explanation(
        "TLSA record invalid",
        "A DANE TLSA record for the MX was invalid or did not match the certificate.",
        "Publish TLSA records that match the MX certificate (update them before rolling keys).",
        "RFC 8460 §4.3.2.1",
    ),
    "dnssec-invalid": Explanation(
        "DNSSEC invalid",
        "DNSSEC validation of the domain or MX records failed.",
        "Fix the DNSSEC chain (DS at the parent, valid signatures, no expired RRSIGs).",
        "RFC 8460 §4.3.2.2",
    ),
    "dane-required": Explanation(
        "DANE required",
        "The sender requires DANE for this domain and found no usable TLSA records.",
        "Publish TLSA records for the MX hosts in a DNSSEC-signed zone.",
        "RFC 8460 §4.3.2.3",
    ),
    # RFC 8460 §4.3.2: MTA-STS
    "sts-policy-fetch-error": Explanation(
        "MTA-STS policy could not be fetched",
        "The sender found the _mta-sts TXT record but could not fetch "
        "https://mta-sts.<domain>/.well-known/mta-sts.txt (DNS, TCP, TLS or HTTP error).",
        "Make the policy host answer over HTTPS with a valid certificate and status 200; "
        "`mtasts check` shows which step fails.",
        "RFC 8460 §4.3.2.4",
    ),
    "sts-policy-invalid": Explanation(
        "MTA-STS policy invalid",
        "The policy file was fetched but could not be parsed or is not valid.",
        "Serve a policy with version, mode, mx and max_age lines (text/plain, CRLF); "
        "`mtasts generate` writes one.",
        "RFC 8460 §4.3.2.5",
    ),
    "sts-webpki-invalid": Explanation(
        "Policy host certificate invalid",
        "The certificate of mta-sts.<domain> is not valid for the sender (expired, untrusted "
        "or wrong name).",
        "Install a valid public certificate for mta-sts.<domain>.",
        "RFC 8460 §4.3.2.6",
    ),
}


def explain(result_type: str) -> Explanation:
    """The explanation of ``result_type``; a generic one for types this version does not
    know (senders may add new ones, RFC 8460 §4.3)."""
    known = EXPLANATIONS.get(result_type)
    if known is not None:
        return known
    return Explanation(
        result_type,
        f"The sender reported the result type {result_type!r}, which is not defined in RFC 8460.",
        "Look at the failure details (additional information) of the report.",
        "RFC 8460 §4.3",
    )
