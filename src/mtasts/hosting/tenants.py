"""Hosting use cases: users and tokens, domains, policy versions, retirement, and the
snapshot they produce. Synchronous (the API runs these in worker threads); network steps
(MX lookups, delegation checks, guarded-enforce probes) run their own event loop."""

from __future__ import annotations

import asyncio
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

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased, sessionmaker

from mtasts.check.checker import Checker, CheckOptions, normalize_domain
from mtasts.check.findings import Severity
from mtasts.config import Settings
from mtasts.generate import DEFAULT_MAX_AGE
from mtasts.hosting.delegation import Verification, delegation_records, verify_delegation
from mtasts.hosting.snapshot import Hosted, Snapshot
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
MIN_MAX_AGE = 86_400  # below a day a policy protects little; RFC 8461 §3.2 advises weeks
LOOKBACK = 1000  # audit ids re-read at each sync (see sync)
FULL_RELOAD = 900.0  # seconds between full reloads of the snapshot
# mx lines per hosted policy. Real domains list a handful of MX hosts (wildcards cover
# large fleets); 100 lines of the longest names (253) stay far under MAX_POLICY_BYTES,
# while thousands would make a policy that senders truncate or refuse (RFC 8461 §3.3).
MAX_MX_LINES = 100


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
            f"A policy may list at most {MAX_MX_LINES} mx patterns; got {len(mx)}. Cover "
            "a fleet with a wildcard such as *.mx.example.com (RFC 8461 §3.2, §4.1).",
        )


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_policy_id(now: datetime, number: int) -> str:
    """Unique per domain and readable: UTC time plus the version number (RFC 8461 §3.1:
    1 to 32 letters and digits)."""
    return f"{now:%Y%m%d%H%M%S}v{number}"


def policy_of(v: PolicyVersion) -> Policy:
    return Policy(version="STSv1", mode=Mode(v.mode), max_age=v.max_age, mx=tuple(v.mx))


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)  # SQLite drops the zone


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
                422, "domain-nxdomain", f"{domain} does not exist in DNS (NXDOMAIN)."
            )
        if answer.status is DnsStatus.NODATA:
            return [domain]  # RFC 5321 §5.1: no MX means the domain itself is the MX
        if answer.status is not DnsStatus.OK:
            # the resolver's detail names the operator's nameservers: the log only
            log.warning("MX lookup of %s failed: %s: %s", domain, answer.status, answer.error)
            raise ServiceError(
                503,
                "mx-lookup-failed",
                f"The MX lookup of {domain} failed ({answer.status}); try again shortly.",
            )
        hosts = [m.exchange for m in answer.records]
        if not any(hosts):
            raise ServiceError(
                422,
                "mx-null",
                f"{domain} publishes a null MX (RFC 7505): it accepts no mail, so there is "
                "nothing for MTA-STS to protect.",
            )
        return list(dict.fromkeys(h for h in hosts if h))

    # --- users and tokens --------------------------------------------------------------

    def create_token(self, email: str, admin: bool = False, label: str = "") -> str:
        """A new API token for ``email`` (the user is created if new). Only its hash is
        stored: the token is shown once."""
        email = email.strip().lower()
        if "@" not in email or len(email) > 320:
            raise ServiceError(422, "email-invalid", f"{email!r} is not an e-mail address.")
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
                422, "domain-in-service-zone", f"{domain} is inside the service zone {zone}."
            )
        if len(domain) + len(".policy.") + len(zone) > 253:
            raise ServiceError(
                422,
                "domain-too-long",
                f"{domain} is too long to delegate into {zone} (names are at most 253 "
                "characters, RFC 1035 §2.3.4).",
            )
        return domain

    def _owned(self, db: Session, user: User | None, name: str) -> Domain:
        """The domain ``name`` if ``user`` may see it (None: mtasts itself, e.g. the
        monitor); 404 otherwise, so others' domains are indistinguishable from none."""
        domain = db.scalar(select(Domain).where(Domain.name == self._normalize(name)))
        if domain is None or (user and domain.owner_id != user.id and not user.is_admin):
            raise ServiceError(404, "domain-not-found", f"{name} is not hosted here.")
        return domain

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
        served = self.snapshot.hosts.get(domain.name)
        return {
            "domain": domain.name,
            "state": domain.state,
            "owner": domain.owner.email,
            "created_at": domain.created_at.isoformat(),
            "verified_at": domain.verified_at.isoformat() if domain.verified_at else None,
            "retire_after": domain.retire_after.isoformat() if domain.retire_after else None,
            "policy": self._version_dict(v),
            "policy_text": policy_of(v).serialize(),
            "served_id": served.policy_id if served else None,
            "dns_records": [r.to_dict() for r in delegation_records(self.settings, domain.name)],
            "tlsrpt_rua": list(self.settings.tlsrpt_rua(domain.name)),
            "last_verification": domain.last_verify,
        }

    @staticmethod
    def _version_dict(v: PolicyVersion) -> dict[str, Any]:
        return {
            "version": v.number,
            "id": v.policy_id,
            "mode": v.mode,
            "mx": list(v.mx),
            "max_age": v.max_age,
            "author": None,
            "reason": v.reason,
            "forced": v.forced,
            "created_at": _aware(v.created_at).isoformat(),
        }

    def add_domain(self, user: User, name: str) -> dict[str, Any]:
        """Start hosting ``name``: pending until its CNAMEs verify, with a `testing` policy
        built from the live MX set."""
        domain_name = self._normalize(name)
        with self.sessions() as db:
            if db.scalar(select(Domain.id).where(Domain.name == domain_name)) is not None:
                raise ServiceError(409, "domain-exists", f"{domain_name} is already hosted.")
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
                )
                db.add(domain)
                db.flush()
                self._add_version(db, domain, user, Mode.TESTING, mx, DEFAULT_MAX_AGE, "added")
                self._audit(db, user.id, domain_name, "domain-added", {"mx": mx})
        except IntegrityError as exc:
            raise ServiceError(409, "domain-exists", f"{domain_name} is already hosted.") from exc
        with self.sessions() as db:
            return self.view(db, self._owned(db, user, domain_name))

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
                f"The policy would be {len(body.encode())} bytes; senders read at most "
                f"{MAX_POLICY_BYTES} (RFC 8461 §3.3). Use fewer mx lines or wildcards.",
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
        """Resolve the delegation CNAMEs; a pending domain whose records are all in place
        becomes active and is served from now on."""
        with self.sessions() as db:
            domain = (
                self._owned(db, user, name)
                if user
                else db.scalar(select(Domain).where(Domain.name == name))
            )
            if domain is None:
                raise ServiceError(404, "domain-not-found", f"{name} is not hosted here.")
            domain_name = domain.name
        result: Verification = asyncio.run(
            verify_delegation(self.resolver(), self.settings, domain_name)
        )
        report = result.to_dict()
        now = self.clock()
        with self.sessions.begin() as db:
            domain = db.scalar(select(Domain).where(Domain.name == domain_name))
            if domain is None:
                raise ServiceError(404, "domain-not-found", f"{name} is not hosted here.")
            domain.last_verify_at = now
            domain.last_verify = report
            if result.ok and domain.state == DomainState.PENDING:
                domain.state = DomainState.ACTIVE
                domain.verified_at = now
                self._audit(db, user.id if user else None, domain_name, "domain-activated", {})
            report["state"] = domain.state
        self.refresh_domain(domain_name)
        return report

    def reverify_pending(self) -> int:
        """Re-verify every pending domain (run periodically); returns how many turned active."""
        with self.sessions() as db:
            names = list(db.scalars(select(Domain.name).where(Domain.state == "pending")))
        activated = 0
        for name in names:
            try:
                activated += self.verify(None, name)["state"] == DomainState.ACTIVE
            except ServiceError:
                continue  # removed meanwhile
        return activated

    # --- policy changes ----------------------------------------------------------------

    def _clean_mx(self, mx: list[str]) -> list[str]:
        if not mx:
            raise ServiceError(422, "mx-empty", "Give at least one mx pattern (RFC 8461 §3.2).")
        out: list[str] = []
        for raw in mx:
            text = raw.strip()
            try:
                if not text.isascii():
                    star = text.startswith("*.")
                    text = ("*." if star else "") + to_alabel(text[2:] if star else text)
                pattern = validate_mx_pattern(text)
            except (MxPatternError, ValueError) as exc:
                message = exc.message if isinstance(exc, MxPatternError) else str(exc)
                raise ServiceError(
                    422, "mx-invalid", f"mx {raw!r}: {message} (RFC 8461 §3.2)"
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
                f"max_age must be between {MIN_MAX_AGE} (one day) and {MAX_AGE_LIMIT} "
                f"(about a year, RFC 8461 §3.2); got {max_age}.",
            )
        return max_age

    def guard_enforce(self, domain: str, policy: Policy) -> list[dict[str, Any]]:
        """The errors senders would hit if ``policy`` were enforced now (RFC 8461 §5)."""
        result = asyncio.run(self.checker().check_policy(domain, policy))
        findings = [f.to_dict() for f in result.findings if f.severity is Severity.ERROR]
        for f in findings:
            if f["code"] == "mx-not-covered":
                # hosted: no file to edit and no id to change, mtasts does both
                f["fix"] = (
                    f"Add {f['subject']} to the policy's mx list (or refresh the mx list "
                    "from the live MX records); mtasts serves the new policy and id itself."
                )
        return findings

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
        any live MX would fail, unless ``force`` with a ``reason``."""
        reason = reason.strip()
        if force and not reason:
            raise ServiceError(
                422, "reason-required", "force needs a reason (kept in the audit log)."
            )
        with self.sessions() as db:
            domain = self._owned(db, user, name)
            if domain.state == DomainState.RETIRING:
                raise ServiceError(
                    409, "domain-retiring", f"{domain.name} is being retired; add it again later."
                )
            current = self._latest(db, domain)
            domain_name = domain.name
        new_mx = self._clean_mx(mx) if mx is not None else list(current.mx)
        new_max_age = self._check_max_age(max_age) if max_age is not None else current.max_age
        policy = Policy("STSv1", mode, new_max_age, tuple(new_mx))
        findings: list[dict[str, Any]] = []
        if mode is Mode.ENFORCE:
            findings = self.guard_enforce(domain_name, policy)
            if findings and not force:
                raise ServiceError(
                    409,
                    "enforce-refused",
                    f"Switching {domain_name} to enforce would make senders refuse mail: "
                    f"{len(findings)} problem(s) found. Fix them, or force with a reason.",
                    {"findings": findings},
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
            self._audit(db, user.id if user else None, domain_name, action, detail)
        self.refresh_domain(domain_name)
        return self.get_domain(user, domain_name)

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
                self._close_alerts(db, [domain_name])
                db.delete(domain)
                self._audit(db, user.id, domain_name, "domain-removed", {"was": "pending"})
                result = {"domain": domain_name, "state": "removed"}
            elif domain.state == DomainState.RETIRING:
                raise ServiceError(
                    409, "domain-retiring", f"{domain_name} is already being retired."
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
                    {"id": v.policy_id, "retire_after": domain.retire_after.isoformat()},
                )
                result = {
                    "domain": domain_name,
                    "state": DomainState.RETIRING,
                    "retire_after": domain.retire_after.isoformat(),
                    "message": "Serving mode none with a new id until every sender's cached "
                    "policy has expired; then the domain is removed and you can delete the "
                    "three CNAMEs.",
                }
        self.refresh_domain(domain_name)
        return result

    def finish_retirements(self) -> int:
        """Remove retiring domains whose wait is over (run periodically)."""
        now = self.clock()
        with self.sessions.begin() as db:
            done = list(
                db.scalars(
                    select(Domain).where(
                        Domain.state == DomainState.RETIRING, Domain.retire_after <= now
                    )
                )
            )
            for domain in done:
                self._audit(db, None, domain.name, "domain-removed", {"was": "retiring"})
            names = [d.name for d in done]
            if names:
                self._close_alerts(db, names)
                db.execute(
                    delete(PolicyVersion).where(PolicyVersion.domain_id.in_([d.id for d in done]))
                )
                db.execute(delete(Domain).where(Domain.name.in_(names)))
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
        self, db: Session, user_id: int | None, domain: str, action: str, detail: dict[str, Any]
    ) -> None:
        db.add(
            AuditEvent(
                at=self.clock(), user_id=user_id, domain=domain, action=action, detail=detail
            )
        )

    def audit_log(self, user: User, name: str) -> list[dict[str, Any]]:
        with self.sessions() as db:
            domain = self._owned(db, user, name)
            rows = db.execute(
                select(AuditEvent, User.email)
                .outerjoin(User, User.id == AuditEvent.user_id)
                .where(AuditEvent.domain == domain.name)
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
        for name, state, pid, mode, mx, max_age, created, prev_id in db.execute(
            q.execution_options(yield_per=5000)
        ):
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
            entries = self._entries(db, [name])
        if entries:
            self.snapshot.put(entries[0])
        else:
            self.snapshot.drop(name)
        for callback in self.on_change:
            callback()

    def sync(self) -> bool:
        """Catch up with changes made by other processes: patch the domains named in the
        audit log since the last sync, or reload everything after a long gap (and every
        FULL_RELOAD seconds, as a safety net). Raises the database error when the store is
        unreachable; the snapshot then stays as it was."""
        snap = self.snapshot
        with self.sessions() as db:
            generation = int(db.scalar(select(func.max(AuditEvent.id))) or 0)
            if generation == snap.generation:
                return False
            stale = time.time() - snap.loaded_at > FULL_RELOAD
            if snap.generation < 0 or stale or generation - snap.generation > LOOKBACK:
                fresh = {e.domain: e for e in self._entries(db)}
                snap.hosts, snap.generation, snap.loaded_at = fresh, generation, time.time()
            else:
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
                for name in names:
                    if name in entries:
                        snap.put(entries[name])
                    else:
                        snap.drop(name)
                snap.generation = generation
        for callback in self.on_change:
            callback()
        return True
