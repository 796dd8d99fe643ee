"""The sender's policy cache (RFC 8461 §5.1): what policyd knows about each domain.

Invariants:
- A valid policy stays in force until ``expires_at`` (fetch time + max_age), whatever later
  fetches say; only a newer valid policy replaces it (RFC 8461 §5.1).
- The cache is bounded: above ``max_entries`` the least recently used domain is dropped
  (a policy still in force is only ever dropped for space, never for a failure).
- Only valid policies are persisted (the store); negative entries and backoff state live in
  memory, since they are cheap to rebuild and bounded in time anyway.

Times are seconds since the epoch (``time.time()``), so persisted entries survive restarts.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field

from sqlalchemy import Column, Float, MetaData, String, Table, Text, delete, insert, select
from sqlalchemy.engine import Engine

from mtasts.check.findings import StsFetchResult
from mtasts.protocol.errors import PolicyError
from mtasts.protocol.policy import Policy, parse_policy
from mtasts.sender.socketmap import Reply

log = logging.getLogger("mtasts.policyd")


@dataclass(frozen=True, slots=True)
class Outcome:
    """The latest verdict on a domain: what senders call it (NONE / VALID / FETCH_ERROR),
    the diagnosis engine's finding code and message."""

    result: StsFetchResult
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class CachedPolicy:
    """A valid policy as fetched (RFC 8461 §3.3) and the TXT id it was fetched for."""

    policy: Policy
    text: str
    policy_id: str
    fetched_at: float

    @property
    def expires_at(self) -> float:
        # RFC 8461 §5.1: a policy is valid for max_age seconds after it was fetched.
        return self.fetched_at + self.policy.max_age


@dataclass(slots=True)
class Entry:
    """Everything known about one domain."""

    domain: str
    cached: CachedPolicy | None = None
    outcome: Outcome | None = None
    checked_at: float = 0.0  # last look at the TXT record
    refresh_at: float = 0.0  # proactive, jittered refresh before expiry (0 = none)
    negative_until: float = 0.0  # NONE is cached until then
    retry_at: float = 0.0  # per-domain backoff after fetch failures
    failures: int = 0
    # Answer for an enforce policy, bound to the MX hosts current until ``reply_until``.
    reply: Reply | None = None
    reply_until: float = 0.0
    match: tuple[str, ...] = field(default=())

    def policy_in_force(self, now: float) -> CachedPolicy | None:
        cached = self.cached
        return cached if cached is not None and now < cached.expires_at else None


class PolicyCache:
    """A bounded LRU map domain -> Entry."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self.max_entries = max(1, max_entries)
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(list(self._entries.values()))

    def get(self, domain: str) -> Entry | None:
        entry = self._entries.get(domain)
        if entry is not None:
            self._entries.move_to_end(domain)
        return entry

    def peek(self, domain: str) -> Entry | None:
        """Like get, without touching the LRU order."""
        return self._entries.get(domain)

    def put(self, entry: Entry) -> list[Entry]:
        """Insert or replace; returns the entries evicted to stay within max_entries."""
        self._entries[entry.domain] = entry
        self._entries.move_to_end(entry.domain)
        evicted = []
        while len(self._entries) > self.max_entries:
            _, old = self._entries.popitem(last=False)
            evicted.append(old)
            self.evictions += 1
        return evicted


_metadata = MetaData()
# Its own table, created on first use: the policyd store is a cache that may be deleted
# at any time, kept apart from the hosting schema (and its migrations).
policyd_policies = Table(
    "policyd_policies",
    _metadata,
    Column("domain", String(253), primary_key=True),
    Column("policy_id", String(32), nullable=False),
    Column("policy_text", Text, nullable=False),
    Column("fetched_at", Float, nullable=False),
)


class PolicyStore:
    """Persists valid policies (SQLite in the data directory, or PostgreSQL by URL) so a
    restarted daemon keeps enforcing what it learnt (RFC 8461 §5.1)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        _metadata.create_all(engine)

    def load(self, now: float, limit: int) -> list[tuple[str, CachedPolicy]]:
        """Policies still in force, newest first, at most ``limit``; unparsable rows are
        skipped (and logged)."""
        out: list[tuple[str, CachedPolicy]] = []
        t = policyd_policies
        with self.engine.connect() as conn:
            rows = conn.execute(select(t).order_by(t.c.fetched_at.desc())).all()
        for row in rows:
            try:
                policy = parse_policy(row.policy_text)
            except PolicyError as exc:
                log.warning("store: dropping the stored policy of %s: %s", row.domain, exc)
                continue
            cached = CachedPolicy(policy, row.policy_text, row.policy_id, row.fetched_at)
            if cached.expires_at > now:
                out.append((row.domain, cached))
            if len(out) >= limit:
                break
        return out

    def save(self, domain: str, cached: CachedPolicy) -> None:
        t = policyd_policies
        with self.engine.begin() as conn:
            conn.execute(delete(t).where(t.c.domain == domain))
            conn.execute(
                insert(t).values(
                    domain=domain,
                    policy_id=cached.policy_id,
                    policy_text=cached.text,
                    fetched_at=cached.fetched_at,
                )
            )

    def forget(self, domain: str) -> None:
        t = policyd_policies
        with self.engine.begin() as conn:
            conn.execute(delete(t).where(t.c.domain == domain))

    def purge_expired(self, now: float) -> int:
        """Delete rows whose policy has expired; returns how many."""
        count = 0
        t = policyd_policies
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.c.domain, t.c.policy_text, t.c.fetched_at)).all()
        for row in rows:
            try:
                max_age = parse_policy(row.policy_text).max_age
            except PolicyError:
                max_age = 0
            if row.fetched_at + max_age <= now:
                self.forget(row.domain)
                count += 1
        return count
