"""Which addresses a tenant-triggered probe may connect to.

Invariant: a probe that a tenant can trigger (guarded enforce, monitoring) connects only to
addresses this module allows, and to exactly the address it checked (the caller resolves
once, checks, and connects to the IP literal; no second lookup, so no DNS-rebinding window).
Without that, a tenant could publish ``MX 10 127.0.0.1`` or an RFC 1918 address and use
mtasts to scan the operator's internal network on ports 25 and 443.

By default every address outside the public unicast space is refused: loopback, private
(RFC 1918, IPv6 ULA), link-local, CGNAT, multicast, reserved, unspecified, documentation,
benchmarking, broadcast, and IPv6 forms that embed one of those IPv4 addresses
(IPv4-mapped, IPv4-compatible, SIIT, NAT64, 6to4, Teredo). The operator exempts networks
with ``probe_allowed_networks`` (internal relays, the test lab).

The tables are explicit, after the IANA special-purpose address registries (RFC 6890), so
that the verdict does not change with the Python version (``ipaddress.is_private`` and
``is_global`` changed meaning in 3.11.10/3.12.4/3.13).

``mtasts check`` on the command line is the operator's own tool and uses no policy.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from mtasts.protocol.errors import Text

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_MX_HOSTS = 10  # MX hosts probed per tenant-triggered check
MAX_ADDRESSES_PER_HOST = 4  # addresses probed per MX host (and tried for the policy host)


class AddressClass(StrEnum):
    """Why an address is refused; the value is the stable name shown to tenants."""

    PUBLIC = "public"
    LOOPBACK = "loopback"
    PRIVATE = "private"
    LINK_LOCAL = "link-local"
    SHARED = "shared"
    MULTICAST = "multicast"
    UNSPECIFIED = "unspecified"
    THIS_NETWORK = "this-network"
    BROADCAST = "broadcast"
    DOCUMENTATION = "documentation"
    BENCHMARKING = "benchmarking"
    RESERVED = "reserved"
    INVALID = "not an IP address"

    @property
    def description(self) -> str:
        """A short phrase for messages: "a loopback address"."""
        return _DESCRIPTIONS[self]


_DESCRIPTIONS = {
    AddressClass.PUBLIC: "a public address",
    AddressClass.LOOPBACK: "a loopback address",
    AddressClass.PRIVATE: "a private-network address",
    AddressClass.LINK_LOCAL: "a link-local address",
    AddressClass.SHARED: "a shared (carrier-grade NAT) address",
    AddressClass.MULTICAST: "a multicast address",
    AddressClass.UNSPECIFIED: "the unspecified address",
    AddressClass.THIS_NETWORK: "a 'this network' address",
    AddressClass.BROADCAST: "the broadcast address",
    AddressClass.DOCUMENTATION: "a documentation address",
    AddressClass.BENCHMARKING: "a benchmarking address",
    AddressClass.RESERVED: "a reserved address",
    AddressClass.INVALID: "not an IP address",
}


def _v4(*rows: tuple[str, AddressClass]) -> tuple[tuple[ipaddress.IPv4Network, AddressClass], ...]:
    return tuple((ipaddress.IPv4Network(net), cls) for net, cls in rows)


def _v6(*rows: tuple[str, AddressClass]) -> tuple[tuple[ipaddress.IPv6Network, AddressClass], ...]:
    return tuple((ipaddress.IPv6Network(net), cls) for net, cls in rows)


_A = AddressClass
# Most specific first: the first match names the class.
_V4_REFUSED = _v4(
    ("0.0.0.0/32", _A.UNSPECIFIED),  # RFC 1122 §3.2.1.3
    ("0.0.0.0/8", _A.THIS_NETWORK),  # RFC 791, RFC 1122 §3.2.1.3
    ("10.0.0.0/8", _A.PRIVATE),  # RFC 1918
    ("100.64.0.0/10", _A.SHARED),  # RFC 6598 (carrier-grade NAT)
    ("127.0.0.0/8", _A.LOOPBACK),  # RFC 1122 §3.2.1.3
    ("169.254.0.0/16", _A.LINK_LOCAL),  # RFC 3927
    ("172.16.0.0/12", _A.PRIVATE),  # RFC 1918
    ("192.0.0.0/24", _A.RESERVED),  # RFC 6890 (IETF protocol assignments)
    ("192.0.2.0/24", _A.DOCUMENTATION),  # RFC 5737 TEST-NET-1
    ("192.88.99.0/24", _A.RESERVED),  # RFC 7526 (deprecated 6to4 relay anycast)
    ("192.168.0.0/16", _A.PRIVATE),  # RFC 1918
    ("198.18.0.0/15", _A.BENCHMARKING),  # RFC 2544
    ("198.51.100.0/24", _A.DOCUMENTATION),  # RFC 5737 TEST-NET-2
    ("203.0.113.0/24", _A.DOCUMENTATION),  # RFC 5737 TEST-NET-3
    ("224.0.0.0/4", _A.MULTICAST),  # RFC 5771
    ("255.255.255.255/32", _A.BROADCAST),  # RFC 919, RFC 8190
    ("240.0.0.0/4", _A.RESERVED),  # RFC 1112 §4 (future use)
)
_V6_REFUSED = _v6(
    ("::/128", _A.UNSPECIFIED),  # RFC 4291 §2.5.2
    ("::1/128", _A.LOOPBACK),  # RFC 4291 §2.5.3
    ("100::/64", _A.RESERVED),  # RFC 6666 (discard-only)
    ("64:ff9b:1::/48", _A.PRIVATE),  # RFC 8215 (local-use NAT64)
    ("2001:2::/48", _A.BENCHMARKING),  # RFC 5180
    ("2001::/23", _A.RESERVED),  # RFC 2928 (IETF protocol assignments; Teredo, ORCHID)
    ("2001:db8::/32", _A.DOCUMENTATION),  # RFC 3849
    ("3fff::/20", _A.DOCUMENTATION),  # RFC 9637
    ("5f00::/16", _A.RESERVED),  # RFC 9602 (SRv6 SIDs)
    ("fc00::/7", _A.PRIVATE),  # RFC 4193 (unique local)
    ("fe80::/10", _A.LINK_LOCAL),  # RFC 4291 §2.5.6
    ("fec0::/10", _A.PRIVATE),  # RFC 3879 (deprecated site-local)
    ("ff00::/8", _A.MULTICAST),  # RFC 4291 §2.7
)
_V6_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")  # RFC 4291 §2.4; the rest is reserved

# IPv6 prefixes whose packets end up at an embedded IPv4 address.
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")  # RFC 4291 §2.5.5.2 (IPv4-mapped)
_COMPATIBLE = ipaddress.IPv6Network("::/96")  # RFC 4291 §2.5.5.1 (deprecated)
_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")  # RFC 2765 (SIIT)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 §2.1 (well-known prefix)
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")  # RFC 3056 §2


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address that packets to ``address`` are delivered to, for IPv4-mapped,
    IPv4-compatible, SIIT, NAT64 (well-known prefix) and 6to4 addresses; else None.
    (Teredo lies in 2001::/32, refused as a whole.)"""
    n = int(address)
    if address in _MAPPED or address in _TRANSLATED or address in _NAT64:
        return ipaddress.IPv4Address(n & 0xFFFFFFFF)
    if address in _COMPATIBLE and n > 1:  # ::, ::1 are not IPv4-compatible
        return ipaddress.IPv4Address(n & 0xFFFFFFFF)
    if address in _SIX_TO_FOUR:
        return ipaddress.IPv4Address((n >> 80) & 0xFFFFFFFF)  # RFC 3056 §2: 2002:V4ADDR::/48
    return None


def classify(address: IPAddress) -> AddressClass:
    """The class of ``address``: PUBLIC when a probe may connect to it by default."""
    if isinstance(address, ipaddress.IPv4Address):
        for net4, cls in _V4_REFUSED:
            if address in net4:
                return cls
        return AddressClass.PUBLIC
    if address.scope_id:  # "fe80::1%eth0": only link-local addresses carry a zone
        return AddressClass.LINK_LOCAL
    inner = embedded_ipv4(address)
    if inner is not None:
        inner_class = classify(inner)
        if inner_class is not AddressClass.PUBLIC:
            return inner_class
        if address in _MAPPED or address in _NAT64 or address in _SIX_TO_FOUR:
            return AddressClass.PUBLIC  # delivered to a public IPv4 address
        return AddressClass.RESERVED  # IPv4-compatible and SIIT: deprecated forms
    for net6, cls in _V6_REFUSED:
        if address in net6:
            return cls
    if address not in _V6_GLOBAL_UNICAST:
        return AddressClass.RESERVED
    return AddressClass.PUBLIC


def parse_address(text: str) -> IPAddress | None:
    """``text`` as an IP address, or None when it is not one."""
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def parse_networks(cidrs: Iterable[str]) -> tuple[IPNetwork, ...]:
    """CIDR texts ("127.0.0.0/24", "::1", "10.1.2.3") as networks; ValueError naming the
    first bad one. Host bits must be zero (``10.0.0.1/8`` is refused, not truncated)."""
    out: list[IPNetwork] = []
    for text in cidrs:
        text = text.strip()
        if not text:
            continue
        try:
            out.append(ipaddress.ip_network(text, strict=True))
        except ValueError as exc:
            raise ValueError(
                Text("{text!r} is not a network in CIDR form ({reason})", text=text, reason=exc)
            ) from None
    return tuple(out)


@dataclass(frozen=True, slots=True)
class AddressVerdict:
    """Whether a probe may connect to ``address`` (normalised text) and why."""

    address: str
    allowed: bool
    address_class: AddressClass
    exempted: bool = False  # refused by class, allowed by probe_allowed_networks

    @property
    def reason(self) -> str:
        """For messages: "127.0.0.1 is a loopback address"."""
        return f"{self.address} is {self.address_class.description}"


@dataclass(frozen=True, slots=True)
class ProbePolicy:
    """The limits on probes a tenant can trigger: which addresses (public ones, plus
    ``allowed_networks``) and how many connections one check may fan out to."""

    allowed_networks: tuple[IPNetwork, ...] = ()
    max_mx_hosts: int = MAX_MX_HOSTS
    max_addresses_per_host: int = MAX_ADDRESSES_PER_HOST

    @classmethod
    def from_cidrs(cls, cidrs: Iterable[str], **limits: int) -> ProbePolicy:
        """A policy exempting the networks in ``cidrs`` (the ``probe_allowed_networks``
        setting); ValueError on a bad CIDR."""
        return cls(parse_networks(cidrs), **limits)

    def exempt(self, address: IPAddress) -> bool:
        """True when ``address`` lies in an allowed network (an IPv4-mapped address also
        when its IPv4 address does)."""
        candidates: list[IPAddress] = [address]
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            candidates.append(address.ipv4_mapped)
        return any(
            a.version == net.version and a in net
            for a in candidates
            for net in self.allowed_networks
        )

    def check(self, text: str) -> AddressVerdict:
        """The verdict on the address ``text`` (as resolved)."""
        address = parse_address(text)
        if address is None:
            return AddressVerdict(text, False, AddressClass.INVALID)
        cls = classify(address)
        if cls is AddressClass.PUBLIC:
            return AddressVerdict(str(address), True, cls)
        if self.exempt(address):
            return AddressVerdict(str(address), True, cls, exempted=True)
        return AddressVerdict(str(address), False, cls)


def is_probe_allowed(address: str, policy: ProbePolicy | None = None) -> bool:
    """True when a tenant-triggered probe may connect to ``address`` under ``policy``
    (default: public addresses only)."""
    return (policy or ProbePolicy()).check(address).allowed


__all__ = [
    "MAX_ADDRESSES_PER_HOST",
    "MAX_MX_HOSTS",
    "AddressClass",
    "AddressVerdict",
    "ProbePolicy",
    "classify",
    "embedded_ipv4",
    "is_probe_allowed",
    "parse_address",
    "parse_networks",
]
