"""The IMAP route against a real Dovecot: every corpus report stored once, messages moved
only after they are stored, nothing lost or taken twice when the store is down, and plain
errors for login, folder, TLS and connection problems."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
import typer
from sqlalchemy import Engine, func, select, text
from typer.testing import CliRunner

from mtasts.reports.imap import FetchSummary, ImapError, Security, fetch_imap
from mtasts.reports.ingest import ReportIngestor, Route
from mtasts.store.db import make_engine, migrate, session_factory
from mtasts.store.models import TlsReport
from tests.lab.ca import Leaf, TestCA
from tests.lab.ports import free_port
from tests.lab.require import require
from tests.reports.dovecot import PASSWORD, USER, Dovecot, dovecot_server, leaf_names

pytestmark = pytest.mark.system

CORPUS = Path(__file__).resolve().parents[1] / "data" / "tlsrpt"
PROCESSED = "TLSRPT-processed"
SEEN = b"\\Seen"


def crlf(message: bytes) -> bytes:
    """Line ends as IMAP carries them (imapclient's APPEND sends CRLF, as servers store)."""
    return message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def corpus() -> list[bytes]:
    files = sorted(CORPUS.rglob("*.eml")) if CORPUS.is_dir() else []
    require(bool(files), f"the TLS-RPT corpus (.eml files under {CORPUS})")
    return [crlf(f.read_bytes()) for f in files]


def not_a_report() -> bytes:
    msg = EmailMessage()
    msg["From"] = "someone@example.org"
    msg["To"] = "tlsrpt@example.net"
    msg["Subject"] = "lunch?"
    msg.set_content("Not a TLS report, just mail that landed in the rua mailbox.")
    return crlf(msg.as_bytes())


def store(tmp_path: Path, name: str = "t.db") -> tuple[Engine, ReportIngestor]:
    engine = make_engine(f"sqlite:///{tmp_path}/{name}")
    migrate(engine)
    return engine, ReportIngestor(session_factory(engine))


def stored_keys(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as c:
        return sorted(
            (row.organization, row.report_id)
            for row in c.execute(select(TlsReport.organization, TlsReport.report_id))
        )


def row_count(engine: Engine) -> int:
    with engine.connect() as c:
        return int(c.execute(select(func.count()).select_from(TlsReport)).scalar_one())


def expected_keys(tmp_path: Path, messages: list[bytes]) -> list[tuple[str, str]]:
    """What the file route stores from the same messages: the oracle for the IMAP route."""
    engine, ingestor = store(tmp_path, "oracle.db")
    try:
        for m in messages:
            ingestor.ingest_message(m, route=Route.FILE)
        return stored_keys(engine)
    finally:
        engine.dispose()


def run(
    server: Dovecot, ingestor: ReportIngestor, security: Security = "ssl", **kwargs: object
) -> FetchSummary:
    port = server.imaps_port if security == "ssl" else server.imap_port
    options: dict[str, object] = {
        "host": server.host,
        "port": port,
        "username": USER,
        "password": PASSWORD,
        "ca_file": server.ca_file,
        "timeout": 10,
    }
    return fetch_imap(ingestor, security=security, **(options | kwargs))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def leaf(test_ca: TestCA) -> Leaf:
    return test_ca.issue(leaf_names())


@pytest.fixture
def dovecot(leaf: Leaf, test_ca: TestCA) -> Iterator[Dovecot]:
    with dovecot_server(leaf, test_ca.ca_file) as server:
        yield server


def test_corpus_is_stored_once_and_moved_after_storing(tmp_path: Path, dovecot: Dovecot) -> None:
    reports = corpus()
    expected = expected_keys(tmp_path, reports)
    assert len(expected) == len(reports)  # every corpus message carries one distinct report
    junk = not_a_report()
    dovecot.append([*reports, junk, reports[0]])  # the same report mailed twice
    engine, ingestor = store(tmp_path)
    calls: list[tuple[int, int]] = []

    summary = run(dovecot, ingestor, batch=3, progress=lambda d, t: calls.append((d, t)))

    total = len(reports) + 2
    assert stored_keys(engine) == expected
    assert summary.seen == total and calls[0] == (0, total) and calls[-1] == (total, total)
    assert (summary.stored, summary.duplicate) == (len(expected), 1)
    assert (summary.processed, summary.rejected, summary.left) == (len(reports) + 1, 1, 0)
    assert summary.store_error is None
    (rejected,) = summary.rejected_messages
    assert rejected.moved_to is None and "report-not-found" in rejected.reason
    assert summary.left_behind == 1 and not summary.ok
    # Only the non-report stays, still unseen; the rest is in the processed folder, seen.
    assert [(body, SEEN in flags) for body, flags in dovecot.messages("INBOX")] == [(junk, False)]
    moved = dovecot.messages(PROCESSED)
    assert sorted(body for body, _ in moved) == sorted([*reports, reports[0]])
    assert all(SEEN in flags for _, flags in moved)
    with engine.connect() as c:
        assert set(c.execute(select(TlsReport.route)).scalars()) == {"imap"}

    again = run(dovecot, ingestor)  # idempotent: only the non-report is looked at again
    assert (again.seen, again.stored, again.duplicate, again.rejected) == (1, 0, 0, 1)
    assert row_count(engine) == len(expected)

    dovecot.append(reports)  # every report mailed once more: all known, nothing new stored
    third = run(dovecot, ingestor)
    assert (third.stored, third.duplicate, third.processed) == (0, len(reports), len(reports))
    assert stored_keys(engine) == expected
    assert len(dovecot.messages(PROCESSED)) == 2 * len(reports) + 1


@pytest.mark.parametrize("security", ["ssl", "starttls", "plain"])
def test_security_modes_and_rejected_folder(
    tmp_path: Path, dovecot: Dovecot, security: Security
) -> None:
    reports = corpus()[:2]
    junk = not_a_report()
    dovecot.append([junk, *reports])
    engine, ingestor = store(tmp_path)

    summary = run(dovecot, ingestor, security, rejected_folder="TLSRPT-rejected")

    assert (summary.stored, summary.processed, summary.rejected) == (2, 2, 1)
    assert summary.rejected_messages[0].moved_to == "TLSRPT-rejected"
    assert summary.ok and summary.left_behind == 0
    assert row_count(engine) == 2
    assert dovecot.messages("INBOX") == []
    assert [(b, SEEN in f) for b, f in dovecot.messages("TLSRPT-rejected")] == [(junk, False)]


@pytest.mark.parametrize(
    "capabilities",
    [
        # Dovecot's own list without MOVE: COPY, \Deleted, UID EXPUNGE
        "IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE UIDPLUS",
        # without MOVE and UIDPLUS: COPY, \Deleted, EXPUNGE
        "IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE",
    ],
    ids=["uidplus", "expunge"],
)
def test_servers_without_move(
    tmp_path: Path, leaf: Leaf, test_ca: TestCA, capabilities: str
) -> None:
    reports = corpus()[:3]
    with dovecot_server(leaf, test_ca.ca_file, capabilities=capabilities) as server:
        with server.client() as c:
            assert not c.has_capability("MOVE")  # the client would refuse MOVE now
        server.append(reports)
        _, ingestor = store(tmp_path)
        summary = run(server, ingestor, batch=2)
        assert (summary.stored, summary.processed) == (3, 3) and summary.ok
        assert server.messages("INBOX") == []
        assert sorted(b for b, _ in server.messages(PROCESSED)) == sorted(reports)
        assert run(server, ingestor).seen == 0  # nothing \Deleted left to take again


def test_store_down_leaves_every_message_in_place(tmp_path: Path, dovecot: Dovecot) -> None:
    reports = corpus()
    dovecot.append(reports)
    down = make_engine(f"sqlite:///{tmp_path}/empty.db")  # no tables: every insert fails
    summary = run(dovecot, ReportIngestor(session_factory(down)))
    assert summary.store_error and "unavailable" in summary.store_error
    assert (summary.seen, summary.left, summary.stored, summary.processed) == (
        len(reports),
        len(reports),
        0,
        0,
    )
    assert not summary.ok
    inbox = dovecot.messages("INBOX")
    assert sorted(b for b, _ in inbox) == sorted(reports)
    assert not any(SEEN in flags for _, flags in inbox)  # not even marked seen
    assert dovecot.messages(PROCESSED) == []


def test_store_failing_mid_run_keeps_the_rest_for_the_next_run(
    tmp_path: Path, dovecot: Dovecot
) -> None:
    reports = corpus()
    dovecot.append(reports)
    engine, ingestor = store(tmp_path)

    def cut_after_two(done: int, _total: int) -> None:
        if done == 2:
            with engine.begin() as c:
                c.execute(text("ALTER TABLE tls_reports RENAME TO tls_reports_away"))

    summary = run(dovecot, ingestor, progress=cut_after_two)
    assert summary.store_error is not None
    assert (summary.stored, summary.processed, summary.left) == (2, 2, len(reports) - 2)
    assert len(dovecot.messages(PROCESSED)) == 2
    assert len(dovecot.messages("INBOX")) == len(reports) - 2

    with engine.begin() as c:
        c.execute(text("ALTER TABLE tls_reports_away RENAME TO tls_reports"))
    rest = run(dovecot, ingestor)
    assert (rest.stored, rest.duplicate, rest.left) == (len(reports) - 2, 0, 0) and rest.ok
    assert stored_keys(engine) == expected_keys(tmp_path, reports)
    assert dovecot.messages("INBOX") == []


def test_plain_errors(tmp_path: Path, dovecot: Dovecot) -> None:
    _, ingestor = store(tmp_path)
    with pytest.raises(ImapError, match=r"folder 'Reports' does not exist.*INBOX"):
        run(dovecot, ingestor, folder="Reports")
    for security in ("ssl", "starttls"):  # the test CA is not in the system store
        with pytest.raises(ImapError, match=r"not trusted.*--ca-file") as info:
            run(dovecot, ingestor, security, ca_file=None)
        assert info.value.summary is None
    with pytest.raises(ImapError, match="is this the IMAPS port"):
        fetch_imap(
            ingestor,
            host=dovecot.host,
            port=dovecot.imap_port,  # IMAP, not IMAPS
            username=USER,
            password=PASSWORD,
            ca_file=dovecot.ca_file,
            timeout=10,
        )
    with pytest.raises(ImapError, match="refused"):
        fetch_imap(ingestor, host="127.0.0.1", port=free_port(), username=USER, password="x")
    # Last: after a failed login Dovecot delays the next logins from the address a while.
    with pytest.raises(ImapError, match=r"login .* failed"):
        run(dovecot, ingestor, password="wrong")


def test_silent_server_times_out(tmp_path: Path) -> None:
    _, ingestor = store(tmp_path)
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never greets
        port = silent.getsockname()[1]
        with pytest.raises(ImapError, match="timed out"):
            fetch_imap(
                ingestor,
                host="127.0.0.1",
                port=port,
                username=USER,
                password="x",
                security="plain",
                timeout=0.5,
            )


def test_cli_fetch_imap(tmp_path: Path, dovecot: Dovecot) -> None:
    reports = corpus()
    dovecot.append([*reports, not_a_report()])
    db = tmp_path / "cli.db"
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n", encoding="utf-8")
    args = [
        "--host",
        dovecot.host,
        "--port",
        str(dovecot.imap_port),
        "--security",
        "starttls",
        "--user",
        USER,
        "--password-file",
        str(secret),
        "--ca-file",
        dovecot.ca_file,
        "--rejected-folder",
        "Junk-reports",
        "--database-url",
        f"sqlite:///{db}",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MTASTS_")}
    proc = subprocess.run(
        [sys.executable, "-m", "mtasts", "reports", "fetch-imap", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    code, err = proc.returncode, proc.stderr
    assert code == 0, err
    assert f"{len(reports)} report(s) stored" in err and "1 rejected" in err
    assert "rejected UID" in err and "moved to Junk-reports" in err
    engine = make_engine(f"sqlite:///{db}")
    assert row_count(engine) == len(reports)
    engine.dispose()
    assert dovecot.messages("INBOX") == []


def test_cli_exit_codes(tmp_path: Path, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch) -> None:
    from mtasts.reports.imap_cli import PASSWORD_ENV, fetch_imap_command

    app = typer.Typer()
    app.command("fetch-imap")(fetch_imap_command)
    app.command("other")(lambda: None)
    base = [
        "fetch-imap",
        "--host",
        dovecot.host,
        "--port",
        str(dovecot.imaps_port),
        "--user",
        USER,
        "--database-url",
        f"sqlite:///{tmp_path}/cli.db",
    ]
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    monkeypatch.delenv("MTASTS_CONFIG", raising=False)
    result = CliRunner().invoke(app, [*base, "--ca-file", dovecot.ca_file])
    assert result.exit_code == 2 and "--password-file" in result.stderr
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    result = CliRunner().invoke(app, base)  # the test CA is not in the system store
    assert result.exit_code == 1 and "--ca-file" in result.stderr
    dovecot.append([not_a_report()])  # left in place without --rejected-folder: exit 1
    result = CliRunner().invoke(app, [*base, "--ca-file", dovecot.ca_file])
    assert result.exit_code == 1 and "left unseen in INBOX" in result.stderr, result.stderr
    assert "--rejected-folder" in result.stderr
    monkeypatch.setenv(PASSWORD_ENV, "wrong")  # last: Dovecot slows logins after a failure
    result = CliRunner().invoke(app, [*base, "--ca-file", dovecot.ca_file])
    assert result.exit_code == 1 and "login" in result.stderr


def test_same_report_id_from_two_organisations_and_two_domains(
    tmp_path: Path, dovecot: Dovecot
) -> None:
    """Issue 10 §3 through IMAP: deduplication is per (domain, organisation, report-id), so
    one report-id used by another organisation, or first mailed for another domain, never
    suppresses a report."""
    from tests.reports.test_scope import GOOGLE, OTHER, VICTIM, mail, report

    microsoft = "Microsoft Corporation"
    messages = [
        crlf(mail(report(OTHER))),  # the same report-id, about another domain, first
        crlf(mail(report(VICTIM, ok=42))),
        crlf(mail(report(VICTIM, org=microsoft))),
    ]
    dovecot.append(messages)
    engine, ingestor = store(tmp_path)
    summary = run(dovecot, ingestor)
    assert (summary.stored, summary.duplicate, summary.rejected) == (3, 0, 0)
    with engine.connect() as c:
        rows = c.execute(select(TlsReport.domain, TlsReport.organization)).all()
    assert sorted(rows) == sorted([(OTHER, GOOGLE), (VICTIM, GOOGLE), (VICTIM, microsoft)])

    dovecot.append(messages)  # each mailed again: now every one is a duplicate
    again = run(dovecot, ingestor)
    assert (again.stored, again.duplicate) == (0, 3)
    assert row_count(engine) == 3
