"""Every error the HTTP app answers, in one envelope: ``{"error": {"code", "message", ...}}``.

Refusals the service decides (``ServiceError``) keep their code and message. Everything
else is the framework's (404 unknown route, 405 wrong method, 422 bad input) or a fault:
a database that is down or hung (503 with Retry-After) or a bug (500). Faults never carry
their own text to the client (SQL, host names and driver messages stay in the log): the
answer is a plain message with an ``error_id`` that is also in the log line.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from mtasts.hosting.tenants import ServiceError
from mtasts.i18n import _
from mtasts.web.problems import phrase, problems

log = logging.getLogger("mtasts.web")

RETRY_AFTER = 30  # seconds a client should wait after a 503 of the store


@dataclass
class StoreHealth:
    """Whether requests fail on the store, for /healthz: a table lock or a hung query can
    fail requests while the periodic sync still gets through. A failure counts until a
    probe of the store that began after it succeeds."""

    failed_at: float | None = None  # monotonic seconds of the last failed request
    failures: int = 0

    def record_failure(self) -> None:
        self.failed_at = time.monotonic()
        self.failures += 1

    def probe_succeeded(self, started_at: float) -> None:
        if self.failed_at is not None and self.failed_at < started_at:
            self.failed_at = None

    def failing(self) -> bool:
        return self.failed_at is not None


def new_error_id() -> str:
    """A short random id that ties an answer to its log line."""
    return secrets.token_hex(6)


def envelope(
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """The one error body of the HTTP app."""
    return JSONResponse(
        {"error": {"code": code, "message": message, **extra}},
        status_code=status,
        headers=headers,
    )


def store_unavailable(request: Request, exc: BaseException) -> JSONResponse:
    """503 for a store that failed (down, hung, timed out); the cause goes to the log only."""
    error_id = new_error_id()
    log.error(
        "store error %s on %s %s: %s: %s",
        error_id,
        request.method,
        request.url.path,
        exc.__class__.__name__,
        exc,
    )
    health = getattr(request.app.state, "store_health", None)
    if isinstance(health, StoreHealth):
        health.record_failure()
    return envelope(
        503,
        "store-unavailable",
        _(
            "The database is unavailable; policies are still served. Please retry shortly "
            "(error id {error_id})."
        ).format(error_id=error_id),
        {"Retry-After": str(RETRY_AFTER)},
        error_id=error_id,
    )


def _service_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return envelope(exc.status, exc.code, exc.message, headers, **exc.detail)


def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # the field as named in the request, the problem in the client's language
    said = [
        f"{where}: {what}" if where else what for where, what in problems(exc.errors(), ("body",))
    ]
    if any(e.get("type") == "json_invalid" for e in exc.errors()):
        return envelope(400, "invalid-json", _("The request body is not valid JSON."))
    return envelope(422, "invalid-request", "; ".join(said) or _("invalid request"))


_HTTP_CODES = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    413: "too-large",
    415: "unsupported-media-type",
}


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    """The framework's own refusals (no such route, wrong method...) in the envelope."""
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    code = _HTTP_CODES.get(status, HTTPStatus(status).phrase.lower().replace(" ", "-"))
    if status == 404:
        message = _("Nothing here: {path} (the API is under /api/v1).").format(
            path=request.url.path
        )
    elif status == 405:
        allow = (exc.headers or {}).get("Allow") or (exc.headers or {}).get("allow", "")
        message = (
            _("{method} is not allowed here; use {allow}.").format(
                method=request.method, allow=allow
            )
            if allow
            else _("{method} is not allowed here.").format(method=request.method)
        )
    else:
        message = phrase(status) + "."
    return envelope(status, code, message, dict(exc.headers or {}) or None)


def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    error_id = new_error_id()
    log.error(
        "internal error %s on %s %s", error_id, request.method, request.url.path, exc_info=exc
    )
    return envelope(
        500,
        "internal-error",
        _("Something went wrong on our side; it is logged with error id {error_id}.").format(
            error_id=error_id
        ),
        error_id=error_id,
    )


def install(api: FastAPI) -> None:
    """The handlers of every error above on ``api``."""
    api.state.store_health = StoreHealth()
    api.add_exception_handler(ServiceError, _service_error)
    api.add_exception_handler(RequestValidationError, _validation_error)
    api.add_exception_handler(StarletteHTTPException, _http_error)
    api.add_exception_handler(SQLAlchemyError, store_unavailable)
    api.add_exception_handler(Exception, _internal_error)
