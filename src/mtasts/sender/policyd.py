"""`mtasts policyd`: answers Postfix's TLS policy lookups (socketmap) from MTA-STS policies
resolved with mtasts' own strict engine, without MX probes (RFC 8461 §5).

Answers:
- enforce -> ``OK secure match=<hosts> servername=hostname``. The match list authorises
  exactly the MX hosts the policy's patterns match: an exact pattern is listed as it is; a
  wildcard ``*.example.com`` (exactly one label, RFC 8461 §4.1) is bound to the current MX
  host names it matches. It is never written as Postfix's ``.example.com``, which matches
  names at any depth.
- testing, none, no policy, or a failed fetch with nothing cached -> ``NOTFOUND `` (a
  setting answers testing with ``may``).
- an enforce policy with wildcards whose MX lookup fails temporarily -> ``TEMP`` (Postfix
  could not route the mail either; it retries).

Each change of a domain's outcome is logged once, with the engine's finding code.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from mtasts.check.diagnosis import Diagnosis
from mtasts.check.findings import Finding, Severity, StsFetchResult
from mtasts.check.names import normalize_domain
from mtasts.check.result import CheckResult
from mtasts.i18n import _, say
from mtasts.net.dns import DnsAnswer, DnsStatus, Resolver
from mtasts.net.fetch import fetch_policy
from mtasts.protocol.errors import PolicyError, RecordError
from mtasts.protocol.mx import matching_pattern
from mtasts.protocol.policy import Mode, Policy
from mtasts.protocol.record import StsRecord, select_sts_record
from mtasts.sender.cache import (
    CachedPolicy,
    Entry,
    Outcome,
    PolicyCache,
    PolicyStore,
    load_policies,
)
from mtasts.sender.metrics import Metrics
from mtasts.sender.settings import PolicydSettings
from mtasts.sender.socketmap import Kind, Reply

log = logging.getLogger("mtasts.policyd")

NOTFOUND = Reply(Kind.NOTFOUND)
# Postfix's `secure` level without a usable match list would fall back to its default
# (nexthop, dot-nexthop: any depth); a name under .invalid (RFC 6761 §6.4) matches no
# certificate a public CA issues, so delivery waits until an MX matches the policy.
NO_MATCH = "no-mx-matches-the-mta-sts-policy.invalid"

# RFC 1035 §2.3.4 / RFC 5321 §4.1.2: LDH labels of 1-63 characters, 253 in all.
_LDH = re.compile(
    r"(?=.{1,253}\Z)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+"
    r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
)


def domain_of(key: str) -> str | None:
    """The domain a socketmap key names, in A-label form, or None for keys that cannot
    have an MTA-STS policy: Postfix's parent lookups (``.example.com``), address
    literals, single labels, invalid names."""
    d = key.lower()
    if d.endswith("."):
        d = d[:-1]
    if _LDH.fullmatch(d):
        return d
    if d.startswith((".", "[")) or d.isascii():
        return None
    try:
        return normalize_domain(d)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Explanation:
    """What `mtasts policyd query` prints."""

    domain: str
    reply: Reply
    entry: Entry | None
    findings: tuple[Finding, ...]


class PolicyDaemon:
    """The policy logic behind the socketmap: cache, resolution, answers, explanations."""

    def __init__(
        self,
        settings: PolicydSettings,
        resolver: Resolver,
        store: PolicyStore | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.resolver = resolver
        self.store = store
        self.clock = clock
        self.rng = rng or random.Random()
        self.cache = PolicyCache(settings.cache_size)
        self.metrics = Metrics()
        self._inflight: dict[str, asyncio.Future[Entry]] = {}
        self._background: set[asyncio.Task[object]] = set()
        self._last_findings: dict[str, tuple[Finding, ...]] = {}

    # --- start-up -----------------------------------------------------------------------

    def load(self) -> int:
        """Load persisted policies still in force (RFC 8461 §5.1); returns how many."""
        if self.store is None:
            return 0
        now = self.clock()
        loaded = load_policies(self.store, now, self.settings.cache_size)
        for domain, cached in reversed(loaded):  # newest last: most recently used
            entry = Entry(domain, cached=cached, checked_at=cached.fetched_at)
            entry.outcome = _valid_outcome(cached)
            entry.refresh_at = self._refresh_time(cached)
            self.cache.put(entry)
        return len(loaded)

    # --- the socketmap lookups ----------------------------------------------------------

    def fast(self, name: str, key: str) -> Reply | None:
        """Answer from memory, or None when the domain must be resolved first."""
        names = self.settings.map_names
        if names and name not in names:
            return self._count(Reply(Kind.PERM, f"unknown map name {name!r}"))
        entry = self.cache.get(key)
        if entry is None:
            domain = domain_of(key)
            if domain is None:
                return self._count(NOTFOUND)
            if domain != key:
                entry = self.cache.get(domain)
            if entry is None:
                return None
        reply = self._from_entry(entry, self.clock())
        if reply is not None:
            self.metrics.cache_hits += 1
            self._count(reply)
        return reply

    async def slow(self, name: str, key: str) -> Reply:
        """Resolve the domain (coalescing concurrent lookups), then answer."""
        domain = domain_of(key)
        if domain is None:
            return self._count(NOTFOUND)
        entry = self.cache.get(domain)
        now = self.clock()
        if entry is None or self._must_resolve(entry, now):
            self.metrics.cache_misses += 1
            entry = await self.resolve(domain)
        reply = self._from_entry(entry, self.clock())
        if reply is None:
            reply = await self._bind(entry)
        return self._count(reply)

    async def lookup(self, key: str, name: str = "postfix") -> Reply:
        """One lookup as Postfix makes it (fast path, else resolution)."""
        return self.fast(name, key) or await self.slow(name, key)

    def _count(self, reply: Reply) -> Reply:
        kind = "TEMP" if reply.kind is Kind.TIMEOUT else str(reply.kind)
        self.metrics.answers[kind] += 1
        return reply

    # --- answers ------------------------------------------------------------------------

    def _must_resolve(self, entry: Entry, now: float) -> bool:
        if entry.policy_in_force(now) is not None:
            return False
        return entry.negative_until <= now and entry.retry_at <= now

    def _from_entry(self, entry: Entry, now: float) -> Reply | None:
        """The answer from ``entry`` alone, or None when it needs resolution or binding.
        Schedules a background check when a cached policy is due for one."""
        cached = entry.policy_in_force(now)
        if cached is None:
            if entry.negative_until > now or entry.retry_at > now:
                return NOTFOUND  # RFC 8461 §5: no usable policy, and none cached
            return None
        if now >= entry.checked_at + self.settings.recheck_interval or now >= entry.refresh_at:
            self._revalidate_soon(entry.domain)
        mode = cached.policy.mode
        if mode is Mode.ENFORCE:
            if entry.reply is not None and now < entry.reply_until:
                return entry.reply
            return None  # bind the wildcards to the current MX hosts first
        if mode is Mode.TESTING and self.settings.testing_answer == "may":
            return Reply(Kind.OK, "may" + self._sts_attributes(entry.domain, cached))
        return NOTFOUND  # RFC 8461 §5: testing and none change nothing for delivery

    async def _bind(self, entry: Entry) -> Reply:
        """Build the enforce answer: exact patterns as written, wildcards bound to the
        MX host names they match now (RFC 8461 §4.1)."""
        now = self.clock()
        cached = entry.policy_in_force(now)
        if cached is None or cached.policy.mode is not Mode.ENFORCE:
            return self._from_entry(entry, now) or NOTFOUND
        patterns = cached.policy.mx
        exact = [p for p in patterns if not p.startswith("*.")]
        wildcards = [p for p in patterns if p.startswith("*.")]
        bound: list[str] = []
        until = cached.expires_at
        if wildcards:
            answer = await self.resolver.query(entry.domain, "MX")
            if answer.status.temporary:
                log.warning(
                    "%s: TEMP: the MX lookup failed (%s: %s); the wildcard patterns %s "
                    "cannot be bound to host names",
                    entry.domain,
                    answer.status,
                    answer.error,
                    ", ".join(wildcards),
                )
                return Reply(Kind.TEMP, f"MX lookup of {entry.domain} failed ({answer.status})")
            names = _mx_names(entry.domain, answer)
            bound = [n for n in names if matching_pattern(n, wildcards) is not None]
            ttl = answer.ttl if answer.ttl is not None else self.settings.mx_ttl_max
            until = min(until, now + min(float(ttl), self.settings.mx_ttl_max))
        match = list(dict.fromkeys([*exact, *bound]))
        if not match:
            log.warning(
                "%s: no MX host matches the policy's mx patterns %s: answering secure with "
                "a match list that matches no certificate (delivery waits)",
                entry.domain,
                ", ".join(patterns),
            )
            match = [NO_MATCH]
        text = f"secure match={':'.join(match)} servername=hostname"
        reply = Reply(Kind.OK, text + self._sts_attributes(entry.domain, cached))
        if tuple(match) != entry.match and entry.match:
            log.info("%s: match list now %s", entry.domain, ":".join(match))
        entry.reply, entry.reply_until, entry.match = reply, until, tuple(match)
        return reply

    def _sts_attributes(self, domain: str, cached: CachedPolicy) -> str:
        """Postfix >= 3.10 attributes for TLSRPT and smtp_tls_enforce_sts_mx_patterns."""
        if not self.settings.postfix_sts_attributes:
            return ""
        policy = cached.policy
        parts = ["policy_type=sts", f"policy_domain={domain}", f"policy_ttl={policy.max_age}"]
        parts += [f"mx_host_pattern={p}" for p in policy.mx]
        parts += [f"{{ policy_string = {line} }}" for line in _policy_lines(policy)]
        return " " + " ".join(parts)

    # --- resolution ---------------------------------------------------------------------

    async def resolve(self, domain: str) -> Entry:
        """Look at the TXT record and fetch the policy when needed; concurrent calls for
        one domain share one resolution."""
        pending = self._inflight.get(domain)
        if pending is None:
            task = asyncio.ensure_future(self._resolve(domain))
            self._inflight[domain] = task
            task.add_done_callback(lambda _t: self._inflight.pop(domain, None))
            pending = task
        return await asyncio.shield(pending)

    async def _resolve(self, domain: str) -> Entry:
        now = self.clock()
        entry = self.cache.peek(domain) or Entry(domain)
        cached = entry.policy_in_force(now)
        # RFC 8461 §3.1: the TXT record says whether there is a policy, and its id.
        txt = await self.resolver.txt(f"_mta-sts.{domain}")
        if cached is not None:
            self.metrics.txt_checks += 1
        entry.checked_at = now
        record, failure = _judge_record(domain, txt)
        findings: tuple[Finding, ...] = ()
        if record is None:
            assert failure is not None
            outcome = failure
            if outcome.result is StsFetchResult.FETCH_ERROR:
                self._back_off(entry, now)
            elif cached is None:
                # RFC 8461 §5.1 / RFC 2308: "no policy" is cached no longer than DNS says.
                ttl = self.settings.negative_ttl
                if txt.ttl is not None:
                    ttl = min(ttl, float(txt.ttl))
                entry.negative_until = now + ttl
                entry.failures, entry.retry_at = 0, 0.0
        elif (
            cached is not None
            and record.id == cached.policy_id
            and now < entry.refresh_at
            and entry.failures == 0
        ):
            # RFC 8461 §5.1: an unchanged id means the cached policy is current.
            outcome = _valid_outcome(cached)
        else:
            outcome, findings = await self._fetch(entry, record, txt, now)
        # Kept for `policyd query` only while something is wrong, and without the fix
        # texts, so that a cache of many domains stays small.
        if outcome.result is StsFetchResult.VALID:
            self._last_findings.pop(domain, None)
        else:
            self._last_findings[domain] = tuple(
                replace(f, fix=None) for f in findings if f.severity is not Severity.INFO
            )
        self._set_outcome(entry, outcome, now)
        for old in self.cache.put(entry):
            self._last_findings.pop(old.domain, None)
        return entry

    async def _fetch(
        self, entry: Entry, record: StsRecord, txt: DnsAnswer, now: float
    ) -> tuple[Outcome, tuple[Finding, ...]]:
        s = self.settings
        domain = entry.domain
        if entry.cached is not None and now >= entry.refresh_at:
            self.metrics.refreshes += 1
        fetch = await fetch_policy(
            domain,
            resolver=self.resolver,
            ca_file=s.ca_file or None,
            timeout=s.fetch_timeout,
            port=s.https_port,
            describe_certificate=False,  # the verdict is all an answer needs
        )
        moment = datetime.fromtimestamp(now, UTC)
        result = CheckResult(domain=domain, checked_at=moment, record_answer=txt, fetch=fetch)
        # The diagnosis engine judges record and policy exactly as `mtasts check` does.
        Diagnosis(result, moment).judge_record_and_policy()
        findings = tuple(result.findings)
        if (
            result.sts_fetch_result is StsFetchResult.VALID
            and result.policy is not None
            and fetch.body is not None
        ):
            cached = CachedPolicy(
                result.policy, fetch.body.decode("utf-8", "replace"), record.id, now
            )
            if entry.cached is None or entry.cached.policy != cached.policy:
                entry.reply, entry.reply_until = None, 0.0
            entry.cached = cached
            entry.failures, entry.retry_at, entry.negative_until = 0, 0.0, 0.0
            entry.refresh_at = self._refresh_time(cached)
            self._persist(domain, cached)
            self.metrics.fetches["VALID"] += 1
            return _valid_outcome(cached), findings
        self.metrics.fetches["FETCH_ERROR"] += 1
        self._back_off(entry, now)
        first = next((f for f in findings if f.severity is Severity.ERROR), None)
        if first is None:
            return Outcome(StsFetchResult.FETCH_ERROR, "policy-invalid", _("no usable policy")), ()
        return Outcome(StsFetchResult.FETCH_ERROR, first.code, first.message), findings

    def _back_off(self, entry: Entry, now: float) -> None:
        """Per-domain exponential backoff with jitter, so a broken policy host is not
        asked for every message."""
        s = self.settings
        entry.failures += 1
        delay = min(s.backoff_max, s.backoff_min * 2 ** min(entry.failures - 1, 30))
        entry.retry_at = now + delay * self.rng.uniform(0.8, 1.0)

    def _refresh_time(self, cached: CachedPolicy) -> float:
        """Proactive refresh, jittered so that policies fetched together do not expire
        together: between refresh_before and half of it ahead of expiry."""
        ahead = cached.policy.max_age * self.settings.refresh_before
        return cached.expires_at - ahead * self.rng.uniform(0.5, 1.0)

    def _set_outcome(self, entry: Entry, outcome: Outcome, now: float) -> None:
        previous = entry.outcome
        entry.outcome = outcome
        if outcome.result is not StsFetchResult.VALID:
            self.metrics.failures[outcome.code] += 1
            if outcome.result is StsFetchResult.NONE:
                self.metrics.fetches["NONE"] += 1
        if previous is not None and (previous.result, previous.code) == (
            outcome.result,
            outcome.code,
        ):
            return
        cached = entry.policy_in_force(now)
        keeping = ""
        if outcome.result is not StsFetchResult.VALID and cached is not None:
            until = datetime.fromtimestamp(cached.expires_at, UTC)
            keeping = (
                f" (the cached policy id {cached.policy_id} stays in force until "
                f"{until:%Y-%m-%dT%H:%M:%SZ})"
            )
        level = logging.WARNING if outcome.result is StsFetchResult.FETCH_ERROR else logging.INFO
        log.log(
            level,
            "%s: %s %s: %s%s",
            entry.domain,
            outcome.result,
            outcome.code,
            outcome.message,
            keeping,
        )

    def _persist(self, domain: str, cached: CachedPolicy) -> None:
        if self.store is None:
            return
        store = self.store

        def save() -> None:
            try:
                store.save(domain, cached)
            except Exception as exc:  # the cache in memory still works
                log.warning("store: could not save the policy of %s: %s", domain, exc)

        self._spawn(asyncio.to_thread(save))

    def _spawn(self, coro: Awaitable[object]) -> None:
        task: asyncio.Task[object] = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _revalidate_soon(self, domain: str) -> None:
        if domain in self._inflight:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        entry = self.cache.peek(domain)
        if entry is not None and entry.retry_at > self.clock():
            return
        self._spawn(self.resolve(domain))

    async def refresh_due(self) -> int:
        """Resolve every cached domain due for a TXT check or a proactive refresh (the
        daemon calls this every ``refresh_tick`` seconds); returns how many."""
        now = self.clock()
        due = [
            e.domain
            for e in self.cache
            if e.policy_in_force(now) is not None
            and e.retry_at <= now
            and (now >= e.refresh_at or now >= e.checked_at + self.settings.recheck_interval)
        ]
        sem = asyncio.Semaphore(16)

        async def one(domain: str) -> None:
            async with sem:
                await self.resolve(domain)

        await asyncio.gather(*(one(d) for d in due))
        return len(due)

    async def drain(self) -> None:
        """Wait for background resolutions and store writes (tests, shutdown)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    async def explain(self, key: str) -> Explanation:
        """The answer for ``key``, what is cached, and the engine's findings (why). The
        domain is looked at afresh (TXT record, and the policy when the id is new), as the
        daemon does at its next check; the cached policy still counts until max_age."""
        domain = domain_of(key) or key
        if domain_of(key) is not None:
            await self.resolve(domain)
        reply = await self.lookup(key)
        entry = self.cache.peek(domain)
        return Explanation(domain, reply, entry, self._last_findings.get(domain, ()))

    def gauges(self) -> dict[str, tuple[str, float]]:
        return {
            "mtasts_policyd_cache_entries": ("Domains in the cache.", float(len(self.cache))),
            "mtasts_policyd_cache_evictions_total": (
                "Domains dropped to keep the cache bounded.",
                float(self.cache.evictions),
            ),
        }


def _valid_outcome(cached: CachedPolicy) -> Outcome:
    p = cached.policy
    return Outcome(
        StsFetchResult.VALID,
        f"policy-{p.mode}",
        _("policy id {id}: mode {mode}, mx {mx}, max_age {max_age} s").format(
            id=cached.policy_id, mode=p.mode, mx=", ".join(p.mx), max_age=p.max_age
        ),
    )


def _judge_record(domain: str, txt: DnsAnswer) -> tuple[StsRecord | None, Outcome | None]:
    """RFC 8461 §3.1: exactly one valid v=STSv1 record, else no policy; a temporary DNS
    failure is a fetch error (the sender cannot tell)."""
    name = f"_mta-sts.{domain}"
    if txt.status.temporary:
        return None, Outcome(
            StsFetchResult.FETCH_ERROR,
            "sts-record-dns-failure",
            _("The TXT lookup of {name} failed ({status}: {error}).").format(
                name=name, status=txt.status, error=txt.error
            ),
        )
    if txt.status is not DnsStatus.OK:
        return None, Outcome(
            StsFetchResult.NONE,
            "sts-record-missing",
            _(
                "{name} has no TXT record ({status}): the domain publishes no MTA-STS policy."
            ).format(name=name, status=txt.status),
        )
    try:
        return select_sts_record(txt.records, domain=domain), None
    except RecordError as exc:
        code = exc.code if exc.code.startswith("sts-") else f"sts-{exc.code}"
        return None, Outcome(StsFetchResult.NONE, code, say(exc.message))


def _mx_names(domain: str, answer: DnsAnswer) -> list[str]:
    if answer.status is DnsStatus.NODATA:
        return [domain]  # RFC 5321 §5.1: no MX, the domain itself is the implicit MX
    names = []
    for record in answer.records:
        _pref, _sep, exchange = record.partition(" ")
        if exchange and exchange != ".":
            names.append(exchange.rstrip(".").lower())
    return names


def _policy_lines(policy: Policy) -> list[str]:
    try:
        text = policy.serialize()
    except PolicyError:
        text = "\n".join(
            [f"version: {policy.version}", f"mode: {policy.mode}"]
            + [f"mx: {p}" for p in policy.mx]
            + [f"max_age: {policy.max_age}"]
        )
    # "{" and "}" would end Postfix's attribute grouping: never pass them through.
    return [line for line in text.splitlines() if line and "{" not in line and "}" not in line]
