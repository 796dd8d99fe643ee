"""TLS reports over HTTP: the `https:` rua endpoint senders POST to (RFC 8460 §5.2) and the
API that reads stored reports back."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import func, select

from mtasts.hosting.tenants import ServiceError
from mtasts.i18n import _, say
from mtasts.reports.aggregate import summary
from mtasts.reports.gate import Busy
from mtasts.reports.ingest import Outcome, ReportIngestor, Route, Status, StoreUnavailable
from mtasts.reports.spool import Spool
from mtasts.store.models import TlsReport
from mtasts.web.api import CurrentUser, Service
from mtasts.web.errors import store_unavailable

# RFC 8460 §5.2 and §5.3: the media types of a report; the last two are tolerated variants
GZIP_TYPES = {"application/tlsrpt+gzip", "application/gzip"}
JSON_TYPES = {"application/tlsrpt+json", "application/tlsrpt", "application/json"}

# Bounds of the API's numbers: beyond them a 422, never a database overflow (500).
MAX_OFFSET = 1_000_000_000
MAX_ID = 2**63 - 1

receive = APIRouter()
router = APIRouter(prefix="/api/v1")


def _utc(when: datetime) -> str:
    """ISO 8601 with its UTC offset (SQLite hands back datetimes without their zone)."""
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).isoformat()


def ingestor(request: Request) -> ReportIngestor:
    ing = request.app.state.ingestor
    assert isinstance(ing, ReportIngestor)
    return ing


def _error(status: int, code: str, message: str, retry_after: int | None = None) -> JSONResponse:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


@receive.post("/tlsrpt/{domain}", include_in_schema=False)
async def post_report(domain: str, request: Request) -> Response:
    """RFC 8460 §5.2: a 2xx only once the report is durably stored."""
    domain = domain.lower().rstrip(".")
    if request.app.state.service.snapshot.hosts.get(domain) is None:
        return _error(
            404,
            "domain-not-hosted",
            _("No TLS reports are received for {domain} here.").format(domain=domain),
        )
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in GZIP_TYPES | JSON_TYPES:
        return _error(
            415,
            "unsupported-media-type",
            _(
                "Send application/tlsrpt+gzip or application/tlsrpt+json (RFC 8460 §5.2), "
                "not {content_type}."
            ).format(content_type=ctype or _("no content type")),
        )
    ing = ingestor(request)
    limit = ing.limits.max_compressed_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        ing.counters.reject("too_large")
        return _error(
            413, "report-too-large", _("A report may be at most {limit} bytes.").format(limit=limit)
        )
    # The body waits in a spool (on disk above the threshold) until a parse slot is free:
    # many uploads at once cost little memory.
    with Spool(ing.spool_threshold, ing.spool_dir) as spool:
        async for chunk in request.stream():  # bounded while reading, not after
            if spool.size + len(chunk) > limit:
                ing.counters.reject("too_large")
                return _error(
                    413,
                    "report-too-large",
                    _("A report may be at most {limit} bytes.").format(limit=limit),
                )
            spool.write(chunk)
        if spool.on_disk:
            ing.counters.spool()

        def work() -> Outcome:
            return ing.ingest_payload(spool.read(), route=Route.HTTPS, domain=domain)

        try:
            outcome = await ing.gate.run(work)
        except Busy as exc:
            ing.counters.reject("busy")
            return _error(
                503,
                "report-busy",
                _("Too many reports are being received at once; please retry later."),
                exc.retry_after,
            )
        except StoreUnavailable as exc:  # the cause (SQL, host names) goes to the log only
            ing.counters.reject("store_unavailable")
            return store_unavailable(request, exc)
    if outcome.status is Status.OVER_QUOTA:
        return _error(429, outcome.code, say(outcome.reason), outcome.retry_after)
    if outcome.status is Status.REJECTED:
        status = 413 if "too-large" in outcome.code else 400
        return _error(status, outcome.code, say(outcome.reason))
    return JSONResponse(
        {
            "status": str(outcome.status),
            "organization": outcome.organization,
            "report_id": outcome.report_id,
        },
        status_code=201 if outcome.status is Status.STORED else 200,
    )


def served_or_409(svc: Service, user: CurrentUser, domain: str) -> str:
    """The name of ``user``'s served hosting of ``domain``; 409 for their pending claim
    (the name's reports belong to its served hosting, which may be another account's)."""
    name = svc.served_name(user, domain)
    if name is None:
        raise ServiceError(
            409,
            "domain-pending",
            _("{domain} is not verified yet: its TLS reports are shown once it is active.").format(
                domain=domain
            ),
        )
    return name


@router.get("/domains/{domain}/reports", summary="TLS reports received for a domain")
def list_reports(
    domain: str,
    svc: Service,
    user: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> dict[str, Any]:
    name = svc.served_name(user, domain)
    if name is None:  # a pending claim: the name's reports belong to its served hosting
        return {"domain": svc.get_domain(user, domain)["domain"], "total": 0, "reports": []}
    with svc.sessions() as db:
        total = db.scalar(select(func.count()).where(TlsReport.domain == name)) or 0
        rows = db.scalars(
            select(TlsReport)
            .where(TlsReport.domain == name)
            .order_by(TlsReport.start.desc(), TlsReport.id.desc())
            .limit(limit)
            .offset(offset)
        )
        items = [
            {
                "id": r.id,
                "organization": r.organization,
                "report_id": r.report_id,
                "start": _utc(r.start),
                "end": _utc(r.end),
                "contact": r.contact,
                "successful": r.sessions_ok,
                "failed": r.sessions_failed,
                "route": r.route,
                "dkim": r.dkim,
                "repairs": r.repairs,
                "received_at": _utc(r.received_at),
            }
            for r in rows
        ]
    return {"domain": name, "total": total, "reports": items}


@router.get("/domains/{domain}/reports/summary", summary="Sessions and failures, aggregated")
def report_summary(
    domain: str,
    svc: Service,
    user: CurrentUser,
    days: Annotated[int, Query(ge=1, le=366)] = 30,
) -> dict[str, Any]:
    name = served_or_409(svc, user, domain)
    with svc.sessions() as db:
        return summary(db, name, days, svc.clock())


@router.get("/domains/{domain}/reports/{report}/raw", summary="The report as received")
def raw_report(
    domain: str,
    report: Annotated[int, Path(ge=1, le=MAX_ID)],
    svc: Service,
    user: CurrentUser,
    compressed: bool = False,
) -> Response:
    name = svc.served_name(user, domain)
    with svc.sessions() as db:
        row = db.get(TlsReport, report)
        if row is None or name is None or row.domain != name:
            raise ServiceError(
                404,
                "report-not-found",
                _("No report {report} for {domain}.").format(report=report, domain=domain),
            )
        raw, rid = row.raw, row.report_id
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in rid)[:100] or str(report)
    if compressed:
        return Response(
            raw,
            media_type="application/tlsrpt+gzip",
            headers={"Content-Disposition": f'attachment; filename="{safe}.json.gz"'},
        )
    return Response(
        gzip.decompress(raw),
        media_type="application/tlsrpt+json",
        headers={"Content-Disposition": f'attachment; filename="{safe}.json"'},
    )
