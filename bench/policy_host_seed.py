"""Seed a fresh mtasts store with N active hosted domains, for bench/policy_host.sh.

Rows go in with bulk INSERTs through the store's own models and migrations (adding them
through the API would need N MX lookups and N verifications). Each domain gets one
`enforce` policy version with two MX hosts, as most real domains have. Writes the domain
names to HOSTS_FILE (one per line) and the first domain's policy to POLICY_FILE, for wrk
and nginx.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert

from mtasts.hosting.claims import new_challenge
from mtasts.hosting.tenants import new_policy_id
from mtasts.protocol.policy import Mode, Policy
from mtasts.store.db import make_engine, migrate, session_factory
from mtasts.store.models import AuditEvent, Domain, DomainState, PolicyVersion, User

MAX_AGE = 604800
BATCH = 20_000


def domain_name(i: int) -> str:
    return f"d{i:06d}.bench-customer.example"


def mx_of(name: str) -> list[str]:
    return [f"mx1.{name}", f"mx2.{name}"]


def seed(data_dir: Path, n: int, hosts_file: Path, policy_file: Path) -> float:
    started = time.perf_counter()
    engine = make_engine(f"sqlite:///{data_dir / 'mtasts.db'}")
    migrate(engine)
    sessions = session_factory(engine)
    now = datetime.now(UTC)
    pid = new_policy_id(now, 1)
    with sessions.begin() as db:
        owner = User(email="bench@example.net", is_admin=True, created_at=now)
        db.add(owner)
        db.flush()
        owner_id = owner.id
        for start in range(0, n, BATCH):
            ids = range(start + 1, min(n, start + BATCH) + 1)
            db.execute(
                insert(Domain),
                [
                    {
                        "id": i,
                        "name": domain_name(i),
                        "owner_id": owner_id,
                        "state": DomainState.ACTIVE,
                        "latest_version": 1,
                        "created_at": now,
                        "verified_at": now,
                        "challenge": new_challenge(),
                    }
                    for i in ids
                ],
            )
            db.execute(
                insert(PolicyVersion),
                [
                    {
                        "domain_id": i,
                        "number": 1,
                        "policy_id": pid,
                        "mode": "enforce",
                        "mx": mx_of(domain_name(i)),
                        "max_age": MAX_AGE,
                        "author_id": owner_id,
                        "reason": "bench",
                        "forced": False,
                        "created_at": now,
                    }
                    for i in ids
                ],
            )
        db.add(AuditEvent(at=now, domain="", action="bench-seed", detail={"domains": n}))
    engine.dispose()
    hosts_file.write_text("".join(domain_name(i) + "\n" for i in range(1, n + 1)))
    first = domain_name(1)
    body = Policy("STSv1", Mode.ENFORCE, MAX_AGE, tuple(mx_of(first))).serialize()
    policy_file.write_bytes(body.encode())
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("domains", type=int)
    parser.add_argument("hosts_file", type=Path)
    parser.add_argument("policy_file", type=Path)
    args = parser.parse_args()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    seconds = seed(args.data_dir, args.domains, args.hosts_file, args.policy_file)
    print(f"seeded {args.domains} active domains in {seconds:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
