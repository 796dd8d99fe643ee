"""DNS lookups with dnspython: explicit nameservers, CNAME chains reported, and the
outcomes NXDOMAIN, NODATA, SERVFAIL and timeout told apart."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import dns._features

# mtasts asks plain DNS over UDP/TCP only. Without this, dnspython imports its DNS over
# HTTPS/QUIC stacks (httpx2, h2, aioquic) whenever they happen to be installed (e.g. with
# checkdmarc next to mtasts): a tenth of a second at every start of `mtasts check`.
_force = getattr(dns._features, "force", None)  # dnspython >= 2.4
for _feature in ("doh", "doq"):
    if _force is not None:
        _force(_feature, False)

import dns.asyncresolver  # noqa: E402 - after the features are settled
import dns.exception  # noqa: E402
import dns.message  # noqa: E402
import dns.name  # noqa: E402
import dns.nameserver  # noqa: E402
import dns.rdataclass  # noqa: E402
import dns.rdatatype  # noqa: E402
import dns.resolver  # noqa: E402

from mtasts.protocol.errors import Text  # noqa: E402

DEFAULT_PORT = 53
MAX_CHAIN = 16  # CNAME hops we report at most
ATTEMPT_TIMEOUT = 2.0  # one try at one server; ``timeout`` bounds the whole lookup


class DnsStatus(StrEnum):
    OK = "OK"
    NXDOMAIN = "NXDOMAIN"
    NODATA = "NODATA"
    SERVFAIL = "SERVFAIL"
    TIMEOUT = "TIMEOUT"
    ERROR = "ERROR"  # anything else (REFUSED, malformed answer, no nameservers...)

    @property
    def temporary(self) -> bool:
        """True for outcomes a sender treats as a temporary failure (RFC 8461 §3.3)."""
        return self in (DnsStatus.SERVFAIL, DnsStatus.TIMEOUT, DnsStatus.ERROR)


@dataclass(frozen=True)
class DnsAnswer:
    """One lookup. ``records`` holds the answer in presentation-like text:
    TXT -> each record's strings concatenated without separator (decoded as UTF-8 with
    errors='surrogateescape'); A/AAAA -> addresses; MX -> see MxAnswer."""

    name: str  # the name asked, as given (no trailing dot)
    rdtype: str  # "TXT", "A", "AAAA", "MX", "CNAME"
    status: DnsStatus
    records: tuple[str, ...] = ()
    cname_chain: tuple[str, ...] = ()  # names followed, in order, excluding `name`
    error: str | None = None  # human-readable detail when status is not OK
    # OK: the TTL of the answer RRset; NXDOMAIN/NODATA: how long the "no" may be cached
    # (RFC 2308 §5: the smaller of the SOA's TTL and MINIMUM), when the server sent its SOA.
    ttl: int | None = None


@dataclass(frozen=True)
class MxRecord:
    preference: int
    exchange: str  # lower case, no trailing dot; "" for a null MX (RFC 7505)


@dataclass(frozen=True)
class MxAnswer:
    name: str
    status: DnsStatus
    records: tuple[MxRecord, ...] = ()  # sorted by preference then exchange
    cname_chain: tuple[str, ...] = ()
    error: str | None = None

    @property
    def null_mx(self) -> bool:
        """RFC 7505 §3: a single MX of preference 0 and exchange "." - no mail accepted."""
        return len(self.records) == 1 and self.records[0].exchange == ""


@dataclass(frozen=True)
class AddressAnswer:
    """A and AAAA of one host, asked in parallel."""

    name: str
    a: DnsAnswer
    aaaa: DnsAnswer
    addresses: tuple[str, ...] = field(default=())  # A then AAAA

    @property
    def status(self) -> DnsStatus:
        """OK when any address was found; else the more telling of the two outcomes
        (NXDOMAIN, then a temporary failure, then NODATA)."""
        if self.addresses:
            return DnsStatus.OK
        statuses = (self.a.status, self.aaaa.status)
        if DnsStatus.NXDOMAIN in statuses:
            return DnsStatus.NXDOMAIN
        for s in statuses:
            if s.temporary:
                return s
        return DnsStatus.NODATA


def parse_nameserver(text: str) -> tuple[str, int]:
    """ "IP", "IP:PORT", "IPv6", "[IPv6]" or "[IPv6]:PORT" -> (ip, port); ValueError else."""
    s = text.strip()
    host, port = s, DEFAULT_PORT
    if s.startswith("["):
        end = s.find("]")
        if end < 0:
            raise ValueError(Text("{text!r}: missing ']'", text=text))
        host, rest = s[1:end], s[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(Text("{text!r}: expected [IPv6]:PORT", text=text))
            port = _port(rest[1:], text)
    elif s.count(":") == 1:
        host, port_text = s.split(":")
        port = _port(port_text, text)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            Text("{text!r} is not an IP address (give IP or IP:PORT)", text=text)
        ) from None
    return str(ip), port


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(Text("{whole!r}: bad port {text!r}", whole=whole, text=text))
    return int(text)


def _text(name: dns.name.Name) -> str:
    if name == dns.name.root:
        return ""
    return name.to_text(omit_final_dot=True).lower()


def _chain(response: dns.message.Message | None, qname: dns.name.Name) -> tuple[str, ...]:
    """The CNAME targets followed from ``qname`` inside ``response`` (RFC 1034 §3.6.2)."""
    if response is None:
        return ()
    out: list[str] = []
    name, seen = qname, {qname}
    for _ in range(MAX_CHAIN):
        rrset = response.get_rrset(response.answer, name, dns.rdataclass.IN, dns.rdatatype.CNAME)
        if rrset is None or len(rrset) == 0:
            break
        name = next(iter(rrset)).target
        out.append(_text(name))
        if name in seen:
            break
        seen.add(name)
    return tuple(out)


class Resolver:
    """Async resolver. ``nameservers`` are "IP" or "IP:PORT" (IPv6 as "[::1]:53");
    None means the system configuration. ``timeout`` bounds each lookup in total.

    One dnspython resolver is shared by every lookup, so one Resolver serves any number
    of concurrent lookups (each has its own socket). No search domains, no cache: names
    are always asked as given, fully qualified.
    """

    def __init__(self, nameservers: Sequence[str] | None = None, timeout: float = 5.0) -> None:
        self.timeout = timeout
        self.config_error: str | None = None
        if nameservers is None:
            try:
                resolver = dns.asyncresolver.Resolver(configure=True)
            except dns.resolver.NoResolverConfiguration as exc:
                resolver = dns.asyncresolver.Resolver(configure=False)
                self.config_error = f"no system resolver configuration: {exc}"
        else:
            resolver = dns.asyncresolver.Resolver(configure=False)
            servers: list[str | dns.nameserver.Nameserver] = []
            for ns in nameservers:
                ip, port = parse_nameserver(ns)
                servers.append(dns.nameserver.Do53Nameserver(ip, port))
            resolver.nameservers = servers
        resolver.search = []
        resolver.use_search_by_default = False
        resolver.cache = None
        resolver.lifetime = timeout
        resolver.timeout = min(ATTEMPT_TIMEOUT, timeout)
        # EDNS0 with a 1232-byte payload (DNS flag day 2020), so TXT/MX answers rarely
        # need the TCP fallback; truncated answers are retried over TCP (RFC 7766 §5).
        resolver.use_edns(0, 0, 1232)
        self._resolver = resolver

    @property
    def nameservers(self) -> tuple[str, ...]:
        """The servers asked, as "IP:PORT" ("[v6]:PORT")."""
        out = []
        for ns in self._resolver.nameservers:
            if isinstance(ns, dns.nameserver.Do53Nameserver):
                host = f"[{ns.address}]" if ":" in ns.address else ns.address
                out.append(f"{host}:{ns.port}")
            else:
                out.append(str(ns))
        return tuple(out)

    async def _lookup(
        self, name: str, rdtype: str
    ) -> tuple[DnsStatus, dns.resolver.Answer | None, tuple[str, ...], str | None]:
        """(status, answer when OK, CNAME chain, error text)."""
        status, answer, chain, error, _ttl = await self._lookup_ttl(name, rdtype)
        return status, answer, chain, error

    async def _lookup_ttl(
        self, name: str, rdtype: str
    ) -> tuple[DnsStatus, dns.resolver.Answer | None, tuple[str, ...], str | None, int | None]:
        """Like _lookup, plus the negative TTL of an NXDOMAIN/NODATA answer."""
        if self.config_error is not None:
            return DnsStatus.ERROR, None, (), self.config_error, None
        try:
            qname = dns.name.from_text(name.strip().rstrip(".") + ".")
        except dns.exception.DNSException as exc:
            return DnsStatus.ERROR, None, (), f"{name!r} is not a valid DNS name: {exc}", None
        try:
            # dnspython enforces ``lifetime``; the outer bound only guards against a stall.
            async with asyncio.timeout(self.timeout + 1.0):
                answer = await self._resolver.resolve(
                    qname, rdtype, search=False, raise_on_no_answer=True
                )
        except dns.resolver.NXDOMAIN as exc:
            responses = exc.kwargs.get("responses", {})
            chain = _chain(responses.get(qname), qname)
            error = f"{name} does not exist (NXDOMAIN)"
            return DnsStatus.NXDOMAIN, None, chain, error, _soa_ttl(responses.get(qname))
        except dns.resolver.NoAnswer as exc:
            response = exc.kwargs.get("response")
            chain = _chain(response, qname)
            where = f" (via {chain[-1]})" if chain else ""
            error = f"{name} has no {rdtype} record{where}"
            return DnsStatus.NODATA, None, chain, error, _soa_ttl(response)
        except dns.resolver.NoNameservers as exc:
            errors = exc.kwargs.get("errors", [])
            servfail = any(str(e[3]) == "SERVFAIL" for e in errors)
            status = DnsStatus.SERVFAIL if servfail else DnsStatus.ERROR
            return status, None, (), _describe(errors), None
        except (dns.resolver.LifetimeTimeout, dns.exception.Timeout, TimeoutError):
            return DnsStatus.TIMEOUT, None, (), f"no answer within {self.timeout:g} s", None
        except dns.exception.DNSException as exc:
            return DnsStatus.ERROR, None, (), f"{type(exc).__name__}: {exc}", None
        except (OSError, ValueError) as exc:
            return DnsStatus.ERROR, None, (), f"{type(exc).__name__}: {exc}", None
        return DnsStatus.OK, answer, _chain(answer.response, qname), None, None

    async def query(self, name: str, rdtype: str) -> DnsAnswer:
        """Any record type; ``records`` in presentation format (names without the final
        dot, lower case; TXT joined as in :meth:`txt`)."""
        rdtype = rdtype.upper()
        status, answer, chain, error, ttl = await self._lookup_ttl(name, rdtype)
        records: tuple[str, ...] = ()
        if answer is not None and answer.rrset is not None:
            records = tuple(_rdata_text(r, rdtype) for r in answer.rrset)
            ttl = answer.rrset.ttl
        return DnsAnswer(_display(name), rdtype, status, records, chain, error, ttl)

    async def txt(self, name: str) -> DnsAnswer:
        """TXT records, each one's strings joined without separator (RFC 8461 §3.1,
        RFC 7208 §3.3)."""
        return await self.query(name, "TXT")

    async def cname(self, name: str) -> DnsAnswer:
        """The CNAME of ``name`` itself (records = (target,)), e.g. to verify delegation."""
        return await self.query(name, "CNAME")

    async def mx(self, name: str) -> MxAnswer:
        status, answer, chain, error = await self._lookup(name, "MX")
        records: list[MxRecord] = []
        if answer is not None and answer.rrset is not None:
            for r in answer.rrset:
                # RFC 7505 §3: the null MX has exchange "." - kept as ""
                records.append(MxRecord(int(r.preference), _text(r.exchange)))
        records.sort(key=lambda m: (m.preference, m.exchange))
        return MxAnswer(_display(name), status, tuple(records), chain, error)

    async def addresses(self, name: str) -> AddressAnswer:
        a, aaaa = await asyncio.gather(self.query(name, "A"), self.query(name, "AAAA"))
        return AddressAnswer(_display(name), a, aaaa, a.records + aaaa.records)


def _soa_ttl(response: dns.message.Message | None) -> int | None:
    """RFC 2308 §5: a negative answer may be cached min(SOA TTL, SOA MINIMUM) seconds."""
    if response is None:
        return None
    for rrset in response.authority:
        if rrset.rdtype == dns.rdatatype.SOA and len(rrset):
            return min(int(rrset.ttl), int(next(iter(rrset)).minimum))
    return None


def _display(name: str) -> str:
    return name.strip().rstrip(".")


def _rdata_text(rdata: object, rdtype: str) -> str:
    if rdtype == "TXT" or rdtype == "SPF":
        strings: tuple[bytes, ...] = rdata.strings  # type: ignore[attr-defined]
        return b"".join(strings).decode("utf-8", "surrogateescape")
    if rdtype in ("A", "AAAA"):
        return str(rdata.address)  # type: ignore[attr-defined]
    if rdtype in ("CNAME", "NS", "PTR", "DNAME"):
        return _text(rdata.target)  # type: ignore[attr-defined]
    if rdtype == "MX":
        return f"{rdata.preference} {_text(rdata.exchange)}"  # type: ignore[attr-defined]
    return rdata.to_text()  # type: ignore[attr-defined, no-any-return]


def _describe(errors: Sequence[tuple[object, ...]]) -> str:
    if not errors:
        return "no nameserver could be asked"
    parts = []
    for e in errors:
        server, tcp, _port, err = e[0], e[1], e[2], e[3]
        parts.append(f"{server}{' (TCP)' if tcp else ''}: {err}")
    return "; ".join(dict.fromkeys(parts))
