"""A whole loopback world: test CA, DNS, one HTTPS policy host and one SMTP server per
behaviour, all in one event loop (one background thread, or the caller's loop).

Every behaviour has its own loopback address; all SMTP servers share one port and the HTTPS
server has one port, because a check run takes a single ``smtp_port`` and ``https_port``.

    with World(tmp_path) as world:
        domains = world.add_domains(100)                 # d0001.lab.test ... all valid
        world.add_domain("old.test", mx_profile="tls11")  # MX speaks TLS 1.1 only
        world.add_domain("exp.test", https="expired")     # policy host cert expired
        Resolver([world.nameserver]); CheckOptions(ca_file=world.ca_file,
            https_port=world.https_port, smtp_port=world.smtp_port)
        subprocess.run(["mtasts", "check", *domains, *world.cli_args()])

A domain added with defaults publishes ``_mta-sts`` and ``_smtp._tls`` TXT records, an MX
``mx1.<domain>`` on the "good" SMTP server, ``mta-sts.<domain>`` on the HTTPS server, an
``enforce`` policy listing the MX, and certificates issued on demand (by SNI) by the CA.

SMTP profiles (``mx_profile``, one address each, see SMTP_PROFILES): good, no-starttls,
tls11, starttls-454, bad-banner, ehlo-fail, silent, tls-broken, tls-stall, hang-up, expired,
not-yet-valid, untrusted, self-signed, wrong-name, and "down" (nothing listens). HTTPS
profiles (``https``): good, expired, not-yet-valid, untrusted, self-signed, wrong-name, down,
or any :class:`~tests.lab.httpsserver.Site`. ``python -m tests.lab`` runs a world in a
process of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tests.lab._background import LabServer
from tests.lab.ca import Leaf, TestCA
from tests.lab.dnsserver import DnsServer, Zone
from tests.lab.httpsserver import HttpsServer, Site
from tests.lab.ports import free_port, ipv6_available, loopback
from tests.lab.smtpserver import SmtpBehaviour, SmtpServer
from tests.lab.tls import CertStore

DNS_IP = loopback(53)
HTTPS_IP = loopback(2)
DOWN_IP = loopback(254)  # nothing ever listens here: "connection refused"
IPV6 = "::1"

# SMTP profile -> (address, behaviour, certificate kind)
CertKind = Literal["good", "expired", "not-yet-valid", "untrusted", "self-signed", "wrong-name"]
SMTP_PROFILES: dict[str, tuple[str, SmtpBehaviour, CertKind]] = {
    "good": (loopback(10), SmtpBehaviour.GOOD, "good"),
    "no-starttls": (loopback(11), SmtpBehaviour.NO_STARTTLS, "good"),
    "tls11": (loopback(12), SmtpBehaviour.TLS11, "good"),
    "starttls-454": (loopback(13), SmtpBehaviour.STARTTLS_454, "good"),
    "bad-banner": (loopback(14), SmtpBehaviour.BAD_BANNER, "good"),
    "ehlo-fail": (loopback(15), SmtpBehaviour.EHLO_FAIL, "good"),
    "silent": (loopback(16), SmtpBehaviour.SILENT, "good"),
    "tls-broken": (loopback(17), SmtpBehaviour.TLS_BROKEN, "good"),
    "expired": (loopback(18), SmtpBehaviour.GOOD, "expired"),
    "not-yet-valid": (loopback(19), SmtpBehaviour.GOOD, "not-yet-valid"),
    "untrusted": (loopback(20), SmtpBehaviour.GOOD, "untrusted"),
    "self-signed": (loopback(21), SmtpBehaviour.GOOD, "self-signed"),
    "wrong-name": (loopback(22), SmtpBehaviour.GOOD, "wrong-name"),
    "tls-stall": (loopback(23), SmtpBehaviour.TLS_STALL, "good"),
    "hang-up": (loopback(24), SmtpBehaviour.HANG_UP, "good"),
}
SmtpProfile = str  # a key of SMTP_PROFILES, or "down"
HttpsProfile = Literal[
    "good", "expired", "not-yet-valid", "untrusted", "self-signed", "wrong-name", "down"
]
WRONG_NAME = "wrong-name.lab.invalid"


@dataclass(frozen=True)
class LabDomain:
    """What ``World.add_domain`` published."""

    name: str
    mx_hosts: tuple[str, ...]
    policy: str | None
    record: str | None
    tlsrpt: str | None

    @property
    def policy_host(self) -> str:
        return f"mta-sts.{self.name}"


class World(LabServer):
    """CA + DNS + HTTPS + SMTP servers on loopback; see the module docstring."""

    name = "lab-world"

    def __init__(
        self,
        directory: str | Path,
        *,
        delay: float = 0.0,
        ipv6: bool | None = None,
        smtp_profiles: Sequence[str] | None = None,
        ca: TestCA | None = None,
        untrusted_ca: TestCA | None = None,
        real_ports: bool = False,
    ) -> None:
        """``delay``: seconds per DNS answer and per TCP connection (HTTPS and SMTP), the
        round trip a benchmark wants; ``ipv6``: also serve the good SMTP and the HTTPS
        server on ::1 (default: when available); ``smtp_profiles``: which SMTP servers to
        run (default all); ``ca``/``untrusted_ca``: CAs to share (default: new ones in
        ``directory``); ``real_ports``: listen on 53, 443 and 25 as real servers do (only
        inside a private network namespace, as root)."""
        super().__init__()
        directory = Path(directory)
        self.directory = directory
        self.ca = ca or TestCA(directory / "ca")
        self.untrusted_ca = untrusted_ca or TestCA.untrusted(directory / "untrusted")
        self.ipv6 = ipv6_available() if ipv6 is None else ipv6
        self.zone = Zone()
        self.dns = DnsServer(self.zone, host=DNS_IP, port=53 if real_ports else 0, delay=delay)
        self.default_leaf = self.ca.issue(["default.lab.test"])
        https_hosts = [HTTPS_IP] + ([IPV6] if self.ipv6 else [])
        self.https_port = 443 if real_ports else free_port([*https_hosts, DOWN_IP])
        self.https = HttpsServer(
            CertStore(self.default_leaf, ca=self.ca),
            host=https_hosts,
            port=self.https_port,
            delay=delay,
        )
        profiles = list(SMTP_PROFILES) if smtp_profiles is None else list(smtp_profiles)
        smtp_ips = [SMTP_PROFILES[p][0] for p in profiles]
        extra = [IPV6] if self.ipv6 and "good" in profiles else []
        self.smtp_port = 25 if real_ports else free_port([*smtp_ips, *extra, DOWN_IP])
        self.smtp: dict[str, SmtpServer] = {}
        for p in profiles:
            ip, behaviour, kind = SMTP_PROFILES[p]
            self.smtp[p] = SmtpServer(
                self._cert_store(kind),
                host=[ip, *extra] if p == "good" else ip,
                port=self.smtp_port,
                behaviour=behaviour,
                hostname=f"{p}.smtp.lab.test",
                delay=delay,
            )
        self.domains: dict[str, LabDomain] = {}
        self._counter = 0

    # --- wiring -------------------------------------------------------------------------

    def _issuer(self, kind: CertKind) -> Callable[[list[str]], Leaf] | None:
        if kind == "good":
            return self.ca.issue
        if kind == "expired":
            return self.ca.issue_expired
        if kind == "not-yet-valid":
            return self.ca.issue_not_yet_valid
        if kind == "untrusted":
            return self.untrusted_ca.issue
        if kind == "self-signed":
            return lambda names: self.ca.issue(names, self_signed=True)
        return None  # wrong-name: the default leaf names WRONG_NAME only

    def _cert_store(self, kind: CertKind) -> CertStore:
        if kind == "wrong-name":
            return CertStore(self.ca.issue([WRONG_NAME]))
        return CertStore(self.default_leaf, issuer=self._issuer(kind))

    def leaf(self, kind: CertKind, names: list[str]) -> Leaf:
        """A leaf of ``kind`` for ``names`` (wrong-name: for WRONG_NAME instead)."""
        issuer = self._issuer(kind)
        return issuer(names) if issuer is not None else self.ca.issue([WRONG_NAME])

    @property
    def nameserver(self) -> str:
        """ "127.0.0.53:PORT" for Resolver([...]) and ``--nameserver``."""
        return self.dns.address

    @property
    def ca_file(self) -> str:
        return self.ca.ca_file

    def smtp_ip(self, profile: SmtpProfile) -> str:
        return DOWN_IP if profile == "down" else SMTP_PROFILES[profile][0]

    def cli_args(self) -> list[str]:
        """Options for ``mtasts check`` so it checks against this world."""
        return [
            "--nameserver",
            self.nameserver,
            "--ca-file",
            self.ca_file,
            "--https-port",
            str(self.https_port),
            "--smtp-port",
            str(self.smtp_port),
        ]

    # --- domains ------------------------------------------------------------------------

    def add_domain(
        self,
        domain: str,
        *,
        mode: str = "enforce",
        mx_profile: SmtpProfile = "good",
        mx_count: int = 1,
        https: HttpsProfile | Site = "good",
        policy: str | None = "",
        record: str | None = "",
        tlsrpt: str | None = "",
        max_age: int = 86400,
        policy_id: str = "20240601T000000",
        ipv6: bool = False,
    ) -> LabDomain:
        """Publish ``domain``. MX hosts ``mx1..mxN.<domain>`` point at the SMTP server of
        ``mx_profile`` ("down": an address where nothing listens). ``https`` picks the
        certificate of mta-sts.<domain> (or "down", or a full :class:`Site`). ``policy``,
        ``record`` and ``tlsrpt`` replace the generated texts ("" = generated, None = not
        published). ``ipv6`` adds AAAA ::1 for the policy host and the MX hosts (only the
        good SMTP profile and HTTPS listen there)."""
        d = domain.lower().rstrip(".")
        z = self.zone
        mx_hosts = tuple(f"mx{i}.{d}" for i in range(1, mx_count + 1))
        for i, host in enumerate(mx_hosts, start=1):
            z.add(d, "MX", f"{10 * i} {host}.")
            z.add(host, "A", self.smtp_ip(mx_profile))
            if ipv6 and self.ipv6:
                z.add(host, "AAAA", IPV6)
        if record == "":
            record = f"v=STSv1; id={policy_id}"
        if record is not None:
            z.add(f"_mta-sts.{d}", "TXT", record)
        if tlsrpt == "":
            tlsrpt = f"v=TLSRPTv1; rua=mailto:tlsrpt@{d}"
        if tlsrpt is not None:
            z.add(f"_smtp._tls.{d}", "TXT", tlsrpt)
        policy_host = f"mta-sts.{d}"
        z.add(policy_host, "A", DOWN_IP if https == "down" else HTTPS_IP)
        if ipv6 and self.ipv6 and https != "down":
            z.add(policy_host, "AAAA", IPV6)
        if policy == "":
            lines = ["version: STSv1", f"mode: {mode}"]
            lines += [f"mx: {h}" for h in mx_hosts]
            lines.append(f"max_age: {max_age}")
            policy = "\r\n".join(lines) + "\r\n"  # RFC 8461 §3.2: CRLF
        if isinstance(https, Site):
            self.https.site(policy_host, https)
        elif policy is not None:
            self.https.policy(d, policy)
        if isinstance(https, str) and https != "good" and https != "down":
            self.https.certificate(self.leaf(https, [policy_host]), (policy_host,))
        lab_domain = LabDomain(d, mx_hosts, policy, record, tlsrpt)
        self.domains[d] = lab_domain
        return lab_domain

    def add_domains(self, n: int, *, suffix: str = "lab.test", **options: object) -> list[str]:
        """Publish ``n`` valid domains d0001.<suffix>...; returns their names."""
        names = []
        for _ in range(n):
            self._counter += 1
            name = f"d{self._counter:04d}.{suffix}"
            self.add_domain(name, **options)  # type: ignore[arg-type]
            names.append(name)
        return names

    # --- lifecycle ----------------------------------------------------------------------

    def _servers(self) -> list[LabServer]:
        return [self.dns, self.https, *self.smtp.values()]

    async def astart(self) -> None:
        started: list[LabServer] = []
        try:
            for s in self._servers():
                await s.astart()
                started.append(s)
        except BaseException:
            for s in reversed(started):
                await s.astop()
            raise

    async def astop(self) -> None:
        for s in reversed(self._servers()):
            await s.astop()
