"""REST API under /api/v1 (FastAPI). Bearer tokens; a user sees only their own domains
(404 otherwise), admins see all. Errors: ``{"error": {"code", "message", ...}}``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from mtasts.hosting.tenants import HostingService, ServiceError
from mtasts.i18n import _
from mtasts.monitor.alerts import list_alerts
from mtasts.protocol.policy import Mode
from mtasts.store.models import User
from mtasts.web import errors

bearer = HTTPBearer(auto_error=False, description="API token from `mtasts tokens create`")


class DomainIn(BaseModel):
    domain: str = Field(description="The mail domain, e.g. example.com (IDNs accepted).")


class PolicyIn(BaseModel):
    mode: Mode = Field(description="testing, enforce or none (RFC 8461 §5)")
    mx: list[str] | None = Field(
        default=None, description="mx patterns; omitted = keep the current ones"
    )
    max_age: int | None = Field(default=None, description="seconds, 86400 to 31557600")
    force: bool = Field(default=False, description="enforce despite failing MX (needs reason)")
    reason: str = Field(default="", max_length=1000, description="kept in the audit log")


def service(request: Request) -> HostingService:
    svc = request.app.state.service
    assert isinstance(svc, HostingService)
    return svc


Service = Annotated[HostingService, Depends(service)]


def current_user(
    svc: Service,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> User:
    user = svc.authenticate(credentials.credentials) if credentials else None
    if user is None:
        raise ServiceError(
            401,
            "unauthorized",
            _(
                "Send an API token as 'Authorization: Bearer <token>' (create one with "
                "`mtasts tokens create --email you@example.com`, given the same --config or "
                "--data-dir as this server)."
            ),
        )
    return user


CurrentUser = Annotated[User, Depends(current_user)]

router = APIRouter(prefix="/api/v1")


@router.get("/domains", summary="Domains you host")
def list_domains(svc: Service, user: CurrentUser) -> list[dict[str, Any]]:
    return svc.list_domains(user)


@router.post("/domains", status_code=201, summary="Start hosting a domain")
def add_domain(body: DomainIn, svc: Service, user: CurrentUser) -> dict[str, Any]:
    """Claims the domain: `pending`, with a `testing` policy built from its live MX set;
    `dns_records` lists the three CNAMEs and this claim's own challenge TXT to publish.
    Unproven claims expire after `claim_ttl` seconds (`claim_expires_at`)."""
    return svc.add_domain(user, body.domain)


@router.get("/domains/{domain}", summary="One hosted domain")
def get_domain(domain: str, svc: Service, user: CurrentUser) -> dict[str, Any]:
    return svc.get_domain(user, domain)


@router.post("/domains/{domain}/verify", summary="Check the CNAMEs and this claim's challenge")
def verify(domain: str, svc: Service, user: CurrentUser) -> dict[str, Any]:
    return svc.verify(user, domain)


@router.put("/domains/{domain}/policy", summary="Change mode, mx or max_age (new id)")
def set_policy(domain: str, body: PolicyIn, svc: Service, user: CurrentUser) -> dict[str, Any]:
    return svc.set_policy(
        user, domain, body.mode, body.mx, body.max_age, force=body.force, reason=body.reason
    )


@router.get("/domains/{domain}/policy/history", summary="Every policy version, newest first")
def history(domain: str, svc: Service, user: CurrentUser) -> list[dict[str, Any]]:
    return svc.history(user, domain)


@router.get("/domains/{domain}/audit", summary="Audit log of the domain")
def audit(domain: str, svc: Service, user: CurrentUser) -> list[dict[str, Any]]:
    return svc.audit_log(user, domain)


@router.get("/domains/{domain}/alerts", summary="Monitoring alerts of a domain")
def alerts(
    domain: str, svc: Service, user: CurrentUser, include_closed: bool = False
) -> list[dict[str, Any]]:
    name = svc.served_name(user, domain)
    if name is None:  # a pending claim has no alerts (the name's belong to its served hosting)
        return []
    with svc.sessions() as db:
        return list_alerts(db, name, include_closed)


@router.get("/audit", summary="Your account's events")
def account_audit(svc: Service, user: CurrentUser) -> list[dict[str, Any]]:
    """Tokens created, domains removed, claims expired, and domains another account took
    over by publishing its own challenge (`domain-transferred`)."""
    return svc.account_audit(user)


@router.post("/domains/{domain}/refresh-mx", summary="Set mx from the live MX records")
def refresh_mx(domain: str, svc: Service, user: CurrentUser) -> dict[str, Any]:
    return svc.refresh_mx(user, domain)


@router.delete("/domains/{domain}", status_code=202, summary="Retire safely (RFC 8461 §8.3)")
def retire(domain: str, svc: Service, user: CurrentUser) -> dict[str, Any]:
    return svc.retire(user, domain)


def _docs() -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/api/openapi.json",
        title="mtasts API",
        swagger_js_url="/static/vendor/swagger-ui-bundle.js",
        swagger_css_url="/static/vendor/swagger-ui.css",
        swagger_favicon_url="/static/vendor/swagger-favicon-32x32.png",
    )


def build_api(svc: HostingService, **kwargs: Any) -> FastAPI:
    api = FastAPI(
        title="mtasts",
        summary="Hosted MTA-STS (RFC 8461) and TLS reporting (RFC 8460)",
        openapi_url="/api/openapi.json",
        docs_url=None,  # served below from vendored files: no CDN at run time
        redoc_url=None,
        **kwargs,
    )
    api.state.service = svc
    api.include_router(router)
    api.add_api_route("/api/docs", _docs, include_in_schema=False)
    errors.install(api)  # one envelope for every error; faults answered without details
    return api
