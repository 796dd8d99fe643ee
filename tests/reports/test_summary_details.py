"""Failure details summed across reports, per sender, result type, sending MTA and
receiving MX (issue 9), on a real SQLite store."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mtasts.reports.aggregate import summary
from mtasts.reports.ingest import ReportIngestor, Route, Status
from mtasts.store.db import make_engine, migrate, session_factory

DOMAIN = "example.org"


def report(day: int, rid: str, org: str, failures: list[tuple[str, str, int]]) -> bytes:
    """A report of ``org`` for 2026-11-``day``: ``failures`` are (type, sending MTA, count),
    listed under an sts and a tlsa policy alike (the same sessions, as Microsoft does)."""
    details = [
        {
            "result-type": rtype,
            "sending-mta-ip": mta,
            "receiving-mx-hostname": "mx1.example.org",
            "failed-session-count": n,
        }
        for rtype, mta, n in failures
    ]
    failed = sum(n for _, _, n in failures)
    body: dict[str, Any] = {
        "organization-name": org,
        "date-range": {
            "start-datetime": f"2026-11-{day:02d}T00:00:00Z",
            "end-datetime": f"2026-11-{day:02d}T23:59:59Z",
        },
        "contact-info": "tls@example.net",
        "report-id": rid,
        "policies": [
            {
                "policy": {"policy-type": ptype, "policy-domain": DOMAIN},
                "summary": {
                    "total-successful-session-count": 100,
                    "total-failure-session-count": failed,
                },
                "failure-details": details,
            }
            for ptype in ("sts", "tlsa")
        ],
    }
    return json.dumps(body).encode()


def test_failure_details_are_summed_across_reports(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'r.db'}")
    migrate(engine)
    ingestor = ReportIngestor(session_factory(engine))
    payloads = [
        report(20, "a1", "Big Sender", [("certificate-expired", "192.0.2.1", 3)]),
        report(21, "a2", "Big Sender", [("certificate-expired", "192.0.2.1", 4)]),
        report(22, "a3", "Big Sender", [("certificate-expired", "192.0.2.1", 5),
                                        ("starttls-not-supported", "192.0.2.2", 1)]),
        report(22, "b1", "Other", [("certificate-expired", "198.51.100.7", 2)]),
    ]  # fmt: skip
    for data in payloads:
        assert ingestor.ingest_payload(data, route=Route.FILE).status is Status.STORED
    now = datetime(2026, 11, 25, tzinfo=UTC)
    with ingestor.sessions() as db:
        s = summary(db, DOMAIN, 30, now)
    rows = [
        (d["organization"], d["result_type"], d["sending_mta_ip"], d["sessions"], d["reports"])
        for d in s["failure_details"]
    ]
    assert rows == [
        ("Big Sender", "certificate-expired", "192.0.2.1", 12, 3),  # 3 + 4 + 5, not 24
        ("Other", "certificate-expired", "198.51.100.7", 2, 1),
        ("Big Sender", "starttls-not-supported", "192.0.2.2", 1, 1),
    ]
    by_type = {t["result_type"]: t["sessions"] for t in s["by_result_type"]}
    assert by_type == {"certificate-expired": 14, "starttls-not-supported": 1}
    quiet = [d for d in s["by_day"] if d["reports"] == 0]
    assert quiet and all(d["failure_rate"] == 0 for d in quiet)  # the page shows a gap
