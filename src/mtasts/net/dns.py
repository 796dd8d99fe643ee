"""DNS lookups with dnspython: explicit nameservers, CNAME chains reported, and the
outcomes NXDOMAIN, NODATA, SERVFAIL and timeout told apart."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum


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


@dataclass(frozen=True)
class AddressAnswer:
    """A and AAAA of one host, asked in parallel."""

    name: str
    a: DnsAnswer
    aaaa: DnsAnswer
    addresses: tuple[str, ...] = field(default=())  # A then AAAA


class Resolver:
    """Async resolver. ``nameservers`` are "IP" or "IP:PORT" (IPv6 as "[::1]:53");
    None means the system configuration. ``timeout`` bounds each lookup in total."""

    def __init__(self, nameservers: Sequence[str] | None = None, timeout: float = 5.0) -> None:
        raise NotImplementedError

    async def txt(self, name: str) -> DnsAnswer:
        raise NotImplementedError

    async def mx(self, name: str) -> MxAnswer:
        raise NotImplementedError

    async def addresses(self, name: str) -> AddressAnswer:
        raise NotImplementedError
