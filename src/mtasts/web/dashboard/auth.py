"""Dashboard sign-in: argon2 password hashes, signed session cookies, CSRF tokens and a
small in-memory limit on failed sign-ins.

The session lives in one cookie signed with a key kept in the data directory
(``dashboard-secret``): ``{"uid", "pw", "csrf", "flash"}``. ``pw`` is a fingerprint of the
user's password hash, so setting a new password ends every other session. The cookie is
HttpOnly, SameSite=Lax, and Secure whenever the browser came over HTTPS (directly, or
through the TLS front on this host, which says so in X-Forwarded-Proto).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response

from mtasts.hosting.tenants import HostingService, ServiceError
from mtasts.store.models import ApiToken, AuditEvent, User

COOKIE = "mtasts_session"
SESSION_MAX_AGE = 12 * 3600  # seconds; then sign in again
SECRET_FILE = "dashboard-secret"  # noqa: S105 - a file name
MIN_PASSWORD = 10
_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the e-mail is unknown, so both cases take the same time."""
    return _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def fingerprint(password_hash: str | None) -> str:
    return hashlib.sha256((password_hash or "").encode()).hexdigest()[:24]


def check_password_strength(password: str, email: str = "") -> None:
    if len(password) < MIN_PASSWORD:
        raise ServiceError(
            422, "password-too-short", f"Use at least {MIN_PASSWORD} characters for a password."
        )
    if email and password.strip().lower() == email.strip().lower():
        raise ServiceError(422, "password-is-email", "The password must not be the e-mail.")


def set_password(
    service: HostingService, email: str, password: str, *, admin: bool = False
) -> bool:
    """Set ``email``'s dashboard password (the user is created if new; ``admin`` grants
    admin rights). Returns True when the user was created."""
    email = email.strip().lower()
    if "@" not in email or len(email) > 320:
        raise ServiceError(422, "email-invalid", f"{email!r} is not an e-mail address.")
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
        raise ServiceError(403, "password-wrong", "The current password is not right.")
    set_password(service, user.email, new)
    with service.sessions() as db:
        row = db.get(User, user.id)
        assert row is not None
        db.expunge(row)
        return row


def session_user(service: HostingService, uid: int, pw: str) -> User | None:
    with service.sessions() as db:
        user = db.get(User, uid)
        if user is None or not user.password_hash:
            return None
        if not hmac.compare_digest(fingerprint(user.password_hash), pw):
            return None  # the password changed since this session began
        db.expunge(user)
        return user


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
                "created_at": t.created_at,
                "last_used_at": t.last_used_at,
            }
            for t in rows
        ]


def revoke_token(service: HostingService, user: User, token_id: int) -> None:
    with service.sessions.begin() as db:
        row = db.get(ApiToken, token_id)
        if row is None or row.user_id != user.id:
            raise ServiceError(404, "token-not-found", "No such token.")
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

    def start(self, user: User) -> None:
        """A fresh session for ``user`` (new CSRF token: nothing carries over)."""
        self.data = {
            "uid": user.id,
            "pw": fingerprint(user.password_hash),
            "csrf": secrets.token_urlsafe(32),
        }
        self.dirty = True

    def clear(self) -> None:
        self.data = {"csrf": secrets.token_urlsafe(32)}
        self.dirty = True


class Sessions:
    def __init__(self, secret: bytes) -> None:
        self.serializer = URLSafeTimedSerializer(secret, salt="mtasts-dashboard-session")

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
            secure=is_https(request),
        )


def _from_loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    return host.startswith("127.") or host == "::1"


def is_https(request: Request) -> bool:
    """Whether the browser talks HTTPS: directly, or to the TLS front on this host (Caddy
    sets X-Forwarded-Proto). Only the cookie's Secure flag depends on it, so a forged
    header can do no more than keep a cookie off plain HTTP."""
    if request.url.scheme == "https":
        return True
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[-1].strip().lower()
    return _from_loopback(request) and forwarded == "https"


def client_ip(request: Request) -> str:
    """The browser's address: behind the TLS front on this host, the address it appended
    last to X-Forwarded-For (earlier entries come from the client and prove nothing)."""
    peer = request.client.host if request.client else ""
    forwarded = request.headers.get("x-forwarded-for", "")
    if forwarded and _from_loopback(request):
        return forwarded.split(",")[-1].strip() or peer
    return peer


def csrf_ok(session: Session, sent: str | None) -> bool:
    expected = session.data.get("csrf")
    return bool(expected and sent) and hmac.compare_digest(str(expected), str(sent))


class LoginLimiter:
    """At most ``per_email`` failed sign-ins per e-mail and ``per_ip`` per client address
    within ``window`` seconds."""

    def __init__(self, per_email: int = 5, per_ip: int = 30, window: float = 300.0) -> None:
        self.per_email, self.per_ip, self.window = per_email, per_ip, window
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._failures.setdefault(key, deque())
        while q and q[0] <= now - self.window:
            q.popleft()
        return q

    def retry_after(self, email: str, ip: str) -> int:
        """Seconds to wait before another try is allowed (0: go ahead)."""
        now = time.monotonic()
        with self._lock:
            waits = []
            for key, limit in ((f"e:{email}", self.per_email), (f"i:{ip}", self.per_ip)):
                q = self._recent(key, now)
                if len(q) >= limit:
                    waits.append(int(q[0] + self.window - now) + 1)
            return max(waits, default=0)

    def failed(self, email: str, ip: str) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._failures) > 100_000:  # bounded memory under a spray of addresses
                self._failures.clear()
            for key in (f"e:{email}", f"i:{ip}"):
                self._recent(key, now).append(now)

    def succeeded(self, email: str) -> None:
        with self._lock:
            self._failures.pop(f"e:{email}", None)
