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
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

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


class PolicyStore(Protocol):
    """Where valid policies are persisted so a restarted daemon keeps enforcing what it
    learnt (RFC 8461 §5.1): SQLite in the data directory by default (the standard
    library's sqlite3, so the daemon stays small), PostgreSQL by URL for MTAs sharing
    one cache. The table ``policyd_policies`` is created on first use; it is a cache that
    may be deleted at any time, kept apart from the hosting schema and its migrations."""

    def rows(self) -> list[tuple[str, str, str, float]]:
        """(domain, policy_id, policy_text, fetched_at), newest first."""
        ...

    def save(self, domain: str, cached: CachedPolicy) -> None: ...

    def forget(self, domain: str) -> None: ...

    def close(self) -> None: ...


def load_policies(store: PolicyStore, now: float, limit: int) -> list[tuple[str, CachedPolicy]]:
    """Policies still in force, newest first, at most ``limit``; unparsable rows are
    skipped (and logged)."""
    out: list[tuple[str, CachedPolicy]] = []
    for domain, policy_id, text, fetched_at in store.rows():
        try:
            policy = parse_policy(text)
        except PolicyError as exc:
            log.warning("store: dropping the stored policy of %s: %s", domain, exc)
            continue
        cached = CachedPolicy(policy, text, policy_id, fetched_at)
        if cached.expires_at > now:
            out.append((domain, cached))
        if len(out) >= limit:
            break
    return out


_CREATE = (
    "CREATE TABLE IF NOT EXISTS policyd_policies ("
    "domain VARCHAR(253) PRIMARY KEY, policy_id VARCHAR(32) NOT NULL, "
    "policy_text TEXT NOT NULL, fetched_at FLOAT NOT NULL)"
)
_SELECT = (
    "SELECT domain, policy_id, policy_text, fetched_at FROM policyd_policies "
    "ORDER BY fetched_at DESC"
)


class SqlitePolicyStore:
    """The default store: one SQLite file (WAL, so ``policyd query`` reads while the
    daemon writes)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, timeout=30, check_same_thread=False)
        with self._lock, self._conn:
            self._conn.execute("PRAGMA journal_mode=WAL")
            # A cache: losing the last writes in a power cut only costs a refetch.
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute(_CREATE)

    def rows(self) -> list[tuple[str, str, str, float]]:
        with self._lock:
            return list(self._conn.execute(_SELECT))

    def save(self, domain: str, cached: CachedPolicy) -> None:
        with self._lock, self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO policyd_policies VALUES (?, ?, ?, ?)",
                (domain, cached.policy_id, cached.text, cached.fetched_at),
            )

    def forget(self, domain: str) -> None:
        with self._lock, self._conn:
            self._conn.execute("DELETE FROM policyd_policies WHERE domain = ?", (domain,))

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class SqlAlchemyPolicyStore:
    """The store in a database given by URL (PostgreSQL for several MTAs)."""

    def __init__(self, url: str) -> None:
        from sqlalchemy import text

        from mtasts.store.db import make_engine

        self._text = text
        self.engine = make_engine(url)
        with self.engine.begin() as conn:
            conn.execute(text(_CREATE))

    def rows(self) -> list[tuple[str, str, str, float]]:
        with self.engine.connect() as conn:
            return [
                (r[0], r[1], r[2], float(r[3])) for r in conn.execute(self._text(_SELECT)).all()
            ]

    def save(self, domain: str, cached: CachedPolicy) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                self._text("DELETE FROM policyd_policies WHERE domain = :d"), {"d": domain}
            )
            conn.execute(
                self._text("INSERT INTO policyd_policies VALUES (:d, :i, :t, :f)"),
                {"d": domain, "i": cached.policy_id, "t": cached.text, "f": cached.fetched_at},
            )

    def forget(self, domain: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                self._text("DELETE FROM policyd_policies WHERE domain = :d"), {"d": domain}
            )

    def close(self) -> None:
        self.engine.dispose()


def open_store(url: str) -> SqlitePolicyStore | SqlAlchemyPolicyStore:
    """``sqlite:///PATH`` -> the stdlib SQLite store; any other SQLAlchemy URL -> that
    database (SQLAlchemy is only imported then)."""
    if url.startswith("sqlite:///"):
        return SqlitePolicyStore(Path(url.removeprefix("sqlite:///")))
    return SqlAlchemyPolicyStore(url)
