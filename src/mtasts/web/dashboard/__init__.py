"""The web dashboard of `mtasts serve` at ``/``: server-rendered pages (Jinja2) with HTMX
for the live parts, and Chart.js for the report charts. Both scripts are vendored in
``web/static/vendor`` (see scripts/vendor-js.sh): nothing is loaded from elsewhere.

Wiring (in ``MtastsApp.__init__``)::

    dashboard.install(self.api)
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from mtasts.i18n import _
from mtasts.web.dashboard.views import PageError, page_error, page_language, router
from mtasts.web.problems import phrase, problems

Handler = Callable[[Request, Exception], Response | Awaitable[Response]]
# paths that are not pages: their errors stay JSON (the one error envelope)
NOT_PAGES = ("/api/", "/tlsrpt", "/tls/", "/.well-known/", "/healthz", "/metrics", "/static/")

STATIC = Path(__file__).resolve().parents[1] / "static"
SKIP = ("query", "path")  # pydantic's locations that are not field names

__all__ = ["STATIC", "install", "router"]


def install(api: FastAPI) -> None:
    """Add the dashboard's pages, its static files under ``/static`` and its error page to
    ``api``. Its ``/`` replaces any earlier ``/`` route (the plain-text index)."""
    before = {id(r) for r in api.router.routes}
    api.include_router(router)
    api.mount("/static", StaticFiles(directory=STATIC), name="static")
    api.add_exception_handler(PageError, page_error)
    for kind in (StarletteHTTPException, RequestValidationError, SQLAlchemyError, Exception):
        fallback = api.exception_handlers.get(kind)
        if fallback is not None:
            api.add_exception_handler(kind, _as_page(fallback))
    ours = {id(r) for r in api.router.routes} - before
    # the dashboard's "/" wins over an index registered before it
    api.router.routes[:] = [r for r in api.router.routes if id(r) in ours or not _is_root(r)]


def _is_root(route: BaseRoute) -> bool:
    return isinstance(route, Route | Mount) and getattr(route, "path", None) == "/"


def wants_page(request: Request) -> bool:
    """A browser asking for a dashboard URL (not the API, the policy host or reports)."""
    path = request.url.path
    return not path.startswith(NOT_PAGES) and "text/html" in request.headers.get("accept", "")


def _as_page(fallback: Handler) -> Handler:
    """Unknown URLs, bad query values and faults (a store that is down, a bug) of dashboard
    routes as HTML error pages; every other request keeps ``fallback`` (the JSON envelope).
    ``fallback`` runs exactly once either way: it logs faults and counts store failures."""

    async def handler(request: Request, exc: Exception) -> Response:
        page = wants_page(request)
        fault = not isinstance(exc, RequestValidationError | StarletteHTTPException)
        if page and fault:
            # before ``fallback`` writes its message; the store may be what failed, so the
            # language comes without the user's own setting
            await page_language(request, store=False)
        result = fallback(request, exc)
        response = await result if isinstance(result, Awaitable) else result
        if not page:
            return response
        if not fault:
            await page_language(request)
        if isinstance(exc, RequestValidationError):
            # the field as named in the address, the problem in the page's language
            said = [f"{where}: {what}" for where, what in problems(exc.errors(), SKIP)]
            message = _("The address has a bad value: {problems}.").format(problems="; ".join(said))
            return page_error(request, PageError(422, message))
        if isinstance(exc, StarletteHTTPException):
            if exc.status_code == 404:
                message = _("There is no page at {path}.").format(path=request.url.path)
            else:
                message = (
                    phrase(exc.status_code, str(exc.detail))
                    if exc.detail
                    else _("That cannot be done here.")
                )
            headers = dict(exc.headers or {})
            return page_error(request, PageError(exc.status_code, message, headers))
        # A fault: the page says what the envelope says (its text names no SQL, driver or
        # host, only an error id that is also in the log), with the same Retry-After.
        error = json.loads(bytes(response.body))["error"]
        keep = {k: v for k in ("Retry-After",) if (v := response.headers.get(k))}
        return page_error(request, PageError(response.status_code, error["message"], keep))

    return handler
