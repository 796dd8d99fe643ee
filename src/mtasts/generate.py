"""Records, policy file and web-server snippets derived from a domain's live MX set."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from mtasts.protocol.policy import Mode, Policy

DEFAULT_MAX_AGE = 604_800  # one week: long enough to protect, short enough to change
MIN_MAX_AGE = 86_400  # below a day a policy protects little; RFC 8461 §3.2 advises weeks
POLICY_PATH = "/.well-known/mta-sts.txt"  # RFC 8461 §3.3


def policy_id(now: datetime) -> str:
    """A fresh policy id: a UTC timestamp, 1-32 letters and digits (RFC 8461 §3.1)."""
    return now.strftime("%Y%m%dT%H%M%S")


def policy_from_mx(
    mx_hosts: Sequence[str], mode: Mode = Mode.TESTING, max_age: int = DEFAULT_MAX_AGE
) -> Policy:
    """A policy naming each MX host exactly (no wildcard is added: a wildcard would also
    cover hosts the owner does not run)."""
    seen: dict[str, None] = {}
    for host in mx_hosts:
        if host:
            seen.setdefault(host.lower().rstrip("."), None)
    return Policy(version="STSv1", mode=mode, max_age=max_age, mx=tuple(seen))


def sts_txt(domain: str, pid: str) -> str:
    """The `_mta-sts` record in zone-file form (RFC 8461 §3.1)."""
    return f'_mta-sts.{domain}. 3600 IN TXT "v=STSv1; id={pid}"'


def tlsrpt_txt(domain: str, rua: Sequence[str]) -> str:
    """The `_smtp._tls` record in zone-file form (RFC 8460 §3)."""
    return f'_smtp._tls.{domain}. 3600 IN TXT "v=TLSRPTv1; rua={",".join(rua)}"'


def default_rua(domain: str) -> str:
    return f"mailto:tlsrpt@{domain}"


WEBROOT = "/var/www/mta-sts"  # holds .well-known/mta-sts.txt


def nginx_snippet(domain: str, webroot: str = WEBROOT) -> str:
    """An nginx server block that serves the policy as text/plain with no redirect
    (RFC 8461 §3.3: senders do not follow redirects and require media type text/plain)."""
    return f"""server {{
    listen 443 ssl;
    listen [::]:443 ssl;
    server_name mta-sts.{domain};
    ssl_certificate     /etc/letsencrypt/live/mta-sts.{domain}/fullchain.pem;
    ssl_certificate_key /etc/letsencrypt/live/mta-sts.{domain}/privkey.pem;
    root {webroot};

    location = {POLICY_PATH} {{
        types {{ }}
        default_type "text/plain; charset=utf-8";
    }}
    location / {{
        return 404;
    }}
}}"""


def caddy_snippet(domain: str, webroot: str = WEBROOT) -> str:
    """A Caddyfile site serving the policy as text/plain, with Caddy's automatic HTTPS."""
    return f"""mta-sts.{domain} {{
    handle {POLICY_PATH} {{
        root * {webroot}
        header Content-Type "text/plain; charset=utf-8"
        file_server
    }}
    handle {{
        respond 404
    }}
}}"""


@dataclass(frozen=True)
class Publication:
    """Everything an owner publishes to deploy MTA-STS and TLS-RPT for one domain."""

    domain: str
    policy: Policy
    policy_id: str
    rua: tuple[str, ...]

    @property
    def sts_record(self) -> str:
        return sts_txt(self.domain, self.policy_id)

    @property
    def tlsrpt_record(self) -> str:
        return tlsrpt_txt(self.domain, self.rua)

    @property
    def policy_url(self) -> str:
        return f"https://mta-sts.{self.domain}{POLICY_PATH}"

    @property
    def nginx(self) -> str:
        return nginx_snippet(self.domain)

    @property
    def caddy(self) -> str:
        return caddy_snippet(self.domain)


def publication(
    domain: str,
    mx_hosts: Sequence[str],
    now: datetime,
    *,
    mode: Mode = Mode.TESTING,
    max_age: int = DEFAULT_MAX_AGE,
    rua: Sequence[str] = (),
) -> Publication:
    return Publication(
        domain=domain,
        policy=policy_from_mx(mx_hosts, mode, max_age),
        policy_id=policy_id(now),
        rua=tuple(rua) or (default_rua(domain),),
    )
