"""The in-memory picture of every served policy.

The policy host, the certificate ``ask`` endpoint and the DNS server answer from this
snapshot only, never from the database: a database outage never takes a policy offline.
The snapshot is rebuilt from the store when another process changed something and patched
in place on every local change.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

POLICY_HOST_PREFIX = "mta-sts."  # RFC 8461 §3.3: https://mta-sts.<domain>/...


@dataclass(frozen=True, slots=True)
class Hosted:
    """One served domain: the policy body and the ids to advertise."""

    domain: str  # A-label, lower case, no trailing dot
    state: str  # "active" or "retiring"
    policy_id: str  # id of the policy in ``body``
    body: bytes  # the policy file, CRLF (RFC 8461 §3.2)
    changed_at: float  # UNIX time when ``policy_id`` became current
    previous_id: str | None = None  # the id before it, if any

    def txt_id(self, now: float, delay: float) -> str:
        """The id to publish in the `_mta-sts` TXT at ``now``.

        RFC 8461 §8.1: the new policy must be served before the new id is published,
        or a sender may cache the old policy under the new id. Every process serving the
        policy picks up a change within the sync interval, so the TXT keeps the previous
        id until ``delay`` seconds after the change.
        """
        if self.previous_id is None or now >= self.changed_at + delay:
            return self.policy_id
        return self.previous_id


def latest_change(entries: Iterable[Hosted]) -> float:
    """The latest ``changed_at`` among entries whose TXT id may still lag (0.0: none)."""
    return max((e.changed_at for e in entries if e.previous_id is not None), default=0.0)


@dataclass
class Snapshot:
    """Hosted domains by name. Readers take ``hosts`` once per request; writers replace
    single entries (atomic under the GIL) or swap the whole dict.

    Invariant: an entry is never replaced by one read from an older state of the store.
    A background sync reads the store, then applies what it read; a local change may
    commit and be patched in between. So every write says at which generation (the
    store's change counter, read before the rows) it was read, and :meth:`patch` and
    :meth:`replace_all` skip a domain whose entry was read at a newer generation.
    """

    hosts: dict[str, Hosted] = field(default_factory=dict)
    generation: int = -1  # the store's change counter this snapshot reflects
    loaded_at: float = field(default_factory=time.time)
    version: int = 0  # bumped by every put/drop, so readers can tell the set changed
    # the latest ``changed_at`` of an entry whose TXT id lags its policy (previous_id set):
    # after it plus the §8.1 delay every TXT id is final (the SOA serial counts that step)
    latest_change: float = 0.0
    # generation each domain's entry (or absence) was read at, when newer than `generation`
    read_at: dict[str, int] = field(default_factory=dict, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.latest_change = max(self.latest_change, latest_change(self.hosts.values()))

    def lookup_host(self, host: str) -> Hosted | None:
        """The entry served for an HTTP ``Host`` (``mta-sts.<d>[:port]``), or None."""
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        name = name.rstrip(".").lower()
        if not name.startswith(POLICY_HOST_PREFIX):
            return None
        return self.hosts.get(name[len(POLICY_HOST_PREFIX) :])

    def put(self, entry: Hosted) -> None:
        self.hosts[entry.domain] = entry
        if entry.previous_id is not None and entry.changed_at > self.latest_change:
            self.latest_change = entry.changed_at
        self.version += 1

    def drop(self, domain: str) -> None:
        self.hosts.pop(domain, None)
        self.version += 1

    def patch(self, read_at: int, entries: Mapping[str, Hosted], names: Iterable[str]) -> list[str]:
        """Put ``entries`` and drop the other ``names``, all read at generation ``read_at``,
        except domains whose entry was read at a newer generation. Return the skipped ones."""
        skipped = []
        with self._lock:
            for name in names:
                if self.read_at.get(name, -1) > read_at:
                    skipped.append(name)  # patched by a later read: keep it
                    continue
                self.read_at[name] = read_at
                entry = entries.get(name)
                if entry is not None:
                    self.put(entry)
                else:
                    self.drop(name)
        return skipped

    def replace_all(self, read_at: int, hosts: dict[str, Hosted]) -> None:
        """Swap in a full reload read at ``read_at``, keeping entries read later."""
        with self._lock:
            for name, at in self.read_at.items():
                if at > read_at:
                    entry = self.hosts.get(name)
                    if entry is not None:
                        hosts[name] = entry
                    else:
                        hosts.pop(name, None)
            self.hosts = hosts
            self.latest_change = latest_change(hosts.values())
            self.version += 1
            self.loaded_at = time.time()

    def advance(self, generation: int) -> None:
        """Record that the store was read up to ``generation``; forget older read marks."""
        with self._lock:
            self.generation = max(self.generation, generation)
            self.read_at = {n: at for n, at in self.read_at.items() if at > self.generation}

    # --- on disk: lets a restart serve policies while the database is still down --------

    def save(self, path: Path) -> None:
        """Write the snapshot atomically (a crash leaves the previous file)."""
        rows = [
            [e.domain, e.state, e.policy_id, e.body.decode(), e.changed_at, e.previous_id]
            for e in list(self.hosts.values())
        ]
        data = {"format": 1, "generation": self.generation, "saved_at": time.time(), "hosts": rows}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> Snapshot:
        """Read a file written by :meth:`save`; ValueError when it is not one."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format") != 1:
                raise ValueError(f"unknown snapshot format {data.get('format')!r}")
            hosts = {
                d: Hosted(d, sys.intern(st), pid, body.encode(), float(at), prev)
                for d, st, pid, body, at, prev in data["hosts"]
            }
            return cls(hosts=hosts, generation=int(data["generation"]), loaded_at=0.0)
        except (OSError, AttributeError, KeyError, TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: not a usable snapshot: {exc}") from exc
