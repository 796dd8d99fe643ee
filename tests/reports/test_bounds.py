"""Issue 11 §1-2 and issue 10 §9 on the report routes: bounded memory (decompression cap,
parse slots, spooling, SMTP size), bounded disk (daily quotas counted in the store, shared
by processes) and numbers (64-bit counts, 4xx for huge ones)."""

from __future__ import annotations

import gzip
import json
import re
import sqlite3
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from mtasts.config import Settings
from mtasts.reports.aggregate import summary
from mtasts.reports.ingest import ReportIngestor, Route, Status
from mtasts.reports.quota import Quotas
from mtasts.store.db import make_engine, migrate, session_factory
from mtasts.store.models import TlsReport
from tests.hosting.serving import ZONE, Running, running, wait_for
from tests.lab import World
from tests.lab.ports import free_port
from tests.reports.test_routes import _send, host
from tests.reports.test_scope import listed, mail, post, report

pytestmark = pytest.mark.lab

D = "bounds.example"
MiB = 1 << 20


@contextmanager
def serving(tmp_path: Path, world: World, **overrides: Any) -> Iterator[Running]:
    settings = Settings(
        data_dir=tmp_path,
        zone=ZONE,
        nameservers=(world.nameserver,),
        smtp_listen=f"127.0.0.1:{free_port()}",
        sync_interval=0.2,
        verify_interval=3600,
        **overrides,
    )
    with running(settings) as r:
        host(r, world, [D])
        yield r


def smtp_port(app: Running) -> int:
    return int(app.service.settings.smtp_listen.rsplit(":", 1)[1])


def metric(app: Running, line: str) -> float:
    text = httpx.get(f"{app.base}/metrics", timeout=10).text
    found = re.search(rf"^{re.escape(line)} (\S+)$", text, re.M)
    assert found, f"{line} not in /metrics"
    return float(found.group(1))


def whitespace_bomb() -> bytes:
    """The issue 11 attack: ~50 KB of gzip inflating to 49 MiB of JSON whitespace."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [packer.compress(b"{")] + [packer.compress(b" " * MiB) for _ in range(49)]
    return b"".join([*parts, packer.compress(b"}"), packer.flush()])


# --- memory ------------------------------------------------------------------------------


def test_gzip_bomb_over_https_is_413(tmp_path: Path, lab_world: World) -> None:
    with serving(tmp_path, lab_world) as app:
        r = httpx.post(
            f"{app.base}/tlsrpt/{D}",
            content=whitespace_bomb(),
            headers={"Content-Type": "application/tlsrpt+gzip"},
            timeout=60,
        )
        assert r.status_code == 413, r.text
        assert r.json()["error"]["code"] == "report-decompressed-too-large"
        assert metric(app, 'mtasts_reports_rejected_total{reason="too_large"}') == 1


def test_parse_slots_full_gives_503_and_451_with_retry_after(
    tmp_path: Path, lab_world: World
) -> None:
    with serving(tmp_path, lab_world, report_parse_slots=1, report_parse_queue=0) as app:
        # Hold the only slot: a report whose store waits on a write lock the test holds.
        lock = sqlite3.connect(tmp_path / "mtasts.db", timeout=30, isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")
        held: dict[str, httpx.Response] = {}
        first = threading.Thread(target=lambda: held.setdefault("r", post(app, D, report(D))))
        first.start()
        try:
            wait_for(lambda: metric(app, "mtasts_reports_parsing") == 1, 30, "a busy slot")
            r = post(app, D, report(D, rid="second"))
            assert r.status_code == 503, r.text
            assert r.json()["error"]["code"] == "report-busy"
            assert int(r.headers["Retry-After"]) > 0
            code, text = _send(smtp_port(app), mail(report(D, rid="third")))
            assert code == 451 and text.startswith(b"4.3.2"), text
            assert metric(app, 'mtasts_reports_rejected_total{reason="busy"}') == 2
        finally:
            lock.execute("ROLLBACK")
            lock.close()
            first.join(60)
        assert held["r"].status_code == 201, held["r"].text
        assert post(app, D, report(D, rid="second")).status_code == 201  # free again
        assert len(listed(app, D)) == 2


def test_smtp_data_over_the_size_limit_is_552(tmp_path: Path, lab_world: World) -> None:
    with serving(tmp_path, lab_world, report_max_message_bytes=64 * 1024) as app:
        big = mail(report(D)) + b"\r\n" + (b"x" * 76 + b"\r\n") * 1500  # ~117 KiB
        code, text = _send(smtp_port(app), big)
        assert code == 552, (code, text)
        code, text = _send(smtp_port(app), mail(report(D)))  # the session is still usable
        assert code == 250, text


def test_bodies_above_the_spool_threshold_wait_on_disk(tmp_path: Path, lab_world: World) -> None:
    with serving(tmp_path, lab_world, report_spool_bytes=4096) as app:
        spooled = "mtasts_reports_spooled_total"
        small = mail(report(D, rid="small"))
        assert len(small) < 4096
        assert _send(smtp_port(app), small)[0] == 250
        assert post(app, D, report(D, rid="small-https")).status_code == 201
        assert metric(app, spooled) == 0
        padded = report(D, rid="padded")
        padded["contact-info"] = "x" * 6000  # gzip'd it stays small: send it as plain JSON
        big_mail = mail(padded, gz=False)
        assert len(big_mail) > 4096
        code, text = _send(smtp_port(app), big_mail)
        assert code == 250, text
        assert metric(app, spooled) == 1
        r = httpx.post(
            f"{app.base}/tlsrpt/{D}",
            content=json.dumps(report(D, rid="padded-https"), indent=400).encode(),
            headers={"Content-Type": "application/tlsrpt+json"},
            timeout=30,
        )
        assert r.status_code == 201, r.text
        assert metric(app, spooled) == 2
        assert len(listed(app, D)) == 4


# --- disk --------------------------------------------------------------------------------


def test_domain_quota_gives_429_and_452_and_stores_nothing_more(
    tmp_path: Path, lab_world: World
) -> None:
    with serving(tmp_path, lab_world, report_quota_reports=2) as app:
        assert post(app, D, report(D, rid="1")).status_code == 201
        assert post(app, D, report(D, rid="2", org="Microsoft")).status_code == 201
        r = post(app, D, report(D, rid="3", org="Other"))
        assert r.status_code == 429, r.text
        assert r.json()["error"]["code"] == "quota-exceeded"
        assert 0 < int(r.headers["Retry-After"]) <= 86401
        code, text = _send(smtp_port(app), mail(report(D, rid="4")))
        assert code == 452 and text.startswith(b"4.3.1"), text
        # a report already stored is still acknowledged (the sender stops retrying)
        again = post(app, D, report(D, rid="1"))
        assert again.status_code == 200 and again.json()["status"] == "duplicate"
        assert len(listed(app, D)) == 2
        assert metric(app, 'mtasts_reports_rejected_total{reason="quota"}') == 2


def test_organisation_and_byte_quotas(tmp_path: Path, lab_world: World) -> None:
    with serving(tmp_path, lab_world, report_quota_org_reports=1) as app:
        assert post(app, D, report(D, rid="g1")).status_code == 201
        assert post(app, D, report(D, rid="g2")).status_code == 429
        assert post(app, D, report(D, rid="m1", org="Microsoft")).status_code == 201
    one = report(D, rid="b1")
    cost = len(gzip.compress(json.dumps(one).encode())) + 2 * 256
    with serving(tmp_path / "b", lab_world, report_quota_bytes=cost + cost // 2) as app:
        assert post(app, D, one).status_code == 201
        r = post(app, D, report(D, rid="b2"))
        assert r.status_code == 429 and "bytes" in r.json()["error"]["message"], r.text


def _ingestor(url: str, quotas: Quotas) -> ReportIngestor:
    engine = make_engine(url)
    migrate(engine)
    return ReportIngestor(session_factory(engine), quotas=quotas)


def _payload(i: int, org: str = "Google Inc.") -> bytes:
    return json.dumps(report(D, rid=f"r{i}", org=org)).encode()


def test_quota_is_shared_by_processes_on_one_store(tmp_path: Path) -> None:
    # Two serve processes = two ingestors with engines of their own on one database.
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    quotas = Quotas(reports_per_domain=5)
    a, b = _ingestor(url, quotas), _ingestor(url, quotas)
    outcomes = [
        (a if i % 2 else b).ingest_payload(_payload(i, f"org{i}"), route=Route.HTTPS, domain=D)
        for i in range(12)
    ]
    assert [o.status for o in outcomes].count(Status.STORED) == 5
    assert {o.status for o in outcomes[5:]} == {Status.OVER_QUOTA}
    with a.sessions() as db:
        assert db.scalar(select(func.count()).select_from(TlsReport)) == 5
    # the operator's own imports are not held to the senders' quota
    assert a.ingest_payload(_payload(99), route=Route.FILE, domain=D).status is Status.STORED


@pytest.mark.system
def test_quota_holds_under_concurrency_on_postgresql(postgres_url: str) -> None:
    quotas = Quotas(reports_per_domain=20)
    ingestors = [_ingestor(postgres_url, quotas) for _ in range(2)]
    results: list[Status] = []
    lock = threading.Lock()

    def sender(n: int) -> None:
        ing = ingestors[n % 2]
        for i in range(10):
            o = ing.ingest_payload(_payload(n * 100 + i, f"org{n}"), route=Route.HTTPS, domain=D)
            with lock:
                results.append(o.status)

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert results.count(Status.STORED) == 20, results
    assert results.count(Status.OVER_QUOTA) == 40
    with ingestors[0].sessions() as db:
        assert db.scalar(select(func.count()).select_from(TlsReport)) == 20
    for ing in ingestors:
        ing.sessions.kw["bind"].dispose()


# --- numbers -----------------------------------------------------------------------------


def test_counts_beyond_64_bits_and_huge_api_numbers_are_4xx(
    tmp_path: Path, lab_world: World
) -> None:
    big = 2**63 - 1
    with serving(tmp_path, lab_world) as app:
        # each count fits, their sum does not: refused with a reason, not a 500
        r = post(app, D, report(D, rid="sum", ok=big, extra=[(D, "no-policy-found", big)]))
        assert r.status_code == 400 and r.json()["error"]["code"] == "report-count-overflow"
        r = post(app, D, report(D, rid="one", ok=2**63))
        assert r.status_code == 400 and r.json()["error"]["code"] == "report-count-invalid"
        assert post(app, D, report(D, rid="max", ok=big)).status_code == 201
        assert listed(app, D)[0]["successful"] == big
        with app.client() as c:
            for url in (
                f"/api/v1/domains/{D}/reports?offset={10**20}",
                f"/api/v1/domains/{D}/reports?limit={10**20}",
                f"/api/v1/domains/{D}/reports/{10**20}/raw",
                f"/api/v1/domains/{D}/reports/{2**63}/raw",
                f"/api/v1/domains/{D}/reports/summary?days={10**20}",
            ):
                assert c.get(url).status_code == 422, url
            assert c.get(f"/api/v1/domains/{D}/reports/{2**63 - 1}/raw").status_code == 404


@pytest.mark.system
def test_counts_of_2_to_the_31_are_stored_and_summed_on_postgresql(postgres_url: str) -> None:
    ing = _ingestor(postgres_url, Quotas())
    for i in range(3):
        body = report(D, rid=f"big{i}", ok=2**31, failed=2**31 + i)
        outcome = ing.ingest_payload(json.dumps(body).encode(), route=Route.HTTPS, domain=D)
        assert outcome.status is Status.STORED, outcome
    with ing.sessions() as db:
        s = summary(db, D, 366, datetime(2026, 11, 30, tzinfo=UTC))
        assert s["totals"]["successful"] == 3 * 2**31
        assert s["totals"]["failed"] == 3 * 2**31 + 3
        assert s["by_result_type"] == []
        ok = db.scalar(select(func.sum(TlsReport.sessions_ok)))
        assert int(ok or 0) == 3 * 2**31
    ing.sessions.kw["bind"].dispose()


@pytest.mark.system
def test_values_wider_than_their_columns_are_400_not_503_on_postgresql(postgres_url: str) -> None:
    ing = _ingestor(postgres_url, Quotas())
    cases: list[tuple[str, dict[str, Any]]] = []
    long_org = report(D, rid="o", org="Ö" * 300)
    cases.append(("organization-name", long_org))
    long_type = report(D, rid="t")
    long_type["policies"][0]["policy"]["policy-type"] = "x" * 40
    cases.append(("policy-type", long_type))
    long_ip = report(D, rid="i", failed=1)
    long_ip["policies"][0]["failure-details"] = [
        {
            "result-type": "starttls-not-supported",
            "sending-mta-ip": "1" * 100,
            "failed-session-count": 1,
        }
    ]
    cases.append(("sending-mta-ip", long_ip))
    for field, body in cases:
        o = ing.ingest_payload(json.dumps(body).encode(), route=Route.HTTPS, domain=D)
        assert o.status is Status.REJECTED and o.code == "report-field-too-long", (field, o)
        assert field in o.reason
    fits = report(D, rid="r" * 255, org="Ö" * 255)
    o = ing.ingest_payload(json.dumps(fits).encode(), route=Route.HTTPS, domain=D)
    assert o.status is Status.STORED, o
    ing.sessions.kw["bind"].dispose()
