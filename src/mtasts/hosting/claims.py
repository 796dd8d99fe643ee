"""Domain claims: who may host a name is decided by DNS control, proven per claim.

The three delegation CNAMEs are the same for every tenant, so they prove nothing about who
asks. Each claim therefore gets a challenge of its own, a random token the claimant
publishes as TXT ``mtasts-claim=<token>`` at ``_mtasts-challenge.<domain>``. The rules:

- A claim is proven only when the delegation CNAMEs *and its own* challenge are in DNS.
- Several tenants may claim one name at once; a pending claim never blocks another one,
  and nothing tells a tenant that someone else claimed or hosts the name.
- A claim not proven within ``claim_ttl`` seconds is removed.
- At most one hosting of a name is served (a partial unique index in the store). A proven
  claim on a name served for another tenant takes the name over: the previous hosting
  ends with everything stored for it (hosting/lifecycle.py) and its owner is told (an
  account audit event and a ``domain-transferred`` alert). Only a newly published
  challenge of the previous owner's new claim brings the name back: DNS decides.

Results are small frozen dataclasses; the API layer turns them into JSON.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mtasts.config import Settings
from mtasts.hosting.delegation import (
    DnsRecord,
    RecordCheck,
    Verification,
    delegation_records,
    lookup_failed,
    verify_delegation,
)
from mtasts.i18n import _, ngettext
from mtasts.net.dns import DnsStatus, Resolver
from mtasts.store.models import Domain, DomainState

CHALLENGE_LABEL = "_mtasts-challenge"
CHALLENGE_PREFIX = "mtasts-claim="
TOKEN_BYTES = 20  # 160 bits, 32 base32 letters: not guessable, fits any TXT editor


def new_challenge() -> str:
    """A fresh claim token: 160 random bits in lower-case base32 (letters and digits, so
    it needs no quoting or escaping in any DNS editor)."""
    return base64.b32encode(secrets.token_bytes(TOKEN_BYTES)).decode().lower()


def challenge_record(domain: str, token: str) -> DnsRecord:
    """The TXT record that proves this claim (and no other one)."""
    return DnsRecord(
        f"{CHALLENGE_LABEL}.{domain}",
        "TXT",
        f"{CHALLENGE_PREFIX}{token}",
        _(
            "proves that this account controls the domain (needed to verify, and again to "
            "take the domain over from another account); you may delete it once the domain "
            "is active"
        ),
    )


def claim_records(settings: Settings, domain: str, token: str) -> list[DnsRecord]:
    """Everything a claimant publishes: the three delegation CNAMEs and the challenge."""
    return [*delegation_records(settings, domain), challenge_record(domain, token)]


async def check_challenge(resolver: Resolver, domain: str, token: str) -> RecordCheck:
    """Is this claim's challenge among the TXT values at ``_mtasts-challenge.<domain>``?
    Other values there (other claims' tokens) are neither shown nor counted."""
    record = challenge_record(domain, token)
    answer = await resolver.txt(record.name)
    if answer.status.temporary or answer.status is DnsStatus.ERROR:
        return lookup_failed(record, answer.status)
    values = [v.strip() for v in answer.records] if answer.status is DnsStatus.OK else []
    if record.value in values:
        return RecordCheck(record, True, _("TXT with this claim's token"), "", "")
    found = (
        ngettext("{n} other TXT value", "{n} other TXT values", len(values)).format(n=len(values))
        if values
        else _("nothing")
    )
    return RecordCheck(
        record,
        False,
        found,
        _("{name} has no TXT record with this claim's token.").format(name=record.name),
        _("Publish: {line}").format(line=record.zone_line),
    )


async def verify_claim(
    resolver: Resolver, settings: Settings, domain: str, token: str
) -> Verification:
    """Resolve the delegation CNAMEs and the claim's challenge, concurrently: the four
    records a pending claim needs, as one verification."""
    delegation, challenge = await asyncio.gather(
        verify_delegation(resolver, settings, domain), check_challenge(resolver, domain, token)
    )
    return Verification(domain, (*delegation.checks, challenge))


@dataclass(frozen=True, slots=True)
class Transfer:
    """A served name that moved to another tenant's proven claim."""

    domain: str
    previous_owner_id: int
    previous_owner_email: str
    at: datetime
    previous_owner_language: str | None = None  # users.language: the alert's language


@dataclass(frozen=True, slots=True)
class ClaimOutcome:
    """What verifying a claim did: the answer of ``POST /domains/{d}/verify``."""

    domain: str
    state: str  # the claim's state afterwards
    verification: Verification
    activated: bool = False  # this verification made the claim active
    took_over: bool = False  # ... and the name was served for another account until now

    def to_dict(self) -> dict[str, Any]:
        out = {**self.verification.to_dict(), "state": self.state}
        if self.took_over:
            # the claimant proved control of the name: saying that an earlier hosting
            # ended tells them nothing about anyone else (no account, no data)
            out["summary"] += " " + _(
                "An earlier hosting of this name by another account has ended."
            )
        return out


@dataclass(frozen=True, slots=True)
class ExpiredClaim:
    domain: str
    owner_id: int


def served_hosting(db: Session, name: str) -> Domain | None:
    """The hosting of ``name`` that is served (active or retiring), if any."""
    served = Domain.state.in_(DomainState.SERVED)
    return db.scalar(select(Domain).where(Domain.name == name, served))


def expired_claims(db: Session, now: datetime) -> list[Domain]:
    """Pending claims whose time to prove control is over."""
    return list(
        db.scalars(
            select(Domain).where(
                Domain.state == DomainState.PENDING,
                Domain.claim_expires_at.is_not(None),
                Domain.claim_expires_at <= now,
            )
        )
    )
