"""ReportIngestor on a real SQLite store, in detail: what a stored row and an outcome hold
(domain, time, DKIM verdict), what the message route refuses and why, and the store
failing under a batch."""

from __future__ import annotations

import contextlib
import gzip
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, select, text

from mtasts.protocol.errors import ReportError
from mtasts.protocol.report import ParsedReport, parse_report
from mtasts.reports.ingest import (
    Outcome,
    Pending,
    ReportIngestor,
    Route,
    Status,
    StoreUnavailable,
    check_field_lengths,
    file_under,
    normalise_domain,
)
from mtasts.reports.limits import Limits
from mtasts.reports.quota import Quotas
from mtasts.store.db import make_engine, migrate, session_factory
from mtasts.store.models import TlsReport, TlsReportFailure, TlsReportPolicy

CORPUS = Path(__file__).resolve().parents[1] / "data" / "tlsrpt"
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
RFC = (CORPUS / "parsedmarc" / "rfc8460.json").read_bytes()
GOOGLE = (CORPUS / "cry-inc-dmarc-report-viewer" / "google.json").read_bytes()


def ingestor(tmp_path: Path, limits: Limits | None = None) -> ReportIngestor:
    engine = make_engine(f"sqlite:///{tmp_path / 'r.db'}")
    migrate(engine)
    return ReportIngestor(session_factory(engine), limits, clock=lambda: NOW)


def mail(payload: bytes) -> bytes:
    msg = EmailMessage()
    msg["From"] = "noreply@sender.example"
    msg["Subject"] = "Report Domain: company-y.example Submitter: sender.example Report-ID: <x>"
    msg.set_content("report attached")
    msg.add_attachment(payload, maintype="application", subtype="tlsrpt+json", filename="r.json")
    return msg.as_bytes()


def test_a_mailed_report_keeps_its_dkim_verdict_and_time(tmp_path: Path) -> None:
    ing = ingestor(tmp_path)
    (outcome,) = ing.ingest_message(mail(RFC), route=Route.SMTP, dkim="pass")
    assert outcome.status is Status.STORED
    with ing.sessions() as db:
        row = db.scalars(select(TlsReport)).one()
        assert row.dkim == "pass" and row.route == "smtp"
        assert row.received_at.replace(tzinfo=UTC) == NOW


def test_a_message_over_the_limit_is_refused_with_the_reason(tmp_path: Path) -> None:
    message = mail(RFC)
    ing = ingestor(tmp_path, Limits(max_message_bytes=len(message) - 1))
    (outcome,) = ing.ingest_message(message, route=Route.SMTP)
    assert outcome.status is Status.REJECTED
    assert "too-large" in outcome.code and outcome.reason
    assert not outcome.accepted


def test_a_message_without_a_report_says_what_was_expected(tmp_path: Path) -> None:
    (outcome,) = ingestor(tmp_path).ingest_message(
        b"Subject: hi\r\n\r\nhello\r\n", route=Route.FILE
    )
    assert outcome.status is Status.REJECTED and outcome.code == "report-not-found"
    assert outcome.reason == (
        "the message carries no TLS report (RFC 8460 §5.3: a multipart/report with an "
        "application/tlsrpt+gzip or +json part)"
    )


def test_batch_outcomes_name_the_domain_and_rows_the_time(tmp_path: Path) -> None:
    ing = ingestor(tmp_path)
    batch = [ing.prepare_payload(p, route=Route.FILE) for p in (RFC, GOOGLE, RFC)]
    ready = [b for b in batch if isinstance(b, Pending)]
    outcomes = ing.store_many(ready)
    assert [o.status for o in outcomes] == [Status.STORED, Status.STORED, Status.DUPLICATE]
    assert [o.domain for o in outcomes] == [item.domain for item in ready]
    assert all(o.domain for o in outcomes)
    with ing.sessions() as db:
        times = db.scalars(select(TlsReport.received_at)).all()
    assert [t.replace(tzinfo=UTC) for t in times] == [NOW, NOW]


def test_a_batch_from_a_public_route_is_stored_one_by_one(tmp_path: Path) -> None:
    ing = ingestor(tmp_path)
    batch = [ing.prepare_payload(p, route=Route.HTTPS) for p in (RFC, GOOGLE)]
    ready = [b for b in batch if isinstance(b, Pending)]
    outcomes = ing.store_many(ready)
    assert [o.status for o in outcomes] == [Status.STORED, Status.STORED]
    assert [o.domain for o in outcomes] == [item.domain for item in ready]


def test_a_failing_store_under_a_batch_is_unavailable_not_lost(tmp_path: Path) -> None:
    ing = ingestor(tmp_path)
    ready = ing.prepare_payload(RFC, route=Route.FILE)
    assert isinstance(ready, Pending)
    with ing.sessions.begin() as db:
        db.execute(text("DROP TABLE tls_report_failures"))
        db.execute(text("DROP TABLE tls_report_policies"))
        db.execute(text("DROP TABLE tls_reports"))
    with pytest.raises(StoreUnavailable, match=r"^the report store is unavailable: "):
        ing.store_many([ready])


def test_a_constraint_violation_that_is_no_duplicate_is_a_store_fault(tmp_path: Path) -> None:
    # the database refuses the row for a reason of its own (here a trigger): no stored
    # report has this key, so it is no duplicate; the report is not acknowledged
    ing = ingestor(tmp_path)
    ready = ing.prepare_payload(RFC, route=Route.HTTPS)
    assert isinstance(ready, Pending)
    with ing.sessions.begin() as db:
        db.execute(
            text(
                "CREATE TRIGGER refuse BEFORE INSERT ON tls_reports "
                "BEGIN SELECT RAISE(ABORT, 'refused by a rule of the database'); END"
            )
        )
    with pytest.raises(StoreUnavailable) as info:
        ing.store(ready)
    assert str(info.value) == "the report could not be stored (constraint violation)"


def test_a_store_that_fails_after_refusing_a_row_is_unavailable_in_words(
    tmp_path: Path,
) -> None:
    # The database refuses the row (a rule of its own), and the store is gone (its tables
    # dropped by another connection) when the ingestor then looks for a report stored under
    # that key: a store fault, which says what the database said. The tables go once the
    # refused transaction is over and its connection back in the pool (a pool event), so
    # the order is fixed, not left to threads.
    path = tmp_path / "r.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        migrate(engine)
        ing = ReportIngestor(session_factory(engine), clock=lambda: NOW)
        ready = ing.prepare_payload(RFC, route=Route.FILE)
        assert isinstance(ready, Pending)
        with ing.sessions.begin() as db:
            db.execute(
                text(
                    "CREATE TRIGGER refuse BEFORE INSERT ON tls_reports "
                    "BEGIN SELECT RAISE(ABORT, 'refused by a rule of the database'); END"
                )
            )
        refused: list[BaseException] = []
        gone: list[bool] = []

        def note_refusal(context: Any) -> None:
            if isinstance(context.original_exception, sqlite3.IntegrityError):
                refused.append(context.original_exception)

        def store_goes_away(_dbapi_connection: Any, _record: Any) -> None:
            if refused and not gone:
                with contextlib.closing(sqlite3.connect(path)) as other:
                    other.executescript(
                        "DROP TABLE tls_report_failures; DROP TABLE tls_report_policies; "
                        "DROP TABLE tls_reports;"
                    )
                gone.append(True)

        event.listen(engine, "handle_error", note_refusal)
        event.listen(engine, "checkin", store_goes_away)
        with pytest.raises(StoreUnavailable) as info:
            ing.store(ready)
        assert refused and gone
        said = str(info.value)
        assert said.startswith("the report store is unavailable: (sqlite3.OperationalError) ")
        assert "no such table: tls_reports" in said
    finally:
        engine.dispose()


@contextlib.contextmanager
def _two_ingestors(url: str) -> Iterator[tuple[ReportIngestor, ReportIngestor, Engine]]:
    """Ingestors A and B on one store, each with an engine of its own (as two processes
    have), and B's engine."""
    engine_a, engine_b = make_engine(url), make_engine(url)
    try:
        migrate(engine_a)
        a = ReportIngestor(session_factory(engine_a), clock=lambda: NOW)
        b = ReportIngestor(session_factory(engine_b), clock=lambda: NOW)
        yield a, b, engine_b
    finally:
        engine_a.dispose()
        engine_b.dispose()


def _stored_at_first_select(a: ReportIngestor, engine_b: Engine, body: bytes) -> list[int | None]:
    """A stores ``body`` (route HTTPS) right after B's first SELECT, once: the list gets
    the id of A's row then (a database event fixes the order, not threads)."""
    stored: list[int | None] = []

    def a_stores_meanwhile(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not stored and statement.lstrip().upper().startswith("SELECT"):
            stored.append(a.ingest_payload(body, route=Route.HTTPS).pk)

    event.listen(engine_b, "after_cursor_execute", a_stores_meanwhile)
    return stored


def test_a_report_stored_meanwhile_sends_the_batch_one_by_one(tmp_path: Path) -> None:
    # B looks which reports of its batch are stored, A (another route) stores one of them
    # and commits, then B's batch insert fails on the unique constraint: nothing of the
    # batch is kept, and B stores it again one report at a time, the one A stored as a
    # duplicate of A's row. A's store runs from B's own SELECT (a database event).
    url = f"sqlite:///{tmp_path / 'r.db'}"
    with _two_ingestors(url) as (a, b, engine_b):
        batch = [b.prepare_payload(body, route=Route.FILE) for body in (GOOGLE, RFC)]
        ready = [item for item in batch if isinstance(item, Pending)]
        assert len(ready) == 2
        stored_by_a = _stored_at_first_select(a, engine_b, RFC)
        outcomes = b.store_many(ready)
        assert stored_by_a and stored_by_a[0] is not None
        assert [o.status for o in outcomes] == [Status.STORED, Status.DUPLICATE]
        assert [(o.organization, o.report_id, o.domain) for o in outcomes] == [
            (item.organization, item.report_id, item.domain) for item in ready
        ]
        assert outcomes[1].pk == stored_by_a[0]
        with a.sessions() as db:
            rows = db.execute(select(TlsReport.id, TlsReport.route)).all()
        assert sorted(rows) == sorted([(stored_by_a[0], "https"), (outcomes[0].pk, "file")])


def test_a_report_stored_by_another_route_meanwhile_is_a_duplicate(postgres_url: str) -> None:
    # The race the unique constraint settles: B looks, finds nothing, A stores the same
    # report and commits, then B's insert fails on the constraint and B answers
    # "duplicate" with A's row. A's store is run from B's own SELECT (a database event),
    # so the order is fixed, not left to threads.
    with _two_ingestors(postgres_url) as (a, b, engine_b):
        ready = b.prepare_payload(RFC, route=Route.FILE)
        assert isinstance(ready, Pending)
        # the same report-id already stored by another organisation and for another
        # domain: the duplicate found must be the one of this domain, organisation and id
        # (the other organisation's row comes first in every order: stored first, and
        # "Company-A" sorts before "Company-X" in the unique index)
        other_org = RFC.replace(b'"Company-X"', b'"Company-A"')
        other_domain = RFC.replace(b'"company-y.example"', b'"company-w.example"')
        # and another report of this organisation and domain ("0..." sorts first too)
        other_id = RFC.replace(b'"5065427c-23d3-47ca-b6e0-946ea0e8c4be"', b'"0-earlier"')
        for body in (other_org, other_domain, other_id):
            assert a.ingest_payload(body, route=Route.FILE).status is Status.STORED
        stored_by_a = _stored_at_first_select(a, engine_b, RFC)
        outcome = b.store(ready)
        assert stored_by_a and stored_by_a[0] is not None
        assert outcome.status is Status.DUPLICATE and outcome.pk == stored_by_a[0]
        assert (outcome.organization, outcome.report_id) == (
            ready.organization,
            ready.report_id,
        )
        assert outcome.domain == ready.domain
        with a.sessions() as db:
            assert len(db.scalars(select(TlsReport.id)).all()) == 4


def test_ingestor_for_takes_every_report_setting(tmp_path: Path) -> None:
    from mtasts.config import Settings
    from mtasts.reports.ingest import ingestor_for

    settings = Settings(
        data_dir=tmp_path,
        report_max_bytes=111_111,
        report_max_message_bytes=222_222,
        report_max_stored_bytes=33_333,
        report_quota_reports=4,
        report_quota_bytes=5_555,
        report_quota_org_reports=6,
        report_quota_org_bytes=7_777,
        report_parse_slots=3,
        report_parse_queue=9,
        report_parse_wait=1.5,
        report_spool_bytes=8_888,
    )
    engine = make_engine(f"sqlite:///{tmp_path / 'r.db'}")
    ing = ingestor_for(settings, session_factory(engine))
    try:
        assert ing.limits == Limits(
            max_compressed_bytes=111_111,
            max_decompressed_bytes=111_111,
            max_message_bytes=222_222,
            max_stored_bytes=33_333,
        )
        assert ing.quotas is not None
        assert (
            ing.quotas.reports_per_domain,
            ing.quotas.bytes_per_domain,
            ing.quotas.reports_per_organization,
            ing.quotas.bytes_per_organization,
        ) == (4, 5_555, 6, 7_777)
        assert (ing.gate.slots, ing.gate.queue, ing.gate.wait) == (3, 9, 1.5)
        assert ing.spool_threshold == 8_888 and ing.spool_dir == tmp_path / "spool"
    finally:
        engine.dispose()


def test_payload_details(tmp_path: Path) -> None:
    ing = ingestor(tmp_path, Limits(max_compressed_bytes=len(RFC) - 1))
    refused = ing.ingest_payload(RFC, route=Route.FILE)
    assert refused.status is Status.REJECTED and refused.code == "report-too-large"
    (tmp_path / "second").mkdir()
    ing = ingestor(tmp_path / "second")
    # the policy domain as filed: lower case, without the trailing dot
    body = RFC.replace(b'"company-y.example"', b'"Company-Y.Example."')
    assert body != RFC
    outcome = ing.ingest_payload(body, route=Route.FILE, dkim="fail")
    assert outcome.status is Status.STORED and outcome.domain == "company-y.example"
    with ing.sessions() as db:
        assert db.scalars(select(TlsReport.dkim)).one() == "fail"
    assert ing.metrics()[-6:] == [
        "# HELP mtasts_reports_parsing Reports being parsed and stored now.",
        "# TYPE mtasts_reports_parsing gauge",
        "mtasts_reports_parsing 0",
        "# HELP mtasts_reports_waiting Reports waiting for a parse slot.",
        "# TYPE mtasts_reports_waiting gauge",
        "mtasts_reports_waiting 0",
    ]


def test_a_report_for_a_domain_not_hosted_here_is_refused_by_name(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'r.db'}")
    migrate(engine)
    ing = ReportIngestor(session_factory(engine), hosted=lambda name: name == "hosted.example")
    try:
        out = ing.ingest_payload(RFC, route=Route.HTTPS, domain="Company-Y.Example")
        assert out == Outcome(
            Status.REJECTED,
            "Company-X",
            "5065427c-23d3-47ca-b6e0-946ea0e8c4be",
            "company-y.example",
            code="domain-not-hosted",
            reason="no TLS reports are received for company-y.example here",
        )
        # the operator's own routes are not limited to hosted domains
        assert ing.ingest_payload(RFC, route=Route.FILE).status is Status.STORED
    finally:
        engine.dispose()


def test_the_domain_filed_under_is_at_most_253_characters(tmp_path: Path) -> None:
    # RFC 1035 §2.3.4: a name is at most 253 characters in text form. The name comes from
    # the route (a mail header may say anything); the report's own fields are checked
    # for length before.
    longest = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])
    assert len(longest) == 253
    ing = ingestor(tmp_path)
    fits = ing.ingest_payload(RFC, route=Route.FILE, domain=longest)
    assert fits.status is Status.REJECTED and fits.code != "report-domain-invalid"
    assert fits.domain == longest  # refused for what it holds, not for its name
    out = ing.ingest_payload(RFC, route=Route.FILE, domain="e" + longest)
    assert out.status is Status.REJECTED and out.code == "report-domain-invalid"
    assert out.reason == "the report's domain is too long" and out.domain == "e" + longest


def test_a_broken_report_in_a_mail_is_refused_with_its_reason(tmp_path: Path) -> None:
    (out,) = ingestor(tmp_path).ingest_message(mail(b"{not json"), route=Route.SMTP)
    assert out.status is Status.REJECTED and out.code.startswith("report-")
    assert out.reason and out.code != "report-not-found"


def test_subdomain_policies_stay_with_the_report(tmp_path: Path) -> None:
    obj = json.loads(RFC)
    sub = json.loads(json.dumps(obj["policies"][0]))
    sub["policy"]["policy-domain"] = "mail.company-y.example"
    other = json.loads(json.dumps(obj["policies"][0]))
    other["policy"]["policy-domain"] = "xcompany-y.example"  # not a subdomain
    obj["policies"] += [sub, other]
    ing = ingestor(tmp_path)
    out = ing.ingest_payload(json.dumps(obj).encode(), route=Route.FILE)
    assert out.status is Status.STORED
    with ing.sessions() as db:
        kept = db.scalars(select(TlsReportPolicy.policy_domain)).all()
    assert sorted(kept) == ["company-y.example", "mail.company-y.example"]


def test_the_clock_is_utc() -> None:
    from mtasts.reports.ingest import utcnow

    assert utcnow().tzinfo is UTC


def test_what_is_stored_is_the_gzip_as_received_or_the_json_gzipped(tmp_path: Path) -> None:
    ing = ingestor(tmp_path)
    gz = gzip.compress(GOOGLE, mtime=1)
    first = ing.ingest_payload(gz, route=Route.FILE)
    second = ing.ingest_payload(RFC, route=Route.FILE)
    with ing.sessions() as db:
        raw = {r.id: r.raw for r in db.scalars(select(TlsReport))}
    assert first.pk is not None and second.pk is not None
    assert raw[first.pk] == gz  # kept byte for byte
    assert raw[second.pk] == gzip.compress(RFC, mtime=0)


def test_every_outcome_of_a_stored_report_names_its_domain(tmp_path: Path) -> None:
    # a duplicate and a report over its domain's daily quota are filed under a domain too
    engine = make_engine(f"sqlite:///{tmp_path / 'r.db'}")
    migrate(engine)
    quotas = Quotas(reports_per_domain=1)
    ing = ReportIngestor(session_factory(engine), clock=lambda: NOW, quotas=quotas)
    first = ing.ingest_payload(RFC, route=Route.HTTPS)
    assert first.status is Status.STORED and first.domain == "company-y.example"
    again = ing.ingest_payload(RFC, route=Route.HTTPS)
    assert again.status is Status.DUPLICATE and again.domain == "company-y.example"
    other = RFC.replace(b'"5065427c-23d3-47ca-b6e0-946ea0e8c4be"', b'"another"')
    over = ing.ingest_payload(other, route=Route.HTTPS)
    assert over.status is Status.OVER_QUOTA and over.domain == "company-y.example"
    assert (over.organization, over.report_id) == ("Company-X", "another")


def test_a_mailed_report_naming_no_domain_anywhere_is_filed_under_none(tmp_path: Path) -> None:
    # RFC 8460 §5.3: the JSON, else the TLS-Report-Domain header or subject; here neither
    report = json.loads(RFC)
    for policy in report["policies"]:
        del policy["policy"]["policy-domain"]
    msg = EmailMessage()
    msg["From"] = "noreply@sender.example"
    msg["Subject"] = "a TLS report"
    msg.set_content("report attached")
    body = json.dumps(report).encode()
    msg.add_attachment(body, maintype="application", subtype="tlsrpt+json", filename="r.json")
    [ready] = ingestor(tmp_path).prepare_message(msg.as_bytes(), route=Route.IMAP)
    assert isinstance(ready, Pending) and ready.domain == ""


def test_the_stored_rows_hold_everything_the_report_says(tmp_path: Path) -> None:
    # RFC 8460 §4.4: every field of the report, its policies and their failure details
    ing = ingestor(tmp_path)
    body = json.loads(RFC)  # with the optional fields the RFC example leaves out
    detail = body["policies"][0]["failure-details"][0]
    detail.update({"receiving-mx-helo": "mx1.helo.example", "failure-reason-code": "X509_V_10"})
    ready = ing.prepare_payload(json.dumps(body).encode(), route=Route.FILE)
    assert isinstance(ready, Pending) and ready.parsed.repairs  # mx-host as a string
    outcome = ing.store(ready)
    assert outcome.status is Status.STORED
    report = ready.parsed.report
    with ing.sessions() as db:
        row = db.get(TlsReport, outcome.pk)
        assert row is not None
        assert (row.organization, row.report_id, row.domain, row.contact) == (
            report.organization_name,
            report.report_id,
            "company-y.example",
            "sts-reporting@company-x.example",
        )
        assert row.repairs == [{"code": r.code, "message": r.message} for r in ready.parsed.repairs]
        assert row.size == ready.size > 0
        # SQLite gives date-times back without their zone (they are stored in UTC)
        times = [t.replace(tzinfo=t.tzinfo or UTC) for t in (row.start, row.end, row.received_at)]
        assert times == [report.start_datetime, report.end_datetime, NOW]
        assert (row.route, row.dkim, row.raw) == ("file", None, ready.raw)
        assert (row.sessions_ok, row.sessions_failed) == report.sessions()
        policies = db.scalars(select(TlsReportPolicy).where(TlsReportPolicy.report_pk == row.id))
        [policy] = policies.all()
        [expected] = report.policies
        assert policy.policy_strings == list(expected.policy_strings) != []
        assert policy.mx_hosts == list(expected.mx_hosts) == ["*.mail.company-y.example"]
        assert (policy.policy_type, policy.policy_domain, policy.successful, policy.failed) == (
            "sts",
            "company-y.example",
            5326,
            303,
        )
        failures = db.scalars(
            select(TlsReportFailure)
            .where(TlsReportFailure.policy_pk == policy.id)
            .order_by(TlsReportFailure.id)
        ).all()
        assert [
            (
                f.result_type,
                f.sending_mta_ip,
                f.receiving_mx_hostname,
                f.receiving_mx_helo,
                f.receiving_ip,
                f.count,
                f.additional_information,
                f.failure_reason_code,
            )
            for f in failures
        ] == [
            (
                d.result_type,
                d.sending_mta_ip,
                d.receiving_mx_hostname,
                d.receiving_mx_helo,
                d.receiving_ip,
                d.failed_session_count,
                d.additional_information,
                d.failure_reason_code,
            )
            for d in expected.failure_details
        ]
        assert (failures[0].sending_mta_ip, failures[0].receiving_mx_helo) == (
            "2001:db8:abcd:0012::1",
            "mx1.helo.example",
        )
        assert failures[0].failure_reason_code == "X509_V_10"


def test_a_store_that_fails_under_one_report_is_unavailable(tmp_path: Path) -> None:
    ing = ingestor(tmp_path)
    ready = ing.prepare_payload(RFC, route=Route.FILE)
    assert isinstance(ready, Pending)
    with ing.sessions.begin() as db:
        db.execute(text("DROP TABLE tls_report_failures"))
        db.execute(text("DROP TABLE tls_report_policies"))
        db.execute(text("DROP TABLE tls_reports"))
    with pytest.raises(StoreUnavailable, match=r"^the report store is unavailable: "):
        ing.store(ready)


def _with_domains(*domains: str) -> ParsedReport:
    body = json.loads(RFC)
    first = body["policies"][0]
    body["policies"] = [
        {**first, "policy": {**first["policy"], "policy-domain": d}} for d in domains
    ]
    return parse_report(json.dumps(body))


def test_policies_about_another_domain_are_dropped_and_said() -> None:
    # RFC 8460 §4.4: a report is filed under the domain it was sent for
    filed = file_under(_with_domains("company-y.example", "other.example"), "company-y.example")
    assert [p.policy_domain for p in filed.report.policies] == ["company-y.example"]
    foreign = [r for r in filed.repairs if r.code == "policy-domain-foreign"]
    assert [r.message for r in foreign] == [
        "policies[1] is about other.example, not company-y.example: not filed under "
        "company-y.example, dropped"
    ]


def test_a_report_about_other_domains_only_names_them() -> None:
    with pytest.raises(ReportError) as info:
        file_under(_with_domains("b.example", "a.example"), "company-y.example")
    error = info.value
    assert (error.code, error.rfc) == ("report-domain-mismatch", "RFC 8460 §4.4")
    assert error.message == (
        "the report is about a.example, b.example, not company-y.example, which it was sent for"
    )
    assert error.fix == "send reports about a domain to the rua that domain publishes"


def test_failed_sessions_may_add_up_to_2_to_the_63_minus_1() -> None:
    # each count is checked when parsed (RFC 8460 §4.4); their sum must fit the store too
    body = json.loads(RFC)
    body["policies"][0]["summary"]["total-failure-session-count"] = 2**63 - 1
    del body["policies"][0]["failure-details"]
    filed = file_under(parse_report(json.dumps(body)), "company-y.example")
    assert filed.report.sessions()[1] == 2**63 - 1


def test_session_counts_adding_up_past_2_to_the_63_minus_1_are_refused() -> None:
    body = json.loads(RFC)
    first = body["policies"][0]
    del first["failure-details"]
    first["summary"]["total-failure-session-count"] = 2**63 - 1
    sub = {**first, "policy": {**first["policy"], "policy-domain": "sub.company-y.example"}}
    body["policies"].append(sub)
    with pytest.raises(ReportError) as info:
        file_under(parse_report(json.dumps(body)), "company-y.example")
    error = info.value
    assert (error.code, error.rfc) == ("report-count-overflow", "RFC 8460 §4.4")
    assert error.message == "the report's session counts add up to more than 2^63-1"
    assert error.fix == (
        "nothing to change on your side: the sending organisation produced this report"
    )


def test_a_public_report_naming_no_domain_is_refused_as_unnamed(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'r.db'}")
    migrate(engine)
    hosted = {"company-y.example"}.__contains__  # reports are received for this one only
    ing = ReportIngestor(session_factory(engine), clock=lambda: NOW, hosted=hosted)
    body = json.loads(RFC)
    for policy in body["policies"]:
        del policy["policy"]["policy-domain"]
    outcome = ing.prepare_payload(json.dumps(body).encode(), route=Route.HTTPS)
    assert isinstance(outcome, Outcome) and outcome.code == "domain-not-hosted"
    assert outcome.reason == "no TLS reports are received for an unnamed domain here"


@pytest.mark.parametrize(
    ("field", "value", "width"),
    [
        ("report-id", "x" * 256, "255 characters"),
        ("organization-name", "x" * 256, "255 characters"),
    ],
)
def test_a_value_wider_than_its_column_is_refused_in_full(
    field: str, value: str, width: str
) -> None:
    body = json.loads(RFC)
    body[field] = value
    with pytest.raises(ReportError) as info:
        check_field_lengths(parse_report(json.dumps(body)))
    error = info.value
    assert (error.code, error.rfc) == ("report-field-too-long", "RFC 8460 §4.4")
    assert error.message == f"the report's {field} is longer than the {width} stored"
    assert error.fix == (
        "nothing to change on your side: the sending organisation produced this report"
    )


@pytest.mark.parametrize(
    "name",
    [
        "\U0001d11e" * 255,  # 255 characters of 4 UTF-8 bytes: 1,020 bytes, the widest kept
        "Org \ud800",  # a lone surrogate (JSON allows "\ud800"): 3 bytes, kept as sent
    ],
    ids=["widest", "lone-surrogate"],
)
def test_identifiers_up_to_their_width_are_kept(name: str) -> None:
    body = json.loads(RFC)
    body["organization-name"] = name
    parsed = parse_report(json.dumps(body))
    check_field_lengths(parsed)  # no ReportError
    assert parsed.report.organization_name == name


def test_a_public_batch_is_charged_to_the_daily_quotas(tmp_path: Path) -> None:
    # a batch from a public route is stored one by one, each report charged to its quota
    engine = make_engine(f"sqlite:///{tmp_path / 'r.db'}")
    migrate(engine)
    quotas = Quotas(reports_per_domain=1)
    ing = ReportIngestor(session_factory(engine), clock=lambda: NOW, quotas=quotas)
    other = RFC.replace(b'"5065427c-23d3-47ca-b6e0-946ea0e8c4be"', b'"another"')
    batch = [ing.prepare_payload(p, route=Route.HTTPS) for p in (RFC, other)]
    ready = [b for b in batch if isinstance(b, Pending)]
    outcomes = ing.store_many(ready)
    assert [o.status for o in outcomes] == [Status.STORED, Status.OVER_QUOTA]


def test_every_failure_detail_and_policy_field_is_held_to_its_width() -> None:
    body = json.loads(RFC)
    details = body["policies"][0]["failure-details"]
    # exactly the width is kept; one more is refused, in any detail (here the first)
    details[1]["receiving-mx-hostname"] = "m" * 253
    check_field_lengths(parse_report(json.dumps(body)))
    details[0]["receiving-mx-hostname"] = "m" * 254
    with pytest.raises(ReportError) as info:
        check_field_lengths(parse_report(json.dumps(body)))
    assert info.value.message == (
        "the report's receiving-mx-hostname is longer than the 253 characters stored"
    )


def test_the_stored_size_limit_keeps_a_report_of_exactly_its_size(tmp_path: Path) -> None:
    size = len(ingestor(tmp_path / "a").prepare_payload(RFC, route=Route.FILE).raw)  # type: ignore[union-attr]
    kept = ingestor(tmp_path / "b", Limits(max_stored_bytes=size))
    assert isinstance(kept.prepare_payload(RFC, route=Route.FILE), Pending)
    refused = ingestor(tmp_path / "c", Limits(max_stored_bytes=size - 1))
    outcome = refused.prepare_payload(RFC, route=Route.FILE)
    assert isinstance(outcome, Outcome) and outcome.status is Status.REJECTED
    assert (outcome.code, outcome.organization, outcome.domain) == (
        "report-stored-too-large",
        "Company-X",
        "company-y.example",
    )
    assert outcome.reason == (
        f"the report takes {size} bytes gzip'd, more than the {size - 1} stored per report"
    )


def test_a_report_is_charged_its_bytes_and_256_per_row(tmp_path: Path) -> None:
    ready = ingestor(tmp_path).prepare_payload(RFC, route=Route.FILE)
    assert isinstance(ready, Pending)
    rows = 1 + 1 + 3  # the report, its policy, its 3 failure details
    assert ready.size == len(ready.raw) + 256 * rows


@pytest.mark.parametrize(
    ("name", "normal"),
    [(" <Company-Y.Example.> ", "company-y.example"), ("X.Example", "x.example")],
)
def test_a_domain_named_in_a_mail_is_normalised(name: str, normal: str) -> None:
    assert normalise_domain(name) == normal
