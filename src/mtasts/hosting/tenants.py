"""Hosting use cases: users and tokens, domains, policy versions, retirement, and the
snapshot they produce. Synchronous (the API runs these in worker threads); network steps
(MX lookups, delegation checks, guarded-enforce probes) run their own event loop."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased, sessionmaker

from mtasts import i18n
from mtasts.check.checker import Checker, CheckOptions
from mtasts.check.diagnosis import enforce_failures, enforce_reason
from mtasts.check.findings import Severity
from mtasts.check.names import normalize_domain
from mtasts.config import Settings
from mtasts.generate import DEFAULT_MAX_AGE, MIN_MAX_AGE
from mtasts.hosting.claims import (
    ClaimOutcome,
    Transfer,
    claim_records,
    expired_claims,
    new_challenge,
    served_hosting,
    verify_claim,
)
from mtasts.hosting.delegation import Verification, verify_delegation
from mtasts.hosting.lifecycle import end_hosting, purge_name_data
from mtasts.hosting.snapshot import Hosted, Snapshot
from mtasts.i18n import N_, _, say
from mtasts.monitor.alerts import Event, Notifier
from mtasts.net.addresses import ProbePolicy
from mtasts.net.dns import DnsStatus, Resolver
from mtasts.protocol.errors import MxPatternError
from mtasts.protocol.mx import to_alabel, validate_mx_pattern
from mtasts.protocol.policy import MAX_AGE_LIMIT, MAX_POLICY_BYTES, Mode, Policy
from mtasts.store.models import (
    Alert,
    ApiToken,
    AuditEvent,
    Domain,
    DomainState,
    PolicyVersion,
    User,
)

log = logging.getLogger("mtasts.hosting")

TOKEN_PREFIX = "mtasts_"  # noqa: S105 - a prefix, not a secret
RETIRE_MAX_AGE = 86_400  # RFC 8461 §8.3: the "none" policy gets a short max_age (one day)
LOOKBACK = 1000  # audit ids re-read at each sync (see sync)
FULL_RELOAD = 900.0  # seconds between full reloads of the snapshot
# mx lines per hosted policy. Real domains list a handful of MX hosts (wildcards cover
# large fleets); 100 lines of the longest names (253) stay far under MAX_POLICY_BYTES,
# while thousands would make a policy that senders truncate or refuse (RFC 8461 §3.3).
MAX_MX_LINES = 100


_NOT_HOSTED = N_("{name} is not hosted here.")


def utcnow() -> datetime:
    return datetime.now(UTC)


class ServiceError(Exception):
    """A refusal the API shows as-is: HTTP status, stable code, plain message."""

    def __init__(
        self, status: int, code: str, message: str, detail: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.detail = status, code, message, detail or {}


def _check_mx_count(mx: list[str]) -> None:
    if len(mx) > MAX_MX_LINES:
        raise ServiceError(
            422,
            "mx-too-many",
            _(
                "A policy may list at most {limit} mx patterns; got {count}. Cover a fleet "
                "with a wildcard such as *.mx.example.com (RFC 8461 §3.2, §4.1)."
            ).format(limit=MAX_MX_LINES, count=len(mx)),
        )


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_fingerprint(token_hash: str) -> str:
    """What tells tokens apart without revealing them: the first 8 hex digits of the
    token's SHA-256 (``printf %s "$TOKEN" | sha256sum | cut -c1-8`` gives the same)."""
    return token_hash[:8]


def new_policy_id(now: datetime, number: int) -> str:
    """Unique per domain and readable: UTC time plus the version number (RFC 8461 §3.1:
    1 to 32 letters and digits)."""
    return f"{now:%Y%m%d%H%M%S}v{number}"


def policy_of(v: PolicyVersion) -> Policy:
    return Policy(version="STSv1", mode=Mode(v.mode), max_age=v.max_age, mx=tuple(v.mx))


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)  # SQLite drops the zone


@dataclass(frozen=True, slots=True)
class EnforceGuard:
    """The outcome of checking a policy before it is enforced: ``blocked`` when an error
    would make senders refuse mail; ``findings`` the errors and every MX failure (with a
    ``reason``); ``failing_mx`` each MX host that would fail, its reasons and fixes."""

    blocked: bool
    findings: list[dict[str, Any]]
    failing_mx: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class SyncRead:
    """What a sync read from the store at ``generation``: every served entry (``names``
    None: a full reload) or the entries of the domains ``names`` (absent: not served)."""

    generation: int
    entries: dict[str, Hosted]
    names: list[str] | None


@dataclass
class HostingService:
    settings: Settings
    sessions: sessionmaker[Session]
    snapshot: Snapshot = field(default_factory=Snapshot)
    clock: Callable[[], datetime] = utcnow
    on_change: list[Callable[[], None]] = field(default_factory=list)
    store_up: bool = True  # False while the database is unreachable
    _saved_at: float = 0.0

    @property
    def snapshot_file(self) -> Path:
        return self.settings.data_dir / "snapshot.json"

    def save_snapshot(self, min_interval: float = 0.0) -> bool:
        """Write the snapshot to ``snapshot_file`` unless one was written less than
        ``min_interval`` seconds ago."""
        if time.time() - self._saved_at < min_interval:
            return False
        self.snapshot.save(self.snapshot_file)
        self._saved_at = time.time()
        return True

    def close(self) -> None:
        """Close the store's connections."""
        bind = self.sessions.kw.get("bind")
        if bind is not None:
            bind.dispose()

    # --- network helpers ---------------------------------------------------------------

    def resolver(self) -> Resolver:
        return Resolver(list(self.settings.nameservers) or None, timeout=5.0)

    def checker(self) -> Checker:
        s = self.settings
        options = CheckOptions(
            ca_file=s.ca_file or None,
            timeout=s.check_timeout,
            smtp_port=s.smtp_port,
            # tenants trigger these probes: public addresses only, capped, redacted
            probe_policy=ProbePolicy.from_cidrs(s.probe_allowed_networks),
        )
        return Checker(self.resolver(), options, clock=self.clock)

    def live_mx(self, domain: str) -> list[str]:
        """The domain's MX host names, most preferred first; ServiceError when unusable."""
        answer = asyncio.run(self.resolver().mx(domain))
        if answer.status is DnsStatus.NXDOMAIN:
            raise ServiceError(
                422,
                "domain-nxdomain",
                _("{domain} does not exist in DNS (NXDOMAIN).").format(domain=domain),
            )
        if answer.status is DnsStatus.NODATA:
            return [domain]  # RFC 5321 §5.1: no MX means the domain itself is the MX
        if answer.status is not DnsStatus.OK:
            # the resolver's detail names the operator's nameservers: the log only
            log.warning("MX lookup of %s failed: %s: %s", domain, answer.status, answer.error)
            raise ServiceError(
                503,
                "mx-lookup-failed",
                _("The MX lookup of {domain} failed ({status}); try again shortly.").format(
                    domain=domain, status=answer.status
                ),
            )
        hosts = [m.exchange for m in answer.records]
        if not any(hosts):
            raise ServiceError(
                422,
                "mx-null",
                _(
                    "{domain} publishes a null MX (RFC 7505): it accepts no mail, so there is "
                    "nothing for MTA-STS to protect."
                ).format(domain=domain),
            )
        return list(dict.fromkeys(h for h in hosts if h))

    # --- users and tokens --------------------------------------------------------------

    def create_token(self, email: str, admin: bool = False, label: str = "") -> str:
        """A new API token for ``email`` (the user is created if new). Only its hash is
        stored: the token is shown once."""
        email = email.strip().lower()
        if "@" not in email or len(email) > 320:
            raise ServiceError(
                422, "email-invalid", _("{email!r} is not an e-mail address.").format(email=email)
            )
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.sessions.begin() as db:
            user = db.scalar(select(User).where(User.email == email))
            if user is None:
                user = User(email=email, is_admin=admin, created_at=self.clock())
                db.add(user)
                db.flush()
            elif admin and not user.is_admin:
                user.is_admin = True
            db.add(
                ApiToken(
                    user_id=user.id,
                    token_hash=hash_token(token),
                    label=label,
                    created_at=self.clock(),
                )
            )
            self._audit(db, user.id, "", "token-created", {"email": email, "label": label})
        return token

    def first_admin_token(self, email: str = "admin@localhost") -> str | None:
        """On first start (no user yet) create an admin and return its token."""
        with self.sessions() as db:
            if db.scalar(select(func.count()).select_from(User)):
                return None
        return self.create_token(email, admin=True, label="first start")

    def authenticate(self, token: str) -> User | None:
        if not token.startswith(TOKEN_PREFIX):
            return None
        with self.sessions.begin() as db:
            row = db.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
            if row is None:
                return None
            row.last_used_at = self.clock()
            user = db.get(User, row.user_id)
            if user is not None:
                db.expunge(user)
            return user

    # --- domains -----------------------------------------------------------------------

    def _normalize(self, name: str) -> str:
        try:
            domain = normalize_domain(name)
        except ValueError as exc:
            raise ServiceError(422, "domain-invalid", str(exc)) from exc
        zone = self.settings.zone_name
        if domain == zone or domain.endswith("." + zone):
            raise ServiceError(
                422,
                "domain-in-service-zone",
                _("{domain} is inside the service zone {zone}.").format(domain=domain, zone=zone),
            )
        if len(domain) + len(".policy.") + len(zone) > 253:
            raise ServiceError(
                422,
                "domain-too-long",
                _(
                    "{domain} is too long to delegate into {zone} (names are at most 253 "
                    "characters, RFC 1035 §2.3.4)."
                ).format(domain=domain, zone=zone),
            )
        return domain

    def _owned(self, db: Session, user: User | None, name: str) -> Domain:
        """``user``'s own hosting (claim) of ``name``; for an admin without one, the served
        hosting of the name, else its newest claim; for None (mtasts itself, e.g. the
        monitor) the served hosting. 404 otherwise, worded the same whether or not anyone
        else claims or hosts the name."""
        domain_name = self._normalize(name)
        domain = None
        if user is not None:
            domain = db.scalar(
                select(Domain).where(Domain.name == domain_name, Domain.owner_id == user.id)
            )
        if domain is None and (user is None or user.is_admin):
            domain = served_hosting(db, domain_name)
            if domain is None and user is not None:
                domain = db.scalar(
                    select(Domain)
                    .where(Domain.name == domain_name)
                    .order_by(Domain.id.desc())
                    .limit(1)
                )
        if domain is None:
            raise ServiceError(404, "domain-not-found", _(_NOT_HOSTED).format(name=name))
        return domain

    def served_name(self, user: User | None, name: str) -> str | None:
        """The name whose TLS reports and alerts ``user`` may read through their hosting
        of ``name``: the name while that hosting is served, None while it is a pending
        claim (a claim has no such data; whatever is stored under the name belongs to the
        served hosting, if any). 404 as ``get_domain``."""
        with self.sessions() as db:
            domain = self._owned(db, user, name)
            return domain.name if domain.state in DomainState.SERVED else None

    def _latest(self, db: Session, domain: Domain) -> PolicyVersion:
        v = db.scalar(
            select(PolicyVersion).where(
                PolicyVersion.domain_id == domain.id,
                PolicyVersion.number == domain.latest_version,
            )
        )
        assert v is not None, f"{domain.name} has no policy version"
        return v

    def view(self, db: Session, domain: Domain) -> dict[str, Any]:
        v = self._latest(db, domain)
        # a claim never shows what is served for the name (maybe another account's policy)
        is_served = domain.state in DomainState.SERVED
        served = self.snapshot.hosts.get(domain.name) if is_served else None
        expires = domain.claim_expires_at if domain.state == DomainState.PENDING else None
        return {
            "domain": domain.name,
            "state": domain.state,
            "owner": domain.owner.email,
            "created_at": _aware(domain.created_at).isoformat(),
            "verified_at": _aware(domain.verified_at).isoformat() if domain.verified_at else None,
            "retire_after": (
                _aware(domain.retire_after).isoformat() if domain.retire_after else None
            ),
            "claim_expires_at": _aware(expires).isoformat() if expires else None,
            "policy": self._version_dict(v, db.get(User, v.author_id) if v.author_id else None),
            "policy_text": policy_of(v).serialize(),
            "served_id": served.policy_id if served else None,
            "dns_records": [
                r.to_dict() for r in claim_records(self.settings, domain.name, domain.challenge)
            ],
            "tlsrpt_rua": list(self.settings.tlsrpt_rua(domain.name)),
            "last_verification": domain.last_verify,
        }

    @staticmethod
    def _version_dict(v: PolicyVersion, author: User | None = None) -> dict[str, Any]:
        return {
            "version": v.number,
            "id": v.policy_id,
            "mode": v.mode,
            "mx": list(v.mx),
            "max_age": v.max_age,
            "author": author.email if author else None,
            "reason": v.reason,
            "forced": v.forced,
            "created_at": _aware(v.created_at).isoformat(),
        }

    def add_domain(self, user: User, name: str) -> dict[str, Any]:
        """Claim ``name`` for ``user``: pending, with a challenge of its own and a `testing`
        policy built from the live MX set, until the delegation CNAMEs and the challenge
        verify (claims.py). Other tenants' claims or hosting of the name neither block
        this nor show: only the user's own earlier claim gets a 409."""
        domain_name = self._normalize(name)
        now = self.clock()
        with self.sessions.begin() as db:
            mine = db.scalar(
                select(Domain).where(Domain.name == domain_name, Domain.owner_id == user.id)
            )
            if mine is not None and self._expired(mine, now):
                self._end_claim(db, mine, "domain-claim-expired")
            elif mine is not None:
                raise self._already_yours(mine)
        mx = self.live_mx(domain_name)
        now = self.clock()
        try:
            with self.sessions.begin() as db:
                domain = Domain(
                    name=domain_name,
                    owner_id=user.id,
                    state=DomainState.PENDING,
                    latest_version=0,
                    created_at=now,
                    challenge=new_challenge(),
                    claim_expires_at=now + timedelta(seconds=self.settings.claim_ttl),
                )
                db.add(domain)
                db.flush()
                self._add_version(db, domain, user, Mode.TESTING, mx, DEFAULT_MAX_AGE, "added")
                self._audit(db, user.id, domain_name, "domain-added", {"mx": mx}, domain.id)
        except IntegrityError as exc:  # the same user, twice at once
            raise ServiceError(
                409,
                "domain-exists",
                _("You already added {domain}.").format(domain=domain_name),
            ) from exc
        with self.sessions() as db:
            return self.view(db, self._owned(db, user, domain_name))

    def _expired(self, domain: Domain, now: datetime) -> bool:
        return (
            domain.state == DomainState.PENDING
            and domain.claim_expires_at is not None
            and _aware(domain.claim_expires_at) <= now
        )

    @staticmethod
    def _already_yours(domain: Domain) -> ServiceError:
        """The answer to a user adding a name again: about their own hosting only."""
        if domain.state == DomainState.PENDING:
            return ServiceError(
                409,
                "domain-exists",
                _(
                    "You already added {domain}; publish its records (dns_records) and verify it."
                ).format(domain=domain.name),
            )
        if domain.state == DomainState.RETIRING:
            return ServiceError(
                409,
                "domain-retiring",
                _("{domain} is being retired; add it again once it has been removed.").format(
                    domain=domain.name
                ),
            )
        return ServiceError(
            409, "domain-exists", _("You already host {domain}.").format(domain=domain.name)
        )

    def _end_claim(self, db: Session, domain: Domain, action: str) -> None:
        """Remove a hosting and its data (lifecycle.py); the owner's account log keeps
        that it happened."""
        detail = {"was": domain.state}
        self._audit(db, domain.owner_id, domain.name, action, detail)
        end_hosting(db, domain)

    def _add_version(
        self,
        db: Session,
        domain: Domain,
        user: User | None,
        mode: Mode,
        mx: list[str],
        max_age: int,
        reason: str,
        forced: bool = False,
    ) -> PolicyVersion:
        now = self.clock()
        domain.latest_version += 1
        v = PolicyVersion(
            domain_id=domain.id,
            number=domain.latest_version,
            policy_id=new_policy_id(now, domain.latest_version),
            mode=str(mode),
            mx=list(mx),
            max_age=max_age,
            author_id=user.id if user else None,
            reason=reason,
            forced=forced,
            created_at=now,
        )
        _check_mx_count(v.mx)  # also for mx taken from live MX records
        body = policy_of(v).serialize()  # refuses anything that would not parse back
        if len(body.encode()) > MAX_POLICY_BYTES:  # RFC 8461 §3.3
            raise ServiceError(
                422,
                "policy-too-large",
                _(
                    "The policy would be {size} bytes; senders read at most {limit} "
                    "(RFC 8461 §3.3). Use fewer mx lines or wildcards."
                ).format(size=len(body.encode()), limit=MAX_POLICY_BYTES),
            )
        db.add(v)
        return v

    def list_domains(self, user: User) -> list[dict[str, Any]]:
        with self.sessions() as db:
            q = select(Domain).order_by(Domain.name)
            if not user.is_admin:
                q = q.where(Domain.owner_id == user.id)
            return [self.view(db, d) for d in db.scalars(q)]

    def get_domain(self, user: User | None, name: str) -> dict[str, Any]:
        with self.sessions() as db:
            return self.view(db, self._owned(db, user, name))

    def history(self, user: User, name: str) -> list[dict[str, Any]]:
        with self.sessions() as db:
            domain = self._owned(db, user, name)
            rows = db.execute(
                select(PolicyVersion, User.email)
                .outerjoin(User, User.id == PolicyVersion.author_id)
                .where(PolicyVersion.domain_id == domain.id)
                .order_by(PolicyVersion.number.desc())
            ).all()
            return [{**self._version_dict(v), "author": email} for v, email in rows]

    # --- verification ------------------------------------------------------------------

    def verify(self, user: User | None, name: str) -> dict[str, Any]:
        """Verify ``user``'s claim of ``name`` (see ``verify_hosting``); the API's answer."""
        return self.verify_hosting(user, name).to_dict()

    def verify_hosting(
        self, user: User | None, name: str, hosting_id: int | None = None
    ) -> ClaimOutcome:
        """A pending claim whose delegation CNAMEs and own challenge are all in DNS
        becomes active and is served from now on, taking the name over from another
        account's hosting if there is one (claims.py). A served hosting gets its
        delegation checked (its challenge may be gone by now)."""
        now = self.clock()
        with self.sessions.begin() as db:
            domain = (
                self._owned(db, user, name) if hosting_id is None else db.get(Domain, hosting_id)
            )
            if domain is None:
                raise ServiceError(404, "domain-not-found", _(_NOT_HOSTED).format(name=name))
            if self._expired(domain, now):
                domain_name = domain.name
                self._end_claim(db, domain, "domain-claim-expired")
                expired = True
            else:
                expired = False
                pk, domain_name, state, token = (
                    domain.id,
                    domain.name,
                    domain.state,
                    domain.challenge,
                )
        if expired:
            days = self.settings.claim_ttl / 86400
            raise ServiceError(
                409,
                "claim-expired",
                _(
                    "Your claim of {domain} was not proven within {days:g} day(s) and has "
                    "expired; add the domain again for a new challenge."
                ).format(domain=domain_name, days=days),
            )
        resolver = self.resolver()
        result: Verification
        if state == DomainState.PENDING:
            result = asyncio.run(verify_claim(resolver, self.settings, domain_name, token))
        else:
            result = asyncio.run(verify_delegation(resolver, self.settings, domain_name))
        now = self.clock()
        transfer: Transfer | None = None
        try:
            with self.sessions.begin() as db:
                domain = db.get(Domain, pk)
                if domain is None:
                    raise ServiceError(404, "domain-not-found", _(_NOT_HOSTED).format(name=name))
                domain.last_verify_at = now
                domain.last_verify = result.to_dict()
                activated = result.ok and domain.state == DomainState.PENDING
                if activated:
                    transfer = self._activate(db, domain, user, now)
                state = domain.state
        except IntegrityError as exc:  # another claim of the name became active meanwhile
            raise ServiceError(
                409,
                "verify-conflict",
                _("{domain} changed while it was being verified; verify it again.").format(
                    domain=domain_name
                ),
            ) from exc
        self.refresh_domain(domain_name)
        if transfer is not None:
            self._tell_previous_owner(transfer)
        return ClaimOutcome(domain_name, state, result, activated, transfer is not None)

    def _activate(
        self, db: Session, domain: Domain, user: User | None, now: datetime
    ) -> Transfer | None:
        """Make the proven claim ``domain`` the served hosting of its name (in ``db``'s
        transaction); the hosting it replaces, if any, ends with its data."""
        transfer = None
        previous = served_hosting(db, domain.name)
        if previous is not None and previous.id != domain.id:
            transfer = Transfer(
                domain.name, previous.owner_id, previous.owner.email, now, previous.owner.language
            )
            self._end_claim(db, previous, "domain-transferred")
        purge_name_data(db, domain.name)  # a hosting starts empty
        domain.state = DomainState.ACTIVE
        domain.verified_at = now
        domain.claim_expires_at = None
        if transfer is not None:
            # RFC 8461 §8.1: processes that have not synced yet still serve the previous
            # hosting's policy, so the TXT must not show this hosting's id before they
            # serve it: a new version now, whose id the TXT shows only after txt_delay
            latest = self._latest(db, domain)
            self._add_version(
                db,
                domain,
                user,
                Mode(latest.mode),
                list(latest.mx),
                latest.max_age,
                "activated (the name was served for another account before)",
            )
        detail = {"took_over": True} if transfer is not None else {}
        self._audit(
            db, user.id if user else None, domain.name, "domain-activated", detail, domain.id
        )
        return transfer

    def _tell_previous_owner(self, transfer: Transfer) -> None:
        """Alert the previous holder of a name taken over (``domain-transferred``), by the
        alert channels (mail to the owner, webhook). Nothing is stored under the name: it
        belongs to the new hosting now."""
        d = transfer.domain
        language = i18n.normalize(transfer.previous_owner_language) or i18n.DEFAULT
        with i18n.use(language):
            message = _(
                "{domain} is no longer hosted for your account: another account proved "
                "control of its DNS (its own challenge at _mtasts-challenge.{domain} and the "
                "delegation records) and hosts it now. The policy versions, reports, alerts "
                "and audit entries of your hosting of {domain} were deleted."
            ).format(domain=d)
            fix = _(
                "If you still control the DNS of {domain}, add it again and publish the new "
                "challenge; if not, nothing needs doing."
            ).format(domain=d)
        event = Event(
            event="opened",
            alert_id=0,
            domain=d,
            kind="domain-transferred",
            subject=d,
            severity="critical",
            message=message,
            fix=fix,
            opened_at=transfer.at,
            at=transfer.at,
            recipients=(transfer.previous_owner_email,),
            language=language,
        )
        try:
            Notifier(self.settings).deliver([event])
        except Exception:  # never fail the new owner's verification over a notification
            log.exception("telling the previous holder of %s failed", d)

    def expire_claims(self) -> int:
        """Remove the pending claims not proven within ``claim_ttl`` (run periodically)."""
        now = self.clock()
        with self.sessions.begin() as db:
            expired = expired_claims(db, now)
            for domain in expired:
                self._end_claim(db, domain, "domain-claim-expired")
        return len(expired)

    def reverify_pending(self) -> int:
        """Remove expired claims, then re-verify every pending one (run periodically);
        returns how many turned active."""
        self.expire_claims()
        with self.sessions() as db:
            rows = db.execute(
                select(Domain.id, Domain.name).where(Domain.state == DomainState.PENDING)
            ).all()
        activated = 0
        for pk, name in rows:
            try:
                activated += self.verify_hosting(None, name, hosting_id=pk).activated
            except ServiceError:
                continue  # removed or expired meanwhile
        return activated

    # --- policy changes ----------------------------------------------------------------

    def _clean_mx(self, mx: list[str]) -> list[str]:
        if not mx:
            raise ServiceError(422, "mx-empty", _("Give at least one mx pattern (RFC 8461 §3.2)."))
        out: list[str] = []
        for raw in mx:
            text = raw.strip()
            try:
                if not text.isascii():
                    star = text.startswith("*.")
                    text = ("*." if star else "") + to_alabel(text[2:] if star else text)
                pattern = validate_mx_pattern(text)
            except (MxPatternError, ValueError) as exc:
                message = say(exc.message) if isinstance(exc, MxPatternError) else str(exc)
                raise ServiceError(
                    422,
                    "mx-invalid",
                    _("mx {raw!r}: {problem} (RFC 8461 §3.2)").format(raw=raw, problem=message),
                ) from exc
            if pattern not in out:
                out.append(pattern)
        _check_mx_count(out)
        return out

    @staticmethod
    def _check_max_age(max_age: int) -> int:
        # RFC 8461 §3.2: max_age is at most 31557600 seconds
        if not MIN_MAX_AGE <= max_age <= MAX_AGE_LIMIT:
            raise ServiceError(
                422,
                "max-age-out-of-range",
                _(
                    "max_age must be between {low} (one day) and {high} (about a year, "
                    "RFC 8461 §3.2); got {max_age}."
                ).format(low=MIN_MAX_AGE, high=MAX_AGE_LIMIT, max_age=max_age),
            )
        return max_age

    def guard_enforce(self, domain: str, policy: Policy) -> EnforceGuard:
        """What senders would hit if ``policy`` were enforced now (RFC 8461 §5): the
        errors, and every MX host that would fail with its reason and fix."""
        result = asyncio.run(self.checker().check_policy(domain, policy))
        hosted_fix = _(
            "Add {host} to the policy's mx list (or refresh the mx list from the live MX "
            "records); mtasts serves the new policy and id itself."
        )
        failing = enforce_failures(result.mx_hosts, result.findings)
        failure_ids = {id(f) for _, found in failing for f in found}
        findings = []
        for f in result.findings:
            if f.severity is not Severity.ERROR and id(f) not in failure_ids:
                continue
            item = f.to_dict()
            if id(f) in failure_ids:
                item["reason"] = enforce_reason(f)
            if f.code == "mx-not-covered":
                # hosted: no file to edit and no id to change, mtasts does both
                item["fix"] = hosted_fix.format(host=f.subject)
            findings.append(item)
        failing_mx = [
            {
                "host": host,
                "reasons": [
                    {
                        "code": f.code,
                        "reason": enforce_reason(f),
                        "message": f.message,
                        "fix": hosted_fix.format(host=host)
                        if f.code == "mx-not-covered"
                        else f.fix,
                    }
                    for f in found
                ],
            }
            for host, found in failing
        ]
        blocked = any(f.severity is Severity.ERROR for f in result.findings)
        return EnforceGuard(blocked, findings, failing_mx)

    def set_policy(
        self,
        user: User | None,
        name: str,
        mode: Mode,
        mx: list[str] | None = None,
        max_age: int | None = None,
        force: bool = False,
        reason: str = "",
    ) -> dict[str, Any]:
        """Write a new policy version (and with it a new id). ``enforce`` is refused while
        any live MX would fail, unless ``force`` with a ``reason``. A request that changes
        nothing writes nothing: the answer says ``changed: false``."""
        reason = reason.strip()
        if force and not reason:
            raise ServiceError(
                422, "reason-required", _("force needs a reason (kept in the audit log).")
            )
        with self.sessions() as db:
            domain = self._owned(db, user, name)
            if domain.state == DomainState.RETIRING:
                raise ServiceError(
                    409,
                    "domain-retiring",
                    _("{domain} is being retired; add it again later.").format(domain=domain.name),
                )
            current = self._latest(db, domain)
            domain_name = domain.name
        new_mx = self._clean_mx(mx) if mx is not None else list(current.mx)
        new_max_age = self._check_max_age(max_age) if max_age is not None else current.max_age
        policy = Policy("STSv1", mode, new_max_age, tuple(new_mx))
        if (
            not force
            and mode.value == current.mode
            and set(new_mx) == set(current.mx)
            and new_max_age == current.max_age
        ):
            # Nothing changed: no new version and no new id (senders would refetch the same
            # policy). The same MX set in another order is the same policy (RFC 8461 §4.1).
            view = self.get_domain(user, domain_name)
            view["changed"] = False
            return view
        findings: list[dict[str, Any]] = []
        if mode is Mode.ENFORCE:
            guard = self.guard_enforce(domain_name, policy)
            if guard.blocked:
                findings = guard.findings
            if guard.blocked and not force:
                hosts = ", ".join(
                    f"{m['host']} ({', '.join(r['reason'] for r in m['reasons'])})"
                    for m in guard.failing_mx
                )
                raise ServiceError(
                    409,
                    "enforce-refused",
                    (
                        _(
                            "Switching {domain} to enforce would make senders refuse mail: "
                            "{hosts} would fail. Fix them, or force with a reason."
                        )
                        if hosts
                        else _(
                            "Switching {domain} to enforce would make senders refuse mail. "
                            "Fix them, or force with a reason."
                        )
                    ).format(domain=domain_name, hosts=hosts),
                    {"findings": guard.findings, "failing_mx": guard.failing_mx},
                )
        with self.sessions.begin() as db:
            domain = self._owned(db, user, domain_name)
            v = self._add_version(
                db,
                domain,
                user,
                mode,
                new_mx,
                new_max_age,
                reason or "policy changed",
                forced=bool(findings),
            )
            detail: dict[str, Any] = {"version": v.number, "id": v.policy_id, "mode": str(mode)}
            if findings:
                detail["forced_over"] = [f["code"] for f in findings]
                detail["reason"] = reason
            action = "policy-forced" if findings else "policy-set"
            self._audit(db, user.id if user else None, domain_name, action, detail, domain.id)
        self.refresh_domain(domain_name)
        view = self.get_domain(user, domain_name)
        view["changed"] = True
        return view

    def refresh_mx(self, user: User | None, name: str) -> dict[str, Any]:
        """A new version listing the live MX hosts (same mode; enforce stays guarded)."""
        with self.sessions() as db:
            domain = self._owned(db, user, name)
            mode = Mode(self._latest(db, domain).mode)
            domain_name = domain.name
        mx = self.live_mx(domain_name)
        return self.set_policy(user, domain_name, mode, mx=mx, reason="mx refreshed from DNS")

    def retire(self, user: User, name: str) -> dict[str, Any]:
        """RFC 8461 §8.3: serve `mode: none` under a new id until every cached policy has
        expired, then stop. A domain never served is removed at once."""
        with self.sessions.begin() as db:
            domain = self._owned(db, user, name)
            domain_name = domain.name
            if domain.state == DomainState.PENDING:
                # a claim has no alerts or reports: those of the name belong to its served
                # hosting, if another account has one
                self._end_claim(db, domain, "domain-removed")
                result = {"domain": domain_name, "state": "removed"}
            elif domain.state == DomainState.RETIRING:
                raise ServiceError(
                    409,
                    "domain-retiring",
                    _("{domain} is already being retired.").format(domain=domain_name),
                )
            else:
                longest = db.scalar(
                    select(func.max(PolicyVersion.max_age)).where(
                        PolicyVersion.domain_id == domain.id
                    )
                )
                current = self._latest(db, domain)
                v = self._add_version(
                    db, domain, user, Mode.NONE, list(current.mx), RETIRE_MAX_AGE, "retiring"
                )
                now = self.clock()
                self._close_alerts(db, [domain_name])
                domain.state = DomainState.RETIRING
                domain.retire_after = now + timedelta(seconds=max(longest or 0, RETIRE_MAX_AGE))
                self._audit(
                    db,
                    user.id,
                    domain_name,
                    "domain-retiring",
                    {"id": v.policy_id, "retire_after": _aware(domain.retire_after).isoformat()},
                    domain.id,
                )
                result = {
                    "domain": domain_name,
                    "state": DomainState.RETIRING,
                    "retire_after": _aware(domain.retire_after).isoformat(),
                    "message": _(
                        "Serving mode none with a new id until every sender's cached policy "
                        "has expired; then the domain is removed and you can delete the "
                        "three CNAMEs."
                    ),
                }
        self.refresh_domain(domain_name)
        return result

    def finish_retirements(self) -> int:
        """Remove retiring domains whose wait is over, with their data (run periodically)."""
        now = self.clock()
        with self.sessions.begin() as db:
            done = list(
                db.scalars(
                    select(Domain).where(
                        Domain.state == DomainState.RETIRING, Domain.retire_after <= now
                    )
                )
            )
            names = [d.name for d in done]
            for domain in done:
                self._end_claim(db, domain, "domain-removed")
        for name in names:
            self.refresh_domain(name)
        return len(names)

    # --- audit and snapshot ------------------------------------------------------------

    def _close_alerts(self, db: Session, names: list[str]) -> None:
        """A domain no longer monitored (retiring or removed) keeps no open alert."""
        db.execute(
            update(Alert)
            .where(Alert.domain.in_(names), Alert.state == "open")
            .values(state="closed", closed_at=self.clock())
        )

    def _audit(
        self,
        db: Session,
        user_id: int | None,
        domain: str,
        action: str,
        detail: dict[str, Any],
        domain_id: int | None = None,
    ) -> None:
        """Log a change: of the hosting ``domain_id``, or (None) of ``user_id``'s account.
        Every event names its domain, for other processes' sync of the snapshot."""
        db.add(
            AuditEvent(
                at=self.clock(),
                user_id=user_id,
                domain=domain,
                domain_id=domain_id,
                action=action,
                detail=detail,
            )
        )

    def audit_log(self, user: User, name: str) -> list[dict[str, Any]]:
        with self.sessions() as db:
            domain = self._owned(db, user, name)
            rows = db.execute(
                select(AuditEvent, User.email)
                .outerjoin(User, User.id == AuditEvent.user_id)
                .where(AuditEvent.domain_id == domain.id)
                .order_by(AuditEvent.id)
            ).all()
            return [
                {
                    "at": _aware(e.at).isoformat(),
                    "user": email,
                    "action": e.action,
                    "detail": e.detail,
                }
                for e, email in rows
            ]

    def account_audit(self, user: User) -> list[dict[str, Any]]:
        """``user``'s account events: tokens, domains added and removed, claims expired,
        and domains another account took over (newest last, at most 1000)."""
        with self.sessions() as db:
            rows = db.scalars(
                select(AuditEvent)
                .where(AuditEvent.user_id == user.id, AuditEvent.domain_id.is_(None))
                .order_by(AuditEvent.id.desc())
                .limit(1000)
            ).all()
            return [
                {
                    "at": _aware(e.at).isoformat(),
                    "domain": e.domain or None,
                    "action": e.action,
                    "detail": e.detail,
                }
                for e in reversed(rows)
            ]

    def generation(self) -> int:
        """The store's change counter (highest audit id)."""
        with self.sessions() as db:
            return int(db.scalar(select(func.max(AuditEvent.id))) or 0)

    def _entries(self, db: Session, names: list[str] | None = None) -> list[Hosted]:
        cur, prev = aliased(PolicyVersion), aliased(PolicyVersion)
        q = (
            select(
                Domain.name,
                Domain.state,
                cur.policy_id,
                cur.mode,
                cur.mx,
                cur.max_age,
                cur.created_at,
                prev.policy_id,
            )
            .join(cur, (cur.domain_id == Domain.id) & (cur.number == Domain.latest_version))
            .outerjoin(
                prev, (prev.domain_id == Domain.id) & (prev.number == Domain.latest_version - 1)
            )
            .where(Domain.state.in_(DomainState.SERVED))
        )
        if names is not None:
            q = q.where(Domain.name.in_(names))
        out = []
        # A full load streams the rows (yield_per: a server-side cursor on PostgreSQL),
        # closed here on every way out. The names of one sync are few (at most LOOKBACK
        # changes): read at once, without a server-side cursor, which a statement timeout
        # on a locked table could leave to the garbage collector (seen under load).
        if names is None:
            q = q.execution_options(yield_per=5000)
        rows = db.execute(q)
        try:
            for name, state, pid, mode, mx, max_age, created, prev_id in rows:
                body = Policy("STSv1", Mode(mode), max_age, tuple(mx)).serialize().encode()
                out.append(
                    Hosted(
                        domain=name,
                        state=sys.intern(state),
                        policy_id=pid,
                        body=body,
                        changed_at=_aware(created).timestamp(),
                        previous_id=prev_id,
                    )
                )
        finally:
            with contextlib.suppress(Exception):  # a store gone away cannot close it
                rows.close()
        return out

    def load_snapshot(self) -> Snapshot:
        """A fresh snapshot of every served domain."""
        with self.sessions() as db:
            generation = int(db.scalar(select(func.max(AuditEvent.id))) or 0)
            hosts = {e.domain: e for e in self._entries(db)}
        return Snapshot(hosts=hosts, generation=generation, loaded_at=time.time())

    def refresh_domain(self, name: str) -> None:
        """Patch one domain into the snapshot after a local change (the policy first, so
        the TXT served from the same entry never runs ahead of it, RFC 8461 §8.1)."""
        with self.sessions() as db:
            # The counter first: the rows read after it are at least that fresh.
            generation = int(db.scalar(select(func.max(AuditEvent.id))) or 0)
            entries = {e.domain: e for e in self._entries(db, [name])}
        self.snapshot.patch(generation, entries, [name])
        for callback in self.on_change:
            callback()

    def read_changes(self) -> SyncRead | None:
        """The first half of :meth:`sync`: read what changed in the store since the last
        sync (None when nothing did). Nothing is applied yet."""
        snap = self.snapshot
        with self.sessions() as db:
            # The counter first: the rows read after it are at least that fresh.
            generation = int(db.scalar(select(func.max(AuditEvent.id))) or 0)
            if generation == snap.generation:
                return None
            stale = time.time() - snap.loaded_at > FULL_RELOAD
            if snap.generation < 0 or stale or generation - snap.generation > LOOKBACK:
                return SyncRead(generation, {e.domain: e for e in self._entries(db)}, None)
            # Ids are handed out before commit, so a transaction that began earlier can
            # commit a lower id after a later one: look back, patching is idempotent.
            names = set(
                db.scalars(
                    select(AuditEvent.domain).where(
                        AuditEvent.id > snap.generation - LOOKBACK, AuditEvent.domain != ""
                    )
                )
            )
            entries = {e.domain: e for e in self._entries(db, sorted(names))}
            return SyncRead(generation, entries, sorted(names))

    def apply_changes(self, read: SyncRead) -> None:
        """The second half of :meth:`sync`: apply ``read``, never putting back an entry
        older than one a local change patched in meanwhile (see Snapshot)."""
        snap = self.snapshot
        if read.names is None:
            snap.replace_all(read.generation, read.entries)
        else:
            snap.patch(read.generation, read.entries, read.names)
        snap.advance(read.generation)

    def sync(self) -> bool:
        """Catch up with changes made by other processes: patch the domains named in the
        audit log since the last sync, or reload everything after a long gap (and every
        FULL_RELOAD seconds, as a safety net). Raises the database error when the store is
        unreachable; the snapshot then stays as it was."""
        read = self.read_changes()
        if read is None:
            return False
        self.apply_changes(read)
        for callback in self.on_change:
            callback()
        return True
