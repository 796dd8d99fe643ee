"""Ready-to-paste fixes: the records, policy file and server snippets an owner needs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from mtasts import generate
from mtasts.i18n import _
from mtasts.protocol.policy import Mode, Policy


def indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line if line else line for line in text.splitlines())


def sts_record(domain: str, now: datetime) -> str:
    return (
        _("Publish exactly one TXT record at _mta-sts (a new id whenever the policy changes):")
        + "\n"
        + indent(generate.sts_txt(domain, generate.policy_id(now)))
    )


def policy_file(domain: str, policy: Policy) -> str:
    return (
        _("Serve this file at {url} (HTTP 200, Content-Type: text/plain, no redirect):").format(
            url=f"https://mta-sts.{domain}{generate.POLICY_PATH}"
        )
        + "\n"
        + indent(policy.serialize().replace("\r\n", "\n").rstrip("\n"))
    )


def policy_host(domain: str) -> str:
    return (
        _(
            "Point mta-sts.{domain} (A/AAAA, or a CNAME) at a web server with a publicly "
            "trusted certificate for mta-sts.{domain}, serving the policy with no redirect. "
            "nginx:"
        ).format(domain=domain)
        + "\n"
        + indent(generate.nginx_snippet(domain))
        + "\n"
        + _("or Caddy (certificate obtained automatically):")
        + "\n"
        + indent(generate.caddy_snippet(domain))
    )


def suggested_policy(domain: str, mx_hosts: Sequence[str], current: Policy | None) -> Policy:
    """The live MX set in a policy that keeps the owner's mode and max_age when known."""
    mode = current.mode if current else Mode.TESTING
    max_age = current.max_age if current else generate.DEFAULT_MAX_AGE
    return generate.policy_from_mx(mx_hosts, mode, max_age)


def publish_all(domain: str, mx_hosts: Sequence[str], now: datetime) -> str:
    """Everything needed to go from nothing to a working policy in testing mode."""
    policy = suggested_policy(domain, mx_hosts, None)
    return "\n".join(
        [
            "1. " + policy_file(domain, policy),
            "2. " + policy_host(domain),
            "3. " + sts_record(domain, now),
            "4. " + tlsrpt_record(domain),
            _("Or let mtasts write them: {command}").format(
                command=f"mtasts generate {domain} --write ./mta-sts"
            ),
        ]
    )


def tlsrpt_record(domain: str) -> str:
    return (
        _("Publish a TLS-RPT record so senders mail you daily reports of TLS failures:")
        + "\n"
        + indent(generate.tlsrpt_txt(domain, [generate.default_rua(domain)]))
    )


def new_id_after_change(domain: str, now: datetime) -> str:
    return (
        _(
            "After changing the policy file, give the TXT record a new id so senders refetch "
            "it (RFC 8461 §3.1):"
        )
        + "\n"
        + indent(generate.sts_txt(domain, generate.policy_id(now)))
    )
