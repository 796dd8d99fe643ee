"""Push the service zone's records to an existing primary by RFC 2136 UPDATE (TSIG-signed).

For operators whose zone ``Z`` lives on Knot, BIND, PowerDNS...: the same records as the
built-in server (dnsserver.py) answers, written to the primary:

    <d>.policy.Z   TXT "v=STSv1; id=<id>"     RFC 8461 §3.1
    <d>.tlsrpt.Z   TXT "v=TLSRPTv1; rua=..."  RFC 8460 §3
    policy-host.Z  A/AAAA

:meth:`Rfc2136Publisher.sync` computes the wanted records, compares them with what it last
pushed and sends only the difference. The first sync (and one every ``reread_interval``)
reads the zone by AXFR first, so names under policy.Z and tlsrpt.Z left by an earlier run
for domains no longer hosted are deleted. The TXT id comes from ``Hosted.txt_id``: a policy
change reaches the primary only after the §8.1 delay, after every process serves it.
"""

from __future__ import annotations

import asyncio
import binascii
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import dns.asyncquery
import dns.exception
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.tsig
import dns.update
import dns.xfr
import dns.zone

from mtasts.config import ConfigError, Settings, reason
from mtasts.hosting.dnsserver import ADDRESS_TTL, Layout, sts_txt, txt_rdata
from mtasts.hosting.snapshot import Hosted, Snapshot
from mtasts.i18n import _
from mtasts.net.dns import parse_nameserver

log = logging.getLogger(__name__)

IN = dns.rdataclass.IN
A = dns.rdatatype.A
AAAA = dns.rdatatype.AAAA
TXT = dns.rdatatype.TXT
BATCH_RRS = 1000  # RRs per UPDATE message: well inside 64 KiB for our record sizes
REREAD_INTERVAL = 3600.0  # seconds between AXFR re-reads (repairs changes made by others)

# owner (lower case, no final dot) -> type -> (TTL, values): TXT values are the strings
# joined (RFC 8461 §3.1), addresses their text form
Records = dict[dns.rdatatype.RdataType, tuple[int, frozenset[str]]]
State = dict[str, Records]


class PublishError(Exception):
    """The primary did not take (or could not be asked for) the changes; nothing of the
    failed message counts as pushed, so the next sync sends it again."""


@dataclass
class _Change:
    owner: str
    delete_name: bool = False  # every RRset of the name (a domain no longer hosted)
    delete: list[dns.rdatatype.RdataType] = field(default_factory=list)
    replace: list[tuple[dns.rdatatype.RdataType, int, frozenset[str]]] = field(default_factory=list)

    @property
    def size(self) -> int:
        """RRs this change adds to an UPDATE message (RFC 2136 §2.5)."""
        return (
            int(self.delete_name) + len(self.delete) + sum(1 + len(v) for _, _, v in self.replace)
        )


def _text(name: dns.name.Name) -> str:
    return name.to_text(omit_final_dot=True).lower()


def _value(rdata: dns.rdata.Rdata) -> str:
    if rdata.rdtype == TXT:
        return b"".join(rdata.strings).decode("utf-8", "surrogateescape")  # type: ignore[attr-defined]
    if rdata.rdtype in (A, AAAA):
        return str(rdata.address)  # type: ignore[attr-defined]
    return rdata.to_text()


def _rdata(rdtype: dns.rdatatype.RdataType, value: str) -> dns.rdata.Rdata:
    if rdtype == TXT:
        return txt_rdata(value)
    return dns.rdata.from_text(IN, rdtype, value)


class Rfc2136Publisher:
    """Keeps the zone on ``settings.update_server`` in step with ``snapshot()``."""

    def __init__(
        self,
        settings: Settings,
        snapshot: Callable[[], Snapshot],
        clock: Callable[[], float] = time.time,
        *,
        timeout: float = 10.0,
        batch_rrs: int = BATCH_RRS,
        reread_interval: float = REREAD_INTERVAL,
    ) -> None:
        if not settings.update_server:
            raise ConfigError(_("update_server: required for the RFC 2136 publisher (IP[:PORT])"))
        try:
            self.host, self.port = parse_nameserver(settings.update_server)
        except ValueError as exc:
            raise ConfigError(
                _("{key}: {error}").format(key="update_server", error=reason(exc))
            ) from None
        if not settings.tsig_name or not settings.tsig_secret:
            raise ConfigError(_("tsig_name and tsig_secret: required to sign RFC 2136 updates"))
        try:
            self.key = dns.tsig.Key(
                settings.tsig_name.rstrip(".") + ".",
                settings.tsig_secret,
                settings.tsig_algorithm,
            )
        except (binascii.Error, ValueError, dns.exception.DNSException) as exc:
            raise ConfigError(
                _("tsig_name / tsig_secret / tsig_algorithm: {error}").format(error=exc)
            ) from None
        self.settings = settings
        self.snapshot = snapshot
        self.clock = clock
        self.timeout = timeout
        self.batch_rrs = max(1, batch_rrs)
        self.reread_interval = reread_interval
        self.layout = Layout.from_settings(settings)
        self.delay = settings.effective_txt_delay
        self.zone = _text(self.layout.origin)
        self._policy_suffix = "." + _text(self.layout.policy)
        self._tlsrpt_suffix = "." + _text(self.layout.tlsrpt)
        self._policy_host = _text(self.layout.policy_host)
        self._pushed: State | None = None  # None: read the zone (AXFR) first
        self._read_at = 0.0
        self._lock = asyncio.Lock()
        self._invalid: set[str] = set()  # names that cannot be published (warned once)

    @property
    def server(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    # --- what should be there -----------------------------------------------------------

    def desired(self, hosts: Iterable[tuple[str, Hosted]], now: float) -> State:
        state: State = {}
        addresses: Records = {}
        if self.layout.a:
            addresses[A] = (ADDRESS_TTL, frozenset(_value(r) for r in self.layout.a))
        if self.layout.aaaa:
            addresses[AAAA] = (ADDRESS_TTL, frozenset(_value(r) for r in self.layout.aaaa))
        state[self._policy_host] = addresses
        tlsrpt_txt = self.settings.tlsrpt_txt
        ttl = self.settings.txt_ttl
        for domain, entry in hosts:
            # RFC 8461 §3.1 with the §8.1 lag, and RFC 8460 §3
            state[domain + self._policy_suffix] = {
                TXT: (ttl, frozenset((sts_txt(entry, now, self.delay),)))
            }
            state[domain + self._tlsrpt_suffix] = {TXT: (ttl, frozenset((tlsrpt_txt(domain),)))}
        return state

    def _managed(self, owner: str) -> bool:
        return (
            owner == self._policy_host
            or owner.endswith(self._policy_suffix)
            or owner.endswith(self._tlsrpt_suffix)
        )

    def _diff(self, pushed: State, desired: State) -> list[_Change]:
        changes: list[_Change] = []
        for owner, want in desired.items():
            have = pushed.get(owner, {})
            if have == want or owner in self._invalid:
                continue
            if not _valid_name(owner):  # the store validates domains: should never happen
                log.warning("DNS UPDATE: %r is not a valid DNS name; not published", owner)
                self._invalid.add(owner)
                continue
            change = _Change(owner)
            for rdtype, (ttl, values) in want.items():
                if have.get(rdtype) != (ttl, values):
                    change.replace.append((rdtype, ttl, values))  # RFC 2136 §2.5.2 + §2.5.1
            change.delete.extend(t for t in have if t not in want)  # RFC 2136 §2.5.2
            changes.append(change)
        for owner in pushed.keys() - desired.keys():
            if owner != self._policy_host:
                changes.append(_Change(owner, delete_name=True))  # RFC 2136 §2.5.3
        return changes

    # --- talking to the primary ---------------------------------------------------------

    async def read_zone(self) -> State:
        """The managed records now on the primary, by AXFR (RFC 5936) signed with the key."""
        zone = dns.zone.Zone(self.layout.origin, relativize=False)
        query, _serial = dns.xfr.make_query(
            zone,
            serial=None,
            keyring=self.key,
            keyname=self.key.name,
            keyalgorithm=self.key.algorithm,
        )
        try:
            await dns.asyncquery.inbound_xfr(
                self.host,
                zone,
                query=query,
                port=self.port,
                timeout=self.timeout,
                lifetime=self.timeout * 6,
            )
        except dns.xfr.TransferError as exc:
            raise PublishError(
                f"{self.server} refused the zone transfer (AXFR) of {self.zone}: "
                f"{dns.rcode.to_text(exc.rcode)}; allow transfer with key {self.key.name}"
            ) from exc
        except (dns.exception.DNSException, OSError, TimeoutError) as exc:
            raise PublishError(
                f"cannot read zone {self.zone} from {self.server} by AXFR: {_describe(exc)}"
            ) from exc
        state: State = {}
        for name, rdataset in zone.iterate_rdatasets():
            owner = _text(name)
            if not self._managed(owner):
                continue
            if owner == self._policy_host and rdataset.rdtype not in (A, AAAA):
                continue
            state.setdefault(owner, {})[rdataset.rdtype] = (
                rdataset.ttl,
                frozenset(_value(r) for r in rdataset),
            )
        return state

    async def _send(self, batch: list[_Change]) -> None:
        update = dns.update.UpdateMessage(self.layout.origin, keyring=self.key)
        for change in batch:
            name = dns.name.from_text(change.owner + ".")
            if change.delete_name:
                update.delete(name)
            for rdtype in change.delete:
                update.delete(name, rdtype)
            for rdtype, ttl, values in change.replace:
                update.replace(name, ttl, *(_rdata(rdtype, v) for v in sorted(values)))
        try:
            response = await dns.asyncquery.tcp(
                update, self.host, timeout=self.timeout, port=self.port
            )
        except (dns.exception.DNSException, OSError, TimeoutError) as exc:
            raise PublishError(
                f"UPDATE of zone {self.zone} at {self.server} failed: {_describe(exc)}"
            ) from exc
        rcode = response.rcode()
        if rcode != dns.rcode.NOERROR:
            hint = {
                dns.rcode.REFUSED: f"; does the ACL allow update with key {self.key.name}?",
                dns.rcode.NOTAUTH: f"; is {self.server} the primary of {self.zone}, "
                "and is the TSIG key right?",
                dns.rcode.NOTZONE: f"; is {self.zone} served there?",
            }.get(rcode, "")
            raise PublishError(
                f"{self.server} answered {dns.rcode.to_text(rcode)} to the UPDATE of zone "
                f"{self.zone}{hint}"
            )

    # --- the loop -----------------------------------------------------------------------

    def forget(self) -> None:
        """Read the zone again (AXFR) before the next sync."""
        self._pushed = None

    async def sync(self) -> int:
        """Push what changed since the last sync; returns the number of names changed.
        PublishError when the primary cannot be read or refuses a change."""
        async with self._lock:
            if self._pushed is not None and time.monotonic() - self._read_at > self.reread_interval:
                self._pushed = None
            if self._pushed is None:
                pushed = await self.read_zone()
                self._pushed = pushed
                self._read_at = time.monotonic()
            pushed = self._pushed
            hosts = list(self.snapshot().hosts.items())  # one consistent copy, in the loop
            now = self.clock()
            # building and comparing millions of records would stall the event loop
            changes = await asyncio.to_thread(lambda: self._diff(pushed, self.desired(hosts, now)))
            done = 0
            for batch in self._batches(changes):
                await self._send(batch)
                for change in batch:  # only what the primary accepted counts as pushed
                    if change.delete_name:
                        pushed.pop(change.owner, None)
                        continue
                    records = pushed.setdefault(change.owner, {})
                    for rdtype in change.delete:
                        records.pop(rdtype, None)
                    for rdtype, ttl, values in change.replace:
                        records[rdtype] = (ttl, values)
                done += len(batch)
            if changes:
                log.info(
                    "DNS UPDATE: %d name(s) changed in zone %s at %s", done, self.zone, self.server
                )
            return done

    def _batches(self, changes: list[_Change]) -> Iterable[list[_Change]]:
        batch: list[_Change] = []
        size = 0
        for change in changes:
            if batch and size + change.size > self.batch_rrs:
                yield batch
                batch, size = [], 0
            batch.append(change)
            size += change.size
        if batch:
            yield batch

    async def run(self, interval: float = 1.0, stop: asyncio.Event | None = None) -> None:
        """Sync every ``interval`` seconds until ``stop`` is set (or the task is cancelled);
        errors are logged and retried, never fatal."""
        stop = stop or asyncio.Event()
        failing = False
        while not stop.is_set():
            try:
                await self.sync()
                if failing:
                    log.warning("DNS UPDATE: %s accepts changes again", self.server)
                failing = False
            except PublishError as exc:
                # log once per outage at WARNING, then at DEBUG, to keep logs readable
                (log.debug if failing else log.warning)("DNS UPDATE: %s", exc)
                failing = True
            except Exception:
                log.exception("DNS UPDATE: unexpected error; retrying")
                failing = True
            try:
                async with asyncio.timeout(interval):
                    await stop.wait()
            except TimeoutError:
                pass


def _valid_name(owner: str) -> bool:
    try:
        dns.name.from_text(owner + ".")
    except dns.exception.DNSException:
        return False
    return True


def _describe(exc: BaseException) -> str:
    if isinstance(exc, dns.exception.Timeout | TimeoutError):
        return "no answer in time"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, dns.tsig.PeerBadKey):
        return "the server answered TSIG error BADKEY: key unknown there or not allowed by its ACL"
    if isinstance(exc, dns.tsig.PeerBadSignature):
        return "the server answered TSIG error BADSIG: check tsig_secret and tsig_algorithm"
    if isinstance(exc, dns.tsig.PeerBadTime):
        return "the server answered TSIG error BADTIME: are the clocks in sync?"
    if isinstance(exc, dns.tsig.PeerError):
        return f"the server rejected the TSIG signature ({type(exc).__name__})"
    if isinstance(exc, dns.tsig.BadSignature):
        return "the server's answer failed TSIG verification: check tsig_secret"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


__all__ = ["PublishError", "Rfc2136Publisher"]
