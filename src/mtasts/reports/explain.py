"""Plain-language meaning and likely fix of each TLS-RPT result type (RFC 8460 §4.3)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from mtasts.i18n import N_, _


@dataclass(frozen=True)
class Explanation:
    title: str
    meaning: str
    fix: str
    rfc: str


EXPLANATIONS: dict[str, Explanation] = {
    # RFC 8460 §4.3.1: negotiation failures
    "starttls-not-supported": Explanation(
        N_("STARTTLS not offered"),
        N_(
            "The sender connected to your MX but it did not offer STARTTLS, so no TLS session "
            "could be made."
        ),
        N_(
            "Enable STARTTLS on the MX (e.g. Postfix smtpd_tls_security_level = may with a "
            "certificate) and check that no firewall or middlebox strips it from the EHLO reply."
        ),
        "RFC 8460 §4.3.1",
    ),
    "certificate-host-mismatch": Explanation(
        N_("Certificate name mismatch"),
        N_(
            "The MX presented a certificate that does not name the MX host the sender connected to."
        ),
        N_(
            "Install a certificate whose subjectAltName covers the MX host name (e.g. "
            "mx1.example.com), or list in the policy only MX names the certificate covers."
        ),
        "RFC 8460 §4.3.1",
    ),
    "certificate-expired": Explanation(
        N_("Certificate expired"),
        N_("The MX presented a certificate past its expiry date."),
        N_(
            "Renew the MX certificate (and make renewal automatic, e.g. an ACME client with a "
            "reload hook for the mail server)."
        ),
        "RFC 8460 §4.3.1",
    ),
    "certificate-not-trusted": Explanation(
        N_("Certificate not trusted"),
        N_(
            "The MX certificate does not chain to a CA the sender trusts: self-signed, a private "
            "CA, or a missing intermediate certificate."
        ),
        N_(
            "Use a certificate from a public CA and configure the full chain "
            "(leaf + intermediates)."
        ),
        "RFC 8460 §4.3.1",
    ),
    "validation-failure": Explanation(
        N_("Validation failure"),
        N_(
            "The sender could not validate the MX against the policy for a reason not listed "
            "separately (often: the MX is not in the policy's mx lines)."
        ),
        N_(
            "Check that every MX host is listed in the policy and passes STARTTLS with a valid "
            "certificate; `mtasts check` names the exact problem."
        ),
        "RFC 8460 §4.3.1",
    ),
    # RFC 8460 §4.3.2: DANE/DNSSEC
    "tlsa-invalid": Explanation(
        N_("TLSA record invalid"),
        N_("A DANE TLSA record for the MX was invalid or did not match the certificate."),
        N_("Publish TLSA records that match the MX certificate (update them before rolling keys)."),
        "RFC 8460 §4.3.2.1",
    ),
    "dnssec-invalid": Explanation(
        N_("DNSSEC invalid"),
        N_("DNSSEC validation of the domain or MX records failed."),
        N_("Fix the DNSSEC chain (DS at the parent, valid signatures, no expired RRSIGs)."),
        "RFC 8460 §4.3.2.2",
    ),
    "dane-required": Explanation(
        N_("DANE required"),
        N_("The sender requires DANE for this domain and found no usable TLSA records."),
        N_("Publish TLSA records for the MX hosts in a DNSSEC-signed zone."),
        "RFC 8460 §4.3.2.3",
    ),
    # RFC 8460 §4.3.2: MTA-STS
    "sts-policy-fetch-error": Explanation(
        N_("MTA-STS policy could not be fetched"),
        N_(
            "The sender found the _mta-sts TXT record but could not fetch "
            "https://mta-sts.<domain>/.well-known/mta-sts.txt (DNS, TCP, TLS or HTTP error)."
        ),
        N_(
            "Make the policy host answer over HTTPS with a valid certificate and status 200; "
            "`mtasts check` shows which step fails."
        ),
        "RFC 8460 §4.3.2.4",
    ),
    "sts-policy-invalid": Explanation(
        N_("MTA-STS policy invalid"),
        N_("The policy file was fetched but could not be parsed or is not valid."),
        N_(
            "Serve a policy with version, mode, mx and max_age lines (text/plain, CRLF); "
            "`mtasts generate` writes one."
        ),
        "RFC 8460 §4.3.2.5",
    ),
    "sts-webpki-invalid": Explanation(
        N_("Policy host certificate invalid"),
        N_(
            "The certificate of mta-sts.<domain> is not valid for the sender (expired, untrusted "
            "or wrong name)."
        ),
        N_("Install a valid public certificate for mta-sts.<domain>."),
        "RFC 8460 §4.3.2.6",
    ),
}


def explain(result_type: str) -> Explanation:
    """The explanation of ``result_type`` in the current language; a generic one for types
    this version does not know (senders may add new ones, RFC 8460 §4.3)."""
    known = EXPLANATIONS.get(result_type)
    if known is not None:
        return replace(known, title=_(known.title), meaning=_(known.meaning), fix=_(known.fix))
    return Explanation(
        result_type,
        _(
            "The sender reported the result type {result_type}, which is not defined in RFC 8460."
        ).format(result_type=repr(result_type)),
        _("Look at the failure details (additional information) of the report."),
        "RFC 8460 §4.3",
    )
