"""The ingestion counters behind /metrics: each outcome counted under its one reason, and
the Prometheus text exactly (names, labels, every reason listed even at zero)."""

from __future__ import annotations

from mtasts.reports.ingest import IngestCounters, Outcome, Status


def test_outcomes_are_counted_by_reason() -> None:
    c = IngestCounters()
    for outcome in (
        Outcome(Status.STORED),
        Outcome(Status.STORED),
        Outcome(Status.DUPLICATE),
        Outcome(Status.OVER_QUOTA, retry_after=60),
        Outcome(Status.REJECTED, code="domain-not-hosted"),
        Outcome(Status.REJECTED, code="report-decompressed-too-large"),
        Outcome(Status.REJECTED, code="report-too-large"),
        Outcome(Status.REJECTED, code="report-json-invalid"),
    ):
        c.outcome(outcome)
    c.reject("busy")
    c.reject("store_unavailable")
    c.reject("busy")
    c.spool()
    assert dict(c.received) == {"stored": 2, "duplicate": 1}
    assert dict(c.rejected) == {
        "quota": 1,
        "not_hosted": 1,
        "too_large": 2,
        "invalid": 1,
        "busy": 2,
        "store_unavailable": 1,
    }
    assert c.spooled == 1
    assert Outcome(Status.STORED).accepted and Outcome(Status.DUPLICATE).accepted
    assert not Outcome(Status.REJECTED).accepted and not Outcome(Status.OVER_QUOTA).accepted


def test_metrics_text() -> None:
    c = IngestCounters()
    c.outcome(Outcome(Status.DUPLICATE))
    c.reject("busy")
    c.reject("something_new")  # a reason added later is listed too
    c.spool()
    c.spool()
    assert c.metrics() == [
        "# HELP mtasts_reports_received_total TLS reports taken (stored or already known).",
        "# TYPE mtasts_reports_received_total counter",
        'mtasts_reports_received_total{result="stored"} 0',
        'mtasts_reports_received_total{result="duplicate"} 1',
        "# HELP mtasts_reports_rejected_total TLS reports refused, by reason.",
        "# TYPE mtasts_reports_rejected_total counter",
        'mtasts_reports_rejected_total{reason="busy"} 1',
        'mtasts_reports_rejected_total{reason="invalid"} 0',
        'mtasts_reports_rejected_total{reason="not_hosted"} 0',
        'mtasts_reports_rejected_total{reason="quota"} 0',
        'mtasts_reports_rejected_total{reason="something_new"} 1',
        'mtasts_reports_rejected_total{reason="store_unavailable"} 0',
        'mtasts_reports_rejected_total{reason="too_large"} 0',
        "# HELP mtasts_reports_spooled_total Report bodies and mails spooled to disk.",
        "# TYPE mtasts_reports_spooled_total counter",
        "mtasts_reports_spooled_total 2",
    ]


def test_each_reason_counts_up() -> None:
    c = IngestCounters()
    for _ in range(3):
        c.outcome(Outcome(Status.OVER_QUOTA, retry_after=60))
        c.outcome(Outcome(Status.REJECTED, code="domain-not-hosted"))
        c.outcome(Outcome(Status.REJECTED, code="report-too-large"))
        c.outcome(Outcome(Status.REJECTED, code="report-json-invalid"))
    assert dict(c.rejected) == {"quota": 3, "not_hosted": 3, "too_large": 3, "invalid": 3}
