"""Benchmark: TLS report ingestion (parse + store) against parsedmarc's parser.

    python bench/reports_ingest.py [--reports 10000]

Builds a corpus of reports from the shapes of the real samples in tests/data/tlsrpt (ids,
organisations, dates and counts varied; a third gzip'd, as senders send them), then in the
same run:
  - mtasts: ReportIngestor.ingest_payload on each (limits, gunzip, lenient parse, dedup,
    one committed transaction per report into the embedded SQLite store, as HTTPS and SMTP
    acknowledge them), and the import path (`mtasts reports import`: 200 per transaction),
  - parsedmarc: parse_smtp_tls_report_json on the same reports, already decompressed
    (parse only: parsedmarc stores nothing).
Prints reports/s of both and the ratio; then the peak memory (tracemalloc) while ingesting
one 10 MB report, and the process RSS after 1/10 and after all of the corpus (flat means
nothing accumulates per report).
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import random
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "data" / "tlsrpt"

from mtasts.reports.ingest import Pending, ReportIngestor, Route, Status  # noqa: E402
from mtasts.reports.limits import load_report  # noqa: E402
from mtasts.store.db import make_engine, migrate, session_factory  # noqa: E402


def samples() -> list[dict[str, Any]]:
    out = []
    for path in sorted(CORPUS.rglob("*.json")):
        data = json.loads(path.read_bytes())
        # shapes parsedmarc accepts too (it refuses e.g. missing policy-domain)
        if all((p.get("policy") or {}).get("policy-domain") for p in data.get("policies", [])):
            out.append(data)
    return out


def build(n: int, seed: int = 8460) -> list[tuple[bytes, str]]:
    """(payload as sent, JSON text) pairs."""
    rng = random.Random(seed)
    shapes = samples()
    out = []
    for i in range(n):
        r = copy.deepcopy(shapes[i % len(shapes)])
        r["report-id"] = f"{r['report-id']}-{i}"
        r["organization-name"] = f"{r['organization-name']} {i % 50}"
        day = 1 + i % 28
        r["date-range"] = {
            "start-datetime": f"2026-10-{day:02d}T00:00:00Z",
            "end-datetime": f"2026-10-{day:02d}T23:59:59Z",
        }
        for p in r["policies"]:
            s = p.setdefault("summary", {})
            s["total-successful-session-count"] = rng.randint(0, 5000)
            s["total-failure-session-count"] = sum(
                d.get("failed-session-count", 0) for d in p.get("failure-details", [])
            )
        text = json.dumps(r)
        payload = gzip.compress(text.encode()) if i % 3 == 0 else text.encode()
        out.append((payload, text))
    return out


def big_report(target: int = 9_900_000) -> bytes:
    detail: dict[str, Any] = {
        "result-type": "certificate-expired",
        "sending-mta-ip": "2001:db8::25",
        "receiving-mx-hostname": "mx2.example.com",
        "receiving-ip": "192.0.2.25",
        "failed-session-count": 1,
        "additional-information": "https://reports.example/details?id=",
    }
    policies, size = [], 0
    while size < target:
        details = []
        for i in range(2000):
            d = dict(detail)
            d["additional-information"] = f"{detail['additional-information']}{i}"
            details.append(d)
        policies.append(
            {
                "policy": {
                    "policy-type": "sts",
                    "policy-string": ["version: STSv1", "mode: enforce", "mx: *.example.com"],
                    "policy-domain": "example.com",
                    "mx-host": ["*.example.com"],
                },
                "summary": {
                    "total-successful-session-count": 100,
                    "total-failure-session-count": 2000,
                },
                "failure-details": details,
            }
        )
        size += len(json.dumps(policies[-1]))
    report = {
        "organization-name": "Big Sender",
        "date-range": {
            "start-datetime": "2026-10-01T00:00:00Z",
            "end-datetime": "2026-10-01T23:59:59Z",
        },
        "contact-info": "tlsrpt@big.example",
        "report-id": "big-1",
        "policies": policies,
    }
    return json.dumps(report).encode()


def rss() -> int:
    """Resident memory of this process in bytes (tracemalloc would slow the timed loop)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reports", type=int, default=10_000)
    args = ap.parse_args()
    try:
        from parsedmarc import parse_report_file, parse_smtp_tls_report_json
    except ImportError:
        print("parsedmarc is not installed: pip install -e '.[bench]'", file=sys.stderr)
        return 2

    corpus = build(args.reports)
    mib = sum(len(p) for p, _ in corpus) / 2**20
    print(f"{len(corpus)} reports from {len(samples())} real shapes, {mib:.1f} MiB as sent")

    start = time.perf_counter()
    for _, text in corpus:
        parse_smtp_tls_report_json(text)
    theirs = time.perf_counter() - start
    start = time.perf_counter()
    for payload, _ in corpus:
        parse_report_file(payload, offline=True)
    theirs_file = time.perf_counter() - start
    start = time.perf_counter()
    for payload, _ in corpus:
        load_report(payload)
    ours_parse = time.perf_counter() - start

    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/bench.db")
        migrate(engine)
        ingestor = ReportIngestor(session_factory(engine))
        held_early = 0
        start = time.perf_counter()
        for i, (payload, _) in enumerate(corpus):
            outcome = ingestor.ingest_payload(payload, route=Route.FILE)
            if outcome.status is not Status.STORED:
                raise SystemExit(f"report {i} not stored: {outcome}")
            if i == len(corpus) // 10:
                held_early = rss()
        ours = time.perf_counter() - start
        held_late = rss()

        # the import route: the same reports again under new ids, 200 per transaction
        engine2 = make_engine(f"sqlite:///{tmp}/import.db")
        migrate(engine2)
        importer = ReportIngestor(session_factory(engine2))
        start = time.perf_counter()
        ready = []
        for payload, _ in corpus:
            item = importer.prepare_payload(payload, route=Route.FILE)
            assert isinstance(item, Pending), item
            ready.append(item)
            if len(ready) == 200:
                stored = importer.store_many(ready)
                assert all(o.status is Status.STORED for o in stored)
                ready = []
        importer.store_many(ready)
        ours_import = time.perf_counter() - start
        engine2.dispose()

        big = big_report()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        outcome = ingestor.ingest_payload(big, route=Route.FILE)
        peak = tracemalloc.get_traced_memory()[1] - before
        tracemalloc.stop()
        if outcome.status is not Status.STORED:
            raise SystemExit(f"the 10 MB report was not stored: {outcome}")
        engine.dispose()

    n = len(corpus)
    print(f"mtasts ingest (parse + store)   {n / ours:9.0f} reports/s  ({ours:.2f} s)")
    print(f"parsedmarc 11.1.0 (parse only)  {n / theirs:9.0f} reports/s  ({theirs:.2f} s)")
    print(f"ratio                           {theirs / ours:9.2f}x  (goal: 5x)")
    print(
        f"mtasts import, 200 per commit    {n / ours_import:9.0f} reports/s  "
        f"({ours_import:.2f} s; ratio {theirs / ours_import:.2f}x)"
    )
    print("context, parse only on both sides:")
    print(f"  mtasts load_report (gunzip, limits, lenient parse) {n / ours_parse:9.0f} reports/s")
    print(f"  parsedmarc parse_report_file (gunzip, parse)        {n / theirs_file:9.0f} reports/s")
    print(
        f"process RSS after {n // 10 + 1} reports: {held_early / 2**20:.1f} MiB; "
        f"after {n}: {held_late / 2**20:.1f} MiB"
    )
    print(f"peak memory ingesting one {len(big) / 2**20:.1f} MB report: {peak / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
