"""Secondary name servers of the service zone: zone transfers out and NOTIFY.

The built-in server (dnsserver.py) is the zone's primary; Knot, BIND, NSD or a DNS
provider's secondary service copy the zone from it:

- **AXFR** (RFC 5936) over TCP to the addresses in ``dns_secondaries`` only (REFUSED for
  everyone else, §2.2.1 leaves the policy to the server), TSIG-signed (RFC 8945) when
  ``dns_tsig_name`` is set: an unsigned request is then refused too.
- **IXFR** (RFC 1995) is answered with the whole zone in AXFR form, which §4 allows when
  the server keeps no history; over UDP (§2) with the SOA alone, so the secondary either
  sees it is current or retries over TCP.
- **NOTIFY** (RFC 1996) to every secondary when the SOA serial changes (and at start),
  retried a few times until the secondary answers (§3.6).

The serial (:meth:`ZoneAnswerer.serial`) comes from the store's change counter, so every
process serving the zone from one database hands out the same serial for the same zone.
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.tsig

from mtasts.config import ConfigError, Settings
from mtasts.i18n import _
from mtasts.net.dns import parse_nameserver

log = logging.getLogger(__name__)

XFR_MESSAGE_BYTES = 16384  # a transfer message is flushed when its records pass this size
NOTIFY_TRIES = 5  # RFC 1996 §3.6: "retransmitted"; then the secondary's refresh timer acts
NOTIFY_TIMEOUT = 2.0  # seconds for the first try; doubled for each retry


def tsig_key(settings: Settings) -> dns.tsig.Key | None:
    """The key of ``dns_tsig_*`` (None when unset); ConfigError when it is not usable."""
    if not settings.dns_tsig_name and not settings.dns_tsig_secret:
        return None
    if not settings.dns_tsig_name or not settings.dns_tsig_secret:
        raise ConfigError(_("dns_tsig_name and dns_tsig_secret: set both, or neither"))
    try:
        return dns.tsig.Key(
            settings.dns_tsig_name.rstrip(".") + ".",
            settings.dns_tsig_secret,
            settings.dns_tsig_algorithm,
        )
    except (binascii.Error, ValueError, dns.exception.DNSException) as exc:
        raise ConfigError(
            _("dns_tsig_name / dns_tsig_secret / dns_tsig_algorithm: {error}").format(error=exc)
        ) from None


def secondary_endpoints(settings: Settings) -> list[tuple[str, int]]:
    """(IP, port) of every ``dns_secondaries`` entry; ConfigError for a bad one."""
    out = []
    for entry in settings.dns_secondaries:
        try:
            host, port = parse_nameserver(entry.strip())
            ipaddress.ip_address(host)
        except ValueError:
            raise ConfigError(
                _(
                    "dns_secondaries: {entry} is not IP[:PORT] (e.g. 192.0.2.53 or "
                    "[2001:db8::53]:53)"
                ).format(entry=repr(entry))
            ) from None
        out.append((host, port))
    return out


@dataclass(frozen=True)
class TransferPolicy:
    """Who may transfer the zone: the secondaries' addresses, and the key when one is set."""

    allowed: frozenset[str]
    key: dns.tsig.Key | None

    @classmethod
    def from_settings(cls, settings: Settings) -> TransferPolicy:
        hosts = frozenset(str(ipaddress.ip_address(h)) for h, _ in secondary_endpoints(settings))
        return cls(hosts, tsig_key(settings))

    @property
    def keyring(self) -> dict[dns.name.Name, dns.tsig.Key] | None:
        return {self.key.name: self.key} if self.key is not None else None

    def allows(self, query: dns.message.Message, source: str | None) -> bool:
        """RFC 5936 §2.2.1: transfers to the listed secondaries only, signed by the key
        when one is set (the signature was checked when the query was parsed)."""
        if source is None:
            return False
        try:
            ip = ipaddress.ip_address(source.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if str(ip) not in self.allowed:
            return False
        if self.key is None:
            return True
        return bool(query.had_tsig) and query.keyname == self.key.name


def transfer_messages(
    query: dns.message.Message, soa: dns.rrset.RRset, rrsets: Iterator[dns.rrset.RRset]
) -> Iterator[bytes]:
    """The AXFR response stream (RFC 5936 §2.2): the SOA, every other RRset, the SOA
    again, in messages of about XFR_MESSAGE_BYTES; each TSIG-signed after the first with
    the running digest (RFC 8945 §5.3.1) when the query was."""
    ctx = None
    first = True

    def message(answer: list[dns.rrset.RRset]) -> bytes:
        nonlocal ctx, first
        response = dns.message.make_response(query, pad=0)
        response.flags |= dns.flags.AA
        if not first:
            response.question = []  # RFC 5936 §2.2: the question only in the first message
        response.answer = answer
        wire = response.to_wire(max_size=65535, multi=True, tsig_ctx=ctx)
        ctx = response.tsig_ctx
        first = False
        return wire

    batch: list[dns.rrset.RRset] = [soa]
    size = 0
    for rrset in rrsets:
        batch.append(rrset)
        size += sum(len(r.to_digestable()) + 12 for r in rrset) + len(rrset.name)
        if size >= XFR_MESSAGE_BYTES:
            yield message(batch)
            batch, size = [], 0
    batch.append(soa)
    yield message(batch)


class Notifier:
    """Sends NOTIFY (RFC 1996) for the zone to every secondary when ``serial()`` changes.

    ``run`` checks the serial every ``interval`` seconds and whenever :meth:`poke` is
    called (thread-safe); each secondary is tried NOTIFY_TRIES times with a doubling
    timeout until it answers. NOTIFY leaves from the first of ``sources`` (the server's
    specific listen addresses) of the secondary's address family, since a secondary's ACL
    names the primary's address; with none, from the kernel's choice."""

    def __init__(
        self,
        settings: Settings,
        origin: dns.name.Name,
        serial: Callable[[], int],
        soa: Callable[[], dns.rrset.RRset],
        sources: Sequence[str] = (),
        *,
        interval: float = 1.0,
        tries: int = NOTIFY_TRIES,
        timeout: float = NOTIFY_TIMEOUT,
    ) -> None:
        self.targets = secondary_endpoints(settings)
        self.key = tsig_key(settings)
        self.origin = origin
        self.serial = serial
        self.soa = soa
        self.sources = list(sources)
        self.interval = interval
        self.tries = tries
        self.timeout = timeout
        self.sent = 0  # NOTIFY messages acknowledged
        self.failed = 0  # secondaries that never answered a NOTIFY
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: dict[tuple[str, int], asyncio.Task[None]] = {}

    def poke(self) -> None:
        """Check the serial now (from any thread), e.g. after the snapshot changed."""
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closing
                loop.call_soon_threadsafe(wake.set)

    async def run(self) -> None:
        """Until cancelled: NOTIFY at start and after every change of the serial."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        last: int | None = None
        try:
            while True:
                serial = self.serial()
                if serial != last:
                    last = serial
                    for target in self.targets:
                        task = self._pending.pop(target, None)
                        if task is not None:
                            task.cancel()  # a newer serial replaces an unanswered NOTIFY
                        self._pending[target] = asyncio.create_task(self._notify(target))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.interval):
                        await self._wake.wait()
                self._wake.clear()
        finally:
            for task in self._pending.values():
                task.cancel()
            for task in self._pending.values():
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def message(self) -> dns.message.Message:
        """RFC 1996 §3.7: opcode NOTIFY, AA, QTYPE SOA, the new SOA in the answer (§3.11)."""
        msg = dns.message.make_query(self.origin, dns.rdatatype.SOA, use_edns=False)
        msg.flags = dns.flags.AA  # no RD (§3.7)
        msg.set_opcode(dns.opcode.NOTIFY)
        msg.answer.append(self.soa())
        if self.key is not None:
            msg.use_tsig({self.key.name: self.key}, self.key.name, algorithm=self.key.algorithm)
        return msg

    async def _notify(self, target: tuple[str, int]) -> None:
        host, port = target
        timeout = self.timeout
        for _attempt in range(self.tries):
            msg = self.message()
            v6 = ":" in host
            source = next((s for s in self.sources if (":" in s) == v6), None)
            try:
                response = await _udp_exchange(msg, host, port, source, timeout)
            except (OSError, TimeoutError, dns.exception.DNSException) as exc:
                log.debug("NOTIFY to %s:%d: %s", host, port, exc)
                timeout *= 2
                continue
            if response.opcode() == dns.opcode.NOTIFY and response.id == msg.id:
                if response.rcode() != dns.rcode.NOERROR:
                    log.warning(
                        "NOTIFY: secondary %s:%d answered %s (does it list this server as "
                        "its primary, with the same key?)",
                        host,
                        port,
                        dns.rcode.to_text(response.rcode()),
                    )
                self.sent += 1
                return
            timeout *= 2
        self.failed += 1
        log.warning(
            "NOTIFY: secondary %s:%d did not answer %d tries; it will find the change at "
            "its next SOA refresh",
            host,
            port,
            self.tries,
        )


async def _udp_exchange(
    msg: dns.message.Message, host: str, port: int, source: str | None, timeout: float
) -> dns.message.Message:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        if source is not None:
            sock.bind((source, 0))
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, (host, port))
        wire = msg.to_wire()
        await loop.sock_sendall(sock, wire)
        async with asyncio.timeout(timeout):
            while True:
                data = await loop.sock_recv(sock, 65535)
                try:
                    return dns.message.from_wire(
                        data,
                        keyring=msg.keyring,
                        request_mac=msg.mac,
                    )
                except dns.exception.DNSException:
                    continue  # not an answer to us; keep waiting
    finally:
        sock.close()


__all__ = [
    "Notifier",
    "TransferPolicy",
    "secondary_endpoints",
    "transfer_messages",
    "tsig_key",
]
