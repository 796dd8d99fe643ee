"""The web dashboard of `mtasts serve` at ``/``: server-rendered pages (Jinja2) with HTMX
for the live parts, and Chart.js for the report charts. Both scripts are vendored in
``web/static/vendor`` (see scripts/vendor-js.sh): nothing is loaded from elsewhere.

Wiring (in ``MtastsApp.__init__``)::

    dashboard.install(self.api)
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.routing import BaseRoute, Mount, Route

from mtasts.web.dashboard.views import PageError, page_error, router

STATIC = Path(__file__).resolve().parents[1] / "static"

__all__ = ["STATIC", "install", "router"]


def install(api: FastAPI) -> None:
    """Add the dashboard's pages, its static files under ``/static`` and its error page to
    ``api``. Its ``/`` replaces any earlier ``/`` route (the plain-text index)."""
    before = {id(r) for r in api.router.routes}
    api.include_router(router)
    api.mount("/static", StaticFiles(directory=STATIC), name="static")
    api.add_exception_handler(PageError, page_error)
    ours = {id(r) for r in api.router.routes} - before
    # the dashboard's "/" wins over an index registered before it
    api.router.routes[:] = [r for r in api.router.routes if id(r) in ours or not _is_root(r)]


def _is_root(route: BaseRoute) -> bool:
    return isinstance(route, Route | Mount) and getattr(route, "path", None) == "/"
