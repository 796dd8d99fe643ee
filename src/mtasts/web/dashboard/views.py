"""The dashboard's pages and actions. Every change goes through ``HostingService`` (run in
a worker thread, as the REST API does); a ``ServiceError`` becomes a message on the page.
Plain HTML forms work without JavaScript; HTMX adds the live parts (search, live
verification)."""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape
from starlette.datastructures import FormData

from mtasts import i18n
from mtasts.hosting.tenants import HostingService, ServiceError, hash_token, token_fingerprint
from mtasts.i18n import N_, _, ngettext
from mtasts.monitor.alerts import list_alerts
from mtasts.protocol.policy import Mode, Policy
from mtasts.reports.aggregate import summary
from mtasts.store.models import User
from mtasts.web import reports_api
from mtasts.web.dashboard import auth
from mtasts.web.dashboard.health import health, latest_checks

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
T = TypeVar("T")

templates = Jinja2Templates(directory=str(TEMPLATES))
router = APIRouter(include_in_schema=False)

# script-src 'self' only: no inline scripts anywhere (chart data travels as JSON in a
# <script type="application/json">, which is data, not code)
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
        "object-src 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _ago(value: datetime | str | None, now: datetime | None = None) -> str:
    if value is None:
        return _("never")
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    seconds = int(((now or datetime.now(UTC)) - when).total_seconds())
    if seconds < 0:
        return _("in the future")
    if seconds >= 86400:
        n = seconds // 86400
        return ngettext("{n} day ago", "{n} days ago", n).format(n=n)
    if seconds >= 3600:
        n = seconds // 3600
        return ngettext("{n} hour ago", "{n} hours ago", n).format(n=n)
    if seconds >= 60:
        n = seconds // 60
        return ngettext("{n} minute ago", "{n} minutes ago", n).format(n=n)
    return _("just now")


def _day(value: str) -> str:
    """An ISO day (``2026-11-30``) as the reader writes dates (Spanish: 30/11/2026)."""
    year, month, day = value.split("-")
    return _("{year}-{month}-{day}").format(year=year, month=month, day=day)


def _when(value: datetime | str | None) -> str:
    if value is None:
        return ""
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    when = when.astimezone(UTC)
    return _("{day} {time} UTC").format(day=_day(when.date().isoformat()), time=f"{when:%H:%M}")


# the thousands and decimal separators of each language (Spanish: 1.234,5)
_SEPARATORS = {"en": (",", "."), "es": (".", ",")}


def _number(value: float, decimals: int = 0) -> str:
    thousands, point = _SEPARATORS.get(i18n.current(), _SEPARATORS["en"])
    text = f"{value:,.{decimals}f}"
    return text.translate({ord(","): thousands, ord("."): point})


def _percent(value: float | None) -> str:
    if value is None:
        return "–"
    if value < 0.999995 or value == 1:
        return f"{_number(value * 100, 1)} %"
    return "100 %"


_CODE_SPAN = re.compile(r"`([^`\n]+)`")


def _fixtext(value: str | None) -> Markup:
    """A fix as HTML: `code` spans (Markdown-style, as the check writes them) become
    <code>, everything else is escaped; no literal backtick reaches the page."""
    parts = _CODE_SPAN.split(value or "")  # text, code, text, code, ..., text
    out = Markup("")
    for i, part in enumerate(parts):
        if i % 2:
            out += Markup("<code>{}</code>").format(part)
        else:
            out += escape(part.replace("`", ""))
    return out


# a hosting's state as the page names it (the API keeps the code)
STATES = {
    "active": N_("active"),
    "pending": N_("pending"),
    "retiring": N_("retiring"),
    "removed": N_("removed"),
}


def _state_name(state: str) -> str:
    return _(STATES[state]) if state in STATES else state


templates.env.filters["ago"] = _ago
templates.env.filters["day"] = _day
templates.env.filters["fixtext"] = _fixtext
templates.env.filters["when"] = _when
templates.env.filters["number"] = _number
templates.env.filters["percent"] = _percent
templates.env.filters["state_name"] = _state_name
# `_()` / `ngettext()` in templates speak the request's language (mtasts.i18n); newstyle:
# `_("... %(name)s ...", name=value)` escapes the value, and a literal % is written %%
templates.env.add_extension("jinja2.ext.i18n")
templates.env.install_gettext_callables(  # type: ignore[attr-defined]
    i18n.gettext, i18n.ngettext, newstyle=True
)
templates.env.globals["language"] = i18n.current
templates.env.globals["languages"] = i18n.NAMES


# --- request context -----------------------------------------------------------------


def _service(request: Request) -> HostingService:
    svc = request.app.state.service
    assert isinstance(svc, HostingService)
    return svc


def _sessions(request: Request) -> auth.Sessions:
    state = request.app.state
    sessions = getattr(state, "dashboard_sessions", None)
    if sessions is None:
        settings = _service(request).settings
        secret = settings.session_secret.encode() or auth.load_secret(settings.data_dir)
        sessions = auth.Sessions(secret, settings.trusted_proxies)
        state.dashboard_sessions = sessions
    assert isinstance(sessions, auth.Sessions)
    return sessions


def _limiter(request: Request) -> auth.LoginLimiter:
    limiter = getattr(request.app.state, "dashboard_limiter", None)
    if limiter is None:
        limiter = request.app.state.dashboard_limiter = auth.LoginLimiter()
    assert isinstance(limiter, auth.LoginLimiter)
    return limiter


async def run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """A synchronous service call in a worker thread."""
    return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))


def placeholder_zone(svc: HostingService | None) -> str:
    """The service zone when it is still the placeholder nobody controls, else ""."""
    from mtasts.config import DEFAULT_ZONE

    if svc is not None and svc.settings.zone_name == DEFAULT_ZONE:
        return DEFAULT_ZONE
    return ""


class PageError(Exception):
    """Shown as an error page (or, with ``Location``, a redirect); see ``page_error``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def page_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PageError)
    if "Location" in exc.headers:
        response: Response = RedirectResponse(exc.headers["Location"], status_code=303)
    else:
        svc = getattr(request.app.state, "service", None)
        session = _sessions(request).load(request)  # for the language switch's CSRF token
        response = templates.TemplateResponse(
            request,
            "error.html",
            {
                "user": None,
                "message": exc.message,
                "status": exc.status,
                "flash": None,
                "placeholder_zone": placeholder_zone(svc),
                "csrf": session.csrf,
                "here": _here(request),
            },
            status_code=exc.status,
            headers={k: v for k, v in exc.headers.items() if k != "Location"},
        )
        _sessions(request).save(request, response, session)
    response.headers.update(SECURITY_HEADERS)
    return response


def _here(request: Request) -> str:
    """Where the language switch brings the reader back: this page, or for a page that
    answers a form (a POST), the page that held the form (Referer, same site only)."""
    if request.method == "GET":
        return request.url.path + (f"?{request.url.query}" if request.url.query else "")
    referer = urlsplit(request.headers.get("referer", ""))
    if referer.netloc == request.headers.get("host") and referer.path:
        return referer.path + (f"?{referer.query}" if referer.query else "")
    return "/"


@dataclass
class Ctx:
    request: Request
    svc: HostingService
    session: auth.Session
    user: User | None
    form: FormData | None = None

    @property
    def signed_in(self) -> User:
        assert self.user is not None
        return self.user

    def field(self, name: str, default: str = "") -> str:
        value = self.form.get(name) if self.form is not None else None
        return value if isinstance(value, str) else default

    def render(
        self, template: str, status: int = 200, headers: dict[str, str] | None = None, **ctx: Any
    ) -> Response:
        context = {
            "user": self.user,
            "csrf": self.session.csrf,
            "flash": self.session.pop_flash(),
            "now": self.svc.clock(),
            "placeholder_zone": placeholder_zone(self.svc),
            "csrf_header": json.dumps({"X-CSRF-Token": self.session.csrf}),
            "here": _here(self.request),
            **ctx,
        }
        response = templates.TemplateResponse(
            self.request, template, context, status_code=status, headers=headers
        )
        response.headers.update(SECURITY_HEADERS)
        _sessions(self.request).save(self.request, response, self.session)
        return response

    def redirect(self, url: str, message: str = "", kind: str = "ok") -> Response:
        if message:
            self.session.flash(message, kind)
        if self.request.headers.get("HX-Request"):
            response: Response = Response(status_code=204, headers={"HX-Redirect": url})
        else:
            response = RedirectResponse(url, status_code=303)
        response.headers.update(SECURITY_HEADERS)
        _sessions(self.request).save(self.request, response, self.session)
        return response


async def _context(request: Request) -> Ctx:
    svc = _service(request)
    session = _sessions(request).load(request)
    user = None
    uid, pw, epoch = session.data.get("uid"), session.data.get("pw"), session.data.get("ep", 0)
    if isinstance(uid, int) and isinstance(pw, str) and isinstance(epoch, int):
        user = await run(auth.session_user, svc, uid, pw, epoch)
        if user is None:
            session.clear()  # password changed or user gone: sign in again
    i18n.choose(_language(request, user, session))
    return Ctx(request, svc, session, user)


async def page_language(request: Request, store: bool = True) -> None:
    """Speak the reader's language on a page no dashboard route answered (an unknown
    address, a bad query value, a fault). ``store=False`` (the store may be what failed):
    the session's choice and Accept-Language only, without the user's own setting."""
    if store:
        await _context(request)
    else:
        i18n.choose(_language(request, None, _sessions(request).load(request)))


def _language(request: Request, user: User | None, session: auth.Session) -> str:
    """The user's own setting, then the choice made while signed out (session cookie),
    then Accept-Language (RFC 9110 §12.5.4), then English."""
    return (
        i18n.normalize(user.language if user is not None else None)
        or i18n.normalize(session.language)
        or i18n.from_accept_language(request.headers.get("accept-language"))
        or i18n.DEFAULT
    )


def _login_url(request: Request) -> str:
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    return "/login" if target == "/" else f"/login?next={target}"


async def _check_post(request: Request, ctx: Ctx) -> None:
    """CSRF: the session's token in the form or the X-CSRF-Token header, and an Origin
    (when the browser sends one) naming this host."""
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host"):
        raise PageError(403, _("Cross-origin request refused."))
    ctx.form = await request.form()
    sent = request.headers.get("x-csrf-token") or ctx.field("csrf_token")
    if not auth.csrf_ok(ctx.session, sent):
        raise PageError(
            403, _("The form has expired or did not come from this site; reload the page.")
        )


async def page(request: Request) -> Ctx:
    """A signed-in user's page; others are sent to the sign-in page."""
    ctx = await _context(request)
    if ctx.user is None:
        if request.headers.get("HX-Request"):
            raise PageError(401, _("Sign in again."), {"HX-Redirect": "/login"})
        raise PageError(303, _("Sign in first."), {"Location": _login_url(request)})
    return ctx


async def action(request: Request) -> Ctx:
    """A signed-in user's POST, CSRF-checked."""
    ctx = await page(request)
    await _check_post(request, ctx)
    return ctx


Page = Annotated[Ctx, Depends(page)]
Action = Annotated[Ctx, Depends(action)]


# --- sign-in -------------------------------------------------------------------------


def _safe_next(target: str) -> str:
    # only paths of this site: "/x", never "//host" or "http://host"
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


@router.get("/login")
async def login_form(request: Request, next: str = "/") -> Response:
    ctx = await _context(request)
    if ctx.user is not None:
        return ctx.redirect(_safe_next(next))
    return ctx.render("login.html", next=_safe_next(next), email="", error="")


@router.post("/login")
async def login(request: Request) -> Response:
    ctx = await _context(request)
    await _check_post(request, ctx)
    email = ctx.field("email").strip().lower()
    password = ctx.field("password")
    target = _safe_next(ctx.field("next", "/"))
    limiter = _limiter(request)
    ip = auth.client_ip(request, ctx.svc.settings.trusted_proxies)
    wait = limiter.retry_after(email, ip)
    if wait:
        minutes = max(1, round(wait / 60))
        return ctx.render(
            "login.html",
            status=429,
            headers={"Retry-After": str(wait)},
            next=target,
            email=email,
            error=ngettext(
                "Too many failed sign-ins. Try again in about {n} minute.",
                "Too many failed sign-ins. Try again in about {n} minutes.",
                minutes,
            ).format(n=minutes),
        )
    user = await run(auth.verify_login, ctx.svc, email, password)
    if user is None:
        limiter.failed(email, ip)
        return ctx.render(
            "login.html",
            status=401,
            next=target,
            email=email,
            error=_("E-mail or password is not right."),
        )
    limiter.succeeded(email)
    chosen = ctx.session.language
    if chosen and chosen != user.language:  # chosen on the sign-in page: it is theirs now
        user = await run(auth.set_language, ctx.svc, user, chosen)
    ctx.session.start(user)
    return ctx.redirect(target)


@router.post("/logout")
async def logout(ctx: Action) -> Response:
    await run(auth.end_sessions, ctx.svc, ctx.signed_in.id)  # copies of the cookie too
    ctx.session.clear()
    if ctx.signed_in.language:  # the sign-in page keeps speaking the user's own choice
        ctx.session.language = ctx.signed_in.language
    ctx.session.flash(_("Signed out."))
    return ctx.redirect("/login")


@router.post("/language")
async def choose_language(request: Request) -> Response:
    """The language switch of every page: the signed-in user's own setting
    (``users.language``), or, signed out, a choice kept in the session cookie."""
    ctx = await _context(request)
    await _check_post(request, ctx)
    language = i18n.normalize(ctx.field("language"))
    if language is None:
        names = " / ".join(i18n.NAMES.values())
        raise PageError(422, _("Choose one of the languages offered: {names}.").format(names=names))
    if ctx.user is not None:
        await run(auth.set_language, ctx.svc, ctx.user, language)
    else:
        ctx.session.language = language
    return ctx.redirect(_safe_next(ctx.field("next", "/")))


# --- settings: tokens and password ---------------------------------------------------


DOMAIN_ENDINGS = {
    "domain-removed": N_("removed"),
    "domain-claim-expired": N_("claim expired before it was verified"),
    "domain-transferred": N_("taken over by another account that proved control of its DNS"),
}


async def _settings_page(ctx: Ctx, status: int = 200, **extra: Any) -> Response:
    tokens = await run(auth.list_tokens, ctx.svc, ctx.signed_in)
    events = await run(ctx.svc.account_audit, ctx.signed_in)
    # the domains this account no longer has, and why (newest first)
    ended = [e for e in reversed(events) if e["domain"] and e["action"] in DOMAIN_ENDINGS]
    values = {"new_token": None, "error": "", **extra}
    return ctx.render(
        "settings.html",
        status=status,
        tokens=tokens,
        ended=ended[:50],
        endings=DOMAIN_ENDINGS,
        **values,
    )


@router.get("/settings")
async def settings_page(ctx: Page) -> Response:
    return await _settings_page(ctx)


@router.post("/settings/tokens")
async def create_token(ctx: Action) -> Response:
    label = ctx.field("label").strip()[:100]
    token = await run(ctx.svc.create_token, ctx.signed_in.email, False, label)
    # shown once, on this response only (never stored in the session cookie)
    return await _settings_page(
        ctx, new_token=token, new_label=label, new_fingerprint=token_fingerprint(hash_token(token))
    )


@router.post("/settings/tokens/{token_id}/revoke")
async def revoke_token(token_id: int, ctx: Action) -> Response:
    try:
        await run(auth.revoke_token, ctx.svc, ctx.signed_in, token_id)
    except ServiceError as exc:
        return await _settings_page(ctx, status=exc.status, error=exc.message)
    return ctx.redirect("/settings", _("Token revoked: it no longer opens the API."))


@router.post("/settings/password")
async def change_password(ctx: Action) -> Response:
    new = ctx.field("new_password")
    if new != ctx.field("new_password_again"):
        return await _settings_page(ctx, status=422, error=_("The two new passwords differ."))
    try:
        user = await run(
            auth.change_password, ctx.svc, ctx.signed_in, ctx.field("current_password"), new
        )
    except ServiceError as exc:
        return await _settings_page(ctx, status=exc.status, error=exc.message)
    ctx.session.start(user)  # this session continues; every other one ends
    return ctx.redirect("/settings", _("Password changed. Other sessions are signed out."))


# --- domain list and onboarding ------------------------------------------------------


def _list_rows(svc: HostingService, user: User, query: str) -> list[dict[str, Any]]:
    domains = svc.list_domains(user)
    q = query.strip().lower()
    if q:
        domains = [
            d
            for d in domains
            if q in d["domain"]
            or q in d["state"]
            or q in _state_name(d["state"]).lower()
            or q in d["policy"]["mode"]
        ]
    with svc.sessions() as db:
        badges = health(db, domains, svc.clock())
    return [{"view": d, "health": badges[d["domain"]]} for d in domains]


@router.get("/")
async def domain_list(ctx: Page, q: str = "") -> Response:
    rows = await run(_list_rows, ctx.svc, ctx.signed_in, q)
    template = "_domain_rows.html" if ctx.request.headers.get("HX-Request") else "domains.html"
    return ctx.render(template, rows=rows, q=q)


@router.get("/domains/new")
async def new_domain(ctx: Page) -> Response:
    return ctx.render("domain_new.html", domain="", error="")


@router.post("/domains")
async def add_domain(ctx: Action) -> Response:
    name = ctx.field("domain").strip()
    try:
        view = await run(ctx.svc.add_domain, ctx.signed_in, name)
    except ServiceError as exc:
        return ctx.render("domain_new.html", status=exc.status, domain=name, error=exc.message)
    added = _("{domain} added.").format(domain=view["domain"])
    return ctx.redirect(f"/domains/{view['domain']}/setup", added)


async def _domain(ctx: Ctx, name: str) -> dict[str, Any]:
    try:
        return await run(ctx.svc.get_domain, ctx.signed_in, name)
    except ServiceError as exc:
        raise PageError(exc.status, exc.message) from exc


@router.get("/domains/{name}/setup")
async def setup(name: str, ctx: Page) -> Response:
    view = await _domain(ctx, name)
    return ctx.render("setup.html", d=view, verification=view["last_verification"], first=True)


@router.post("/domains/{name}/verify")
async def verify(name: str, ctx: Action) -> Response:
    view = await _domain(ctx, name)
    try:
        result = await run(ctx.svc.verify, ctx.signed_in, view["domain"])
    except ServiceError as exc:
        result = {"ok": False, "summary": exc.message, "records": []}
    if not ctx.request.headers.get("HX-Request"):
        ok = "active" if result.get("state") == "active" else ""
        return ctx.redirect(
            f"/domains/{view['domain']}" + ("" if ok else "/setup"),
            str(result["summary"]),
            "ok" if result["ok"] else "warn",
        )
    view["state"] = result.get("state", view["state"])
    return ctx.render("_verify.html", d=view, verification=result, first=False)


# --- the domain page -----------------------------------------------------------------


def _policy_lines(v: dict[str, Any]) -> list[str]:
    policy = Policy("STSv1", Mode(v["mode"]), v["max_age"], tuple(v["mx"]))
    return policy.serialize().splitlines()


# the reasons the hosting service itself gives a policy version (hosting/tenants.py), said
# in the reader's language; a reason the owner typed (forcing enforce) is shown as typed
SERVICE_REASONS = {
    "added": N_("added"),
    "policy changed": N_("policy changed"),
    "mx refreshed from DNS": N_("mx refreshed from DNS"),
}


def _with_diffs(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each version with the line diff from the version before it (newest first), and its
    reason in the reader's language."""
    out = []
    for i, v in enumerate(history):
        older = history[i + 1] if i + 1 < len(history) else None
        before = _policy_lines(older) if older else []
        diff = [
            ("add" if line[0] == "+" else "del" if line[0] == "-" else "same", line[2:])
            for line in difflib.ndiff(before, _policy_lines(v))
            if line[0] in "+- "
        ]
        reason = v.get("reason")
        shown = _(SERVICE_REASONS[reason]) if reason in SERVICE_REASONS else reason
        out.append({**v, "diff": diff, "reason": shown})
    return out


def _by_subject(findings: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for f in findings:
        grouped.setdefault(str(f.get("subject") or "policy"), []).append(f)
    return grouped


def _domain_page_data(svc: HostingService, user: User, name: str) -> dict[str, Any]:
    view = svc.get_domain(user, name)
    history = svc.history(user, view["domain"])
    audit = svc.audit_log(user, view["domain"])
    served = svc.served_name(user, name)
    with svc.sessions() as db:
        check = latest_checks(db, [view]).get(view["domain"])
        alerts = list_alerts(db, served) if served else []
    return {
        "d": view,
        "history": _with_diffs(history),
        "audit": audit[::-1],
        "check": check,
        "alerts": alerts,
    }


async def _domain_page(ctx: Ctx, name: str, status: int = 200, **extra: Any) -> Response:
    try:
        data = await run(_domain_page_data, ctx.svc, ctx.signed_in, name)
    except ServiceError as exc:
        raise PageError(exc.status, exc.message) from exc
    values: dict[str, Any] = {"blocked": None, "error": "", "form": {}, "errors": {}, **extra}
    if data["check"] is not None:
        values["check_groups"] = _by_subject(data["check"].findings)
    return ctx.render("domain.html", status=status, **data, **values)


@router.get("/domains/{name}")
async def domain_page(name: str, ctx: Page) -> Response:
    return await _domain_page(ctx, name)


# which form field a service error is about, so the message sits next to that field
_FIELD_OF_CODE = {
    "mx-empty": "mx",
    "mx-invalid": "mx",
    "mx-too-many": "mx",
    "max-age-out-of-range": "max_age",
}


def _unchanged(view: dict[str, Any]) -> str:
    p = view["policy"]
    return _(
        "Nothing changed: the policy already is mode {mode}, mx {mx}, max_age {max_age}. "
        "No new version and no new id."
    ).format(mode=p["mode"], mx=", ".join(p["mx"]), max_age=p["max_age"])


@router.post("/domains/{name}/policy")
async def set_policy(name: str, ctx: Action) -> Response:
    """Mode switch and mx/max_age edits. ``enforce`` is guarded by the service: a 409
    shows, per MX, what would break, and offers force with a reason. Invalid input stays
    in the form, with the error next to its field."""
    form = {k: ctx.field(k) for k in ("mode", "mx", "max_age", "reason", "force", "mx_form")}
    errors: dict[str, str] = {}
    try:
        mode = Mode(form["mode"])
    except ValueError:
        errors["mode"] = _("Choose testing, enforce or none.")
        mode = Mode.TESTING
    mx_lines = [line.strip() for line in form["mx"].splitlines() if line.strip()]
    mx: list[str] | None = mx_lines or None
    if form["mx_form"] and not mx_lines:
        # the API refuses [] the same way (RFC 8461 §3.2: at least one mx line)
        errors["mx"] = _("Give at least one mx pattern, one per line (RFC 8461 §3.2).")
    max_age: int | None = None
    if form["max_age"].strip():
        try:
            max_age = int(form["max_age"])
        except ValueError:
            errors["max_age"] = _("max_age must be a whole number of seconds.")
    if errors:
        return await _domain_page(ctx, name, 422, form=form, errors=errors)
    force = form["force"] == "yes"
    try:
        view = await run(
            ctx.svc.set_policy,
            ctx.signed_in,
            name,
            mode,
            mx,
            max_age,
            force=force,
            reason=form["reason"],
        )
    except ServiceError as exc:
        findings = exc.detail.get("findings")
        if exc.code == "enforce-refused" and isinstance(findings, list):
            blocked = {"message": exc.message, "by_mx": _by_subject(findings)}
            return await _domain_page(ctx, name, 409, blocked=blocked, form=form)
        field = _FIELD_OF_CODE.get(exc.code)
        if field:
            return await _domain_page(ctx, name, exc.status, form=form, errors={field: exc.message})
        return await _domain_page(ctx, name, exc.status, error=exc.message, form=form)
    if not view.get("changed", True):
        return ctx.redirect(f"/domains/{view['domain']}", _unchanged(view), "info")
    p = view["policy"]
    if p["forced"]:
        done = _(
            "New policy {id}: mode {mode} (forced; reason kept in the audit log). "
            "Senders pick it up with the new id."
        )
    else:
        done = _("New policy {id}: mode {mode}. Senders pick it up with the new id.")
    return ctx.redirect(f"/domains/{view['domain']}", done.format(id=p["id"], mode=p["mode"]))


@router.post("/domains/{name}/refresh-mx")
async def refresh_mx(name: str, ctx: Action) -> Response:
    try:
        view = await run(ctx.svc.refresh_mx, ctx.signed_in, name)
    except ServiceError as exc:
        findings = exc.detail.get("findings")
        if exc.code == "enforce-refused" and isinstance(findings, list):
            blocked = {"message": exc.message, "by_mx": _by_subject(findings)}
            return await _domain_page(ctx, name, 409, blocked=blocked)
        return await _domain_page(ctx, name, exc.status, error=exc.message)
    if not view.get("changed", True):
        return ctx.redirect(f"/domains/{view['domain']}", _unchanged(view), "info")
    mx = ", ".join(view["policy"]["mx"])
    return ctx.redirect(
        f"/domains/{view['domain']}", _("mx refreshed from DNS: {mx}.").format(mx=mx)
    )


@router.post("/domains/{name}/retire")
async def retire(name: str, ctx: Action) -> Response:
    view = await _domain(ctx, name)
    if ctx.field("confirm").strip().lower().rstrip(".") != view["domain"]:
        return await _domain_page(
            ctx,
            name,
            422,
            error=_("Type {domain} to confirm the retirement.").format(domain=view["domain"]),
        )
    try:
        result = await run(ctx.svc.retire, ctx.signed_in, view["domain"])
    except ServiceError as exc:
        return await _domain_page(ctx, name, exc.status, error=exc.message)
    if result["state"] == "removed":
        removed = _("{domain} removed (it was never served).").format(domain=view["domain"])
        return ctx.redirect("/", removed)
    return ctx.redirect(f"/domains/{view['domain']}", str(result["message"]))


# --- reports -------------------------------------------------------------------------


def _reports_data(svc: HostingService, user: User, name: str, days: int) -> dict[str, Any]:
    view = svc.get_domain(user, name)
    served = reports_api.served_or_409(svc, user, name)
    with svc.sessions() as db:
        data = summary(db, served, days, svc.clock())
    listing = reports_api.list_reports(view["domain"], svc, user, limit=50, offset=0)
    return {"d": view, "s": data, "listing": listing}


@router.get("/domains/{name}/reports")
async def reports_page(name: str, ctx: Page, days: int = 30) -> Response:
    days = min(max(days, 1), 366)
    try:
        data = await run(_reports_data, ctx.svc, ctx.signed_in, name, days)
    except ServiceError as exc:
        raise PageError(exc.status, exc.message) from exc
    s = data["s"]
    chart = {
        "labels": [_day(d["day"]) for d in s["by_day"]],
        "names": {
            "successful": _("successful"),
            "failed": _("failed"),
            "rate": _("failure rate %"),
            "sessions": _("sessions"),
            "failed_percent": _("% failed"),
        },
        "successful": [d["successful"] for d in s["by_day"]],
        "failed": [d["failed"] for d in s["by_day"]],
        # no report that day: no rate (a gap), not a misleading 0 %
        "rate": [round(d["failure_rate"] * 100, 2) if d["reports"] else None for d in s["by_day"]],
    }
    top = max((o["successful"] + o["failed"] for o in s["by_organization"]), default=0)
    return ctx.render(
        "reports.html", **data, days=days, chart_json=json.dumps(chart), top_sessions=top
    )


@router.get("/domains/{name}/reports/{report}/raw")
async def raw_report(name: str, report: int, ctx: Page) -> Response:
    try:
        return await run(reports_api.raw_report, name, report, ctx.svc, ctx.signed_in)
    except ServiceError as exc:
        raise PageError(exc.status, exc.message) from exc
