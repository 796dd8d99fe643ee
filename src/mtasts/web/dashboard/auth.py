"""Dashboard sign-in: argon2 password hashes, signed session cookies, CSRF tokens and a
small in-memory limit on failed sign-ins.

The session lives in one cookie signed with a key kept in the data directory
(``dashboard-secret``): ``{"uid", "pw", "ep", "csrf", "flash", "lang"}`` (``lang``: the
language chosen while signed out; a signed-in user's choice is ``users.language``).
``pw`` is a fingerprint of the user's password hash, so setting a new password ends every
other session. ``ep`` is the user's session epoch (``users.session_epoch``): signing out
increments it on the server, so a cookie copied before the sign-out no longer opens
anything (signing out ends every session of that user). The cookie is HttpOnly,
SameSite=Lax, and Secure whenever the browser came over HTTPS (directly, or through a
trusted TLS front, which says so in X-Forwarded-Proto; see ``trusted_proxies``).
"""

from __future__ import annotations

import functools
import hashlib
import heapq
import hmac
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv6Address, ip_address, ip_network
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import select, update
from starlette.requests import Request
from starlette.responses import Response

from mtasts import i18n
from mtasts.config import proxy_networks
from mtasts.hosting.tenants import HostingService, ServiceError, token_fingerprint
from mtasts.i18n import _
from mtasts.store.models import ApiToken, AuditEvent, User

COOKIE = "mtasts_session"
SESSION_MAX_AGE = 12 * 3600  # seconds; then sign in again
SECRET_FILE = "dashboard-secret"  # noqa: S105 - a file name
MIN_PASSWORD = 10
# Sign-in failures are remembered for at most this many e-mails (and as many addresses):
# about 0.3 KiB each, so a spray of made-up addresses costs at most ~15 MiB per table.
MAX_LIMITER_ENTRIES = 50_000
_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the e-mail is unknown, so both cases take the same time."""
    return _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def fingerprint(password_hash: str | None) -> str:
    return hashlib.sha256((password_hash or "").encode()).hexdigest()[:24]


MIN_DISTINCT = 5  # "aaaaaaaaaa" and "1212121212" are long enough, yet guessed at once
# Guessed first by anyone trying: keyboard rows, counting, the product's own name.
_COMMON = ("password", "passwort", "qwerty", "azerty", "123456", "654321", "letmein", "mtasts")


def check_password_strength(password: str, email: str = "") -> None:
    """A minimum strength: at least MIN_PASSWORD characters, MIN_DISTINCT different ones,
    not built on a well-known word or sequence, not the e-mail or its local part."""
    if len(password) < MIN_PASSWORD:
        raise ServiceError(
            422,
            "password-too-short",
            _("Use at least {n} characters for a password.").format(n=MIN_PASSWORD),
        )
    lowered = password.strip().lower()
    if email and lowered == email.strip().lower():
        raise ServiceError(422, "password-is-email", _("The password must not be the e-mail."))
    # RFC 5321 §4.1.2: a quoted local part may hold "@", a domain never does
    local = email.strip().lower().rpartition("@")[0]
    if len(set(password)) < MIN_DISTINCT:
        raise ServiceError(
            422,
            "password-too-weak",
            _(
                "Use at least {n} different characters; a repeated pattern is guessed at once."
            ).format(n=MIN_DISTINCT),
        )
    stripped = lowered.strip("0123456789!?.-_ ")
    if any(word in lowered and len(stripped) <= len(word) + 2 for word in _COMMON) or (
        len(local) >= 4 and local in lowered and len(lowered) - len(local) < 6
    ):
        raise ServiceError(
            422,
            "password-too-weak",
            _(
                "That password is built on a well-known word or on the e-mail; choose "
                "something longer or unrelated (a few random words work well)."
            ),
        )


def set_password(
    service: HostingService, email: str, password: str, *, admin: bool = False
) -> bool:
    """Set ``email``'s dashboard password (the user is created if new; ``admin`` grants
    admin rights). Returns True when the user was created."""
    email = email.strip().lower()
    if "@" not in email or len(email) > 320:
        raise ServiceError(
            422, "email-invalid", _("{email!r} is not an e-mail address.").format(email=email)
        )
    check_password_strength(password, email)
    hashed = hash_password(password)
    with service.sessions.begin() as db:
        user = db.scalar(select(User).where(User.email == email))
        created = user is None
        if user is None:
            user = User(email=email, is_admin=admin, created_at=service.clock())
            db.add(user)
            db.flush()
        elif admin:
            user.is_admin = True
        user.password_hash = hashed
        db.add(
            AuditEvent(
                at=service.clock(),
                user_id=user.id,
                domain="",
                action="password-set",
                detail={"email": email},
            )
        )
    return created


def verify_login(service: HostingService, email: str, password: str) -> User | None:
    """The user whose e-mail and password match, else None (same cost either way)."""
    email = email.strip().lower()
    with service.sessions() as db:
        user = db.scalar(select(User).where(User.email == email))
        stored = user.password_hash if user is not None else None
    try:
        _hasher.verify(stored or _dummy_hash(), password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if user is None or stored is None:
        return None
    if _hasher.check_needs_rehash(stored):
        with service.sessions.begin() as db:
            row = db.get(User, user.id)
            if row is not None and row.password_hash == stored:
                row.password_hash = hash_password(password)
                stored = row.password_hash
        user.password_hash = stored
    return user


def change_password(service: HostingService, user: User, current: str, new: str) -> User:
    """Set a new password after checking the current one; returns the updated user."""
    if verify_login(service, user.email, current) is None:
        raise ServiceError(403, "password-wrong", _("The current password is not right."))
    set_password(service, user.email, new)
    with service.sessions() as db:
        row = db.get(User, user.id)
        assert row is not None
        db.expunge(row)
        return row


def set_language(service: HostingService, user: User, language: str) -> User:
    """Store ``user``'s own dashboard language (one of ``i18n.LANGUAGES``: the caller
    normalises it); returns the user with it."""
    with service.sessions.begin() as db:
        db.execute(update(User).where(User.id == user.id).values(language=language))
    user.language = language
    return user


def session_user(service: HostingService, uid: int, pw: str, epoch: int = 0) -> User | None:
    """The user of a session cookie, or None when the session has ended on the server."""
    with service.sessions() as db:
        user = db.get(User, uid)
        if user is None or not user.password_hash:
            return None
        if not hmac.compare_digest(fingerprint(user.password_hash), pw):
            return None  # the password changed since this session began
        if user.session_epoch != epoch:
            return None  # signed out since this session began
        db.expunge(user)
        return user


def end_sessions(service: HostingService, uid: int) -> None:
    """Sign ``uid`` out on the server: every cookie issued so far stops working."""
    with service.sessions.begin() as db:
        db.execute(update(User).where(User.id == uid).values(session_epoch=User.session_epoch + 1))


# --- API tokens (managed from the settings page) -------------------------------------


def list_tokens(service: HostingService, user: User) -> list[dict[str, Any]]:
    with service.sessions() as db:
        rows = db.scalars(
            select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id.desc())
        )
        return [
            {
                "id": t.id,
                "label": t.label,
                "fingerprint": token_fingerprint(t.token_hash),
                "created_at": t.created_at,
                "last_used_at": t.last_used_at,
            }
            for t in rows
        ]


def revoke_token(service: HostingService, user: User, token_id: int) -> None:
    with service.sessions.begin() as db:
        row = db.get(ApiToken, token_id)
        if row is None or row.user_id != user.id:
            raise ServiceError(404, "token-not-found", _("No such token."))
        db.delete(row)
        db.add(
            AuditEvent(
                at=service.clock(),
                user_id=user.id,
                domain="",
                action="token-revoked",
                detail={"label": row.label, "token": token_id},
            )
        )


# --- sessions and CSRF ---------------------------------------------------------------


def load_secret(data_dir: Path) -> bytes:
    """The signing key in ``data_dir``, created on first use (mode 0600). Every process
    serving the dashboard must share it."""
    path = data_dir / SECRET_FILE
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process was first
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return key


@dataclass
class Session:
    data: dict[str, Any] = field(default_factory=dict)
    dirty: bool = False

    @property
    def csrf(self) -> str:
        token = self.data.get("csrf")
        if not isinstance(token, str) or not token:
            token = secrets.token_urlsafe(32)
            self.data["csrf"] = token
            self.dirty = True
        return token

    def flash(self, message: str, kind: str = "ok") -> None:
        self.data["flash"] = [kind, message]
        self.dirty = True

    def pop_flash(self) -> tuple[str, str] | None:
        value = self.data.pop("flash", None)
        if value is None:
            return None
        self.dirty = True
        return (str(value[0]), str(value[1]))

    @property
    def language(self) -> str | None:
        """The language chosen while signed out (see ``users.language`` once signed in)."""
        return i18n.normalize(self.data.get("lang"))

    @language.setter
    def language(self, value: str) -> None:
        self.data["lang"] = value
        self.dirty = True

    def start(self, user: User) -> None:
        """A fresh session for ``user`` (new CSRF token: nothing carries over)."""
        self.data = {
            "uid": user.id,
            "pw": fingerprint(user.password_hash),
            "ep": user.session_epoch,
            "csrf": secrets.token_urlsafe(32),
        }
        self.dirty = True

    def clear(self) -> None:
        self.data = {"csrf": secrets.token_urlsafe(32)}
        self.dirty = True


class Sessions:
    def __init__(self, secret: bytes, trusted_proxies: tuple[str, ...] = ()) -> None:
        self.serializer = URLSafeTimedSerializer(secret, salt="mtasts-dashboard-session")
        self.trusted_proxies = trusted_proxies

    def load(self, request: Request) -> Session:
        raw = request.cookies.get(COOKIE)
        if raw:
            try:
                data = self.serializer.loads(raw, max_age=SESSION_MAX_AGE)
            except BadSignature:
                data = None
            if isinstance(data, dict):
                return Session(data)
        return Session()

    def save(self, request: Request, response: Response, session: Session) -> None:
        if not session.dirty:
            return
        response.set_cookie(
            COOKIE,
            self.serializer.dumps(session.data),
            max_age=SESSION_MAX_AGE,
            path="/",
            httponly=True,
            samesite="lax",
            secure=is_https(request, self.trusted_proxies),
        )


def _trusted_peer(request: Request, trusted_proxies: tuple[str, ...]) -> bool:
    """Whether the TCP peer is one of the operator's reverse proxies (``trusted_proxies``),
    whose X-Forwarded-* headers are then believed. Nobody else's are: any client can send
    them."""
    if not trusted_proxies or request.client is None:
        return False
    try:
        peer = ip_address(request.client.host)
    except ValueError:
        return False
    return any(peer in net for net in proxy_networks(trusted_proxies))


def is_https(request: Request, trusted_proxies: tuple[str, ...] = ()) -> bool:
    """Whether the browser talks HTTPS: directly, or to a trusted TLS front (Caddy sets
    X-Forwarded-Proto)."""
    if request.url.scheme == "https":
        return True
    if not _trusted_peer(request, trusted_proxies):
        return False
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[-1].strip().lower()
    return forwarded == "https"


def client_ip(request: Request, trusted_proxies: tuple[str, ...] = ()) -> str:
    """The browser's address: the TCP peer, unless that is a trusted proxy; then the
    rightmost X-Forwarded-For entry that is not itself a trusted proxy (entries to its left
    were written by the client and prove nothing)."""
    peer = request.client.host if request.client else ""
    if not _trusted_peer(request, trusted_proxies):
        return peer
    networks = proxy_networks(trusted_proxies)
    hops = [h.strip() for h in ",".join(request.headers.getlist("x-forwarded-for")).split(",")]
    hops = [h for h in hops if h]
    for hop in reversed(hops):
        try:
            addr = ip_address(hop)
        except ValueError:
            return hop  # written by our proxy (it is right of every client entry): keep it
        if not any(addr in net for net in networks):
            return hop
    return hops[0] if hops else peer


def csrf_ok(session: Session, sent: str | None) -> bool:
    expected = session.data.get("csrf")
    return bool(expected and sent) and hmac.compare_digest(str(expected), str(sent))


def _email_key(email: str) -> str:
    """No e-mail is longer than 320 characters: longer input is kept as a digest, so a
    sprayed megabyte of text costs the table no more than an address."""
    if len(email) <= 320:
        return email
    return "#" + hashlib.sha256(email.encode("utf-8", "surrogatepass")).hexdigest()


def _ip_key(ip: str) -> str:
    """IPv6 clients usually hold a whole /64: count it as one address."""
    try:
        addr = ip_address(ip)
    except ValueError:
        return ip
    if isinstance(addr, IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ip_network(f"{addr}/64", strict=False))
    return str(addr)


class _FailureTable:
    """Recent failure times per key (e-mail or address), in bounded memory.

    A key with ``limit`` failures within ``window`` seconds is *blocked* until the oldest
    of them is ``window`` old. Memory stays under ``max_entries`` keys: entries whose
    failures have all expired go first, then the least recently failed entry that is not
    blocked. A current block is never forgotten. When every entry is a current block, a
    new key is counted in one of ``buckets`` shared slots (a hash of the key, so an
    attacker cannot aim at a slot): coarser, it may block innocent keys sharing a slot
    while the table is full of blocks, but it never lets a blocked key through.
    """

    def __init__(self, limit: int, window: float, max_entries: int, buckets: int = 4096) -> None:
        self.limit, self.window, self.max_entries = limit, window, max_entries
        self._counting: OrderedDict[str, tuple[float, ...]] = OrderedDict()  # by last failure
        self._blocked: dict[str, float] = {}  # key -> when its block ends
        self._ends: list[tuple[float, str]] = []  # heap of (block end, key)
        self._buckets: list[tuple[float, ...]] = [()] * buckets
        self._salt = secrets.token_bytes(16)

    def __len__(self) -> int:
        return len(self._counting) + len(self._blocked)

    def _recent(self, times: tuple[float, ...], now: float) -> tuple[float, ...]:
        return tuple(t for t in times if t > now - self.window)

    def _bucket(self, key: str) -> int:
        digest = hashlib.blake2b(key.encode(), key=self._salt, digest_size=8).digest()
        return int.from_bytes(digest, "big") % len(self._buckets)

    def _prune(self, now: float) -> None:
        while self._ends and self._ends[0][0] <= now:
            end, key = heapq.heappop(self._ends)
            if self._blocked.get(key) == end:
                del self._blocked[key]
        while self._counting:
            key, times = next(iter(self._counting.items()))
            if times[-1] > now - self.window:
                break
            del self._counting[key]

    def wait(self, key: str, now: float) -> float:
        """Seconds until ``key`` may try again (0: now)."""
        self._prune(now)
        waits = [self._blocked[key] - now] if key in self._blocked else []
        shared = self._recent(self._buckets[self._bucket(key)], now)
        if len(shared) >= self.limit:
            waits.append(shared[0] + self.window - now)
        return max(waits, default=0.0)

    def fail(self, key: str, now: float) -> None:
        self._prune(now)
        if key in self._blocked:
            return
        times = self._counting.pop(key, None)
        if times is None and len(self) >= self.max_entries:
            if not self._counting:  # every entry is a current block: count it coarsely
                i = self._bucket(key)
                self._buckets[i] = (*self._recent(self._buckets[i], now), now)[-self.limit :]
                return
            self._counting.popitem(last=False)  # the least recently failed, not blocked
        recent = (*self._recent(times or (), now), now)[-self.limit :]
        if len(recent) >= self.limit:
            end = recent[0] + self.window
            self._blocked[key] = end
            heapq.heappush(self._ends, (end, key))
        else:
            self._counting[key] = recent

    def forget(self, key: str) -> None:
        self._counting.pop(key, None)
        self._blocked.pop(key, None)


class LoginLimiter:
    """At most ``per_email`` failed sign-ins per e-mail and ``per_ip`` per client address
    (IPv6: per /64) within ``window`` seconds, remembering at most ``max_entries`` e-mails
    and as many addresses (see ``_FailureTable``: current blocks are never forgotten)."""

    def __init__(
        self,
        per_email: int = 5,
        per_ip: int = 30,
        window: float = 300.0,
        max_entries: int = MAX_LIMITER_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries = max_entries
        self._emails = _FailureTable(per_email, window, max_entries)
        self._ips = _FailureTable(per_ip, window, max_entries)
        self._clock = clock
        self._lock = threading.Lock()

    @property
    def entries(self) -> tuple[int, int]:
        """How many e-mails and addresses are remembered now."""
        with self._lock:
            return len(self._emails), len(self._ips)

    def retry_after(self, email: str, ip: str) -> int:
        """Seconds to wait before another try is allowed (0: go ahead)."""
        now = self._clock()
        email = _email_key(email)
        with self._lock:
            wait = max(self._emails.wait(email, now), self._ips.wait(_ip_key(ip), now))
        return int(wait) + 1 if wait > 0 else 0

    def failed(self, email: str, ip: str) -> None:
        now = self._clock()
        email = _email_key(email)
        with self._lock:
            self._emails.fail(email, now)
            self._ips.fail(_ip_key(ip), now)

    def succeeded(self, email: str) -> None:
        email = _email_key(email)
        with self._lock:
            self._emails.forget(email)
