"""The IMAP route: TLS reports fetched from an existing mailbox (`mtasts reports fetch-imap`).

For owners whose ``rua=mailto:`` (RFC 8460 §3) is a mailbox they already have. A message is
read with ``BODY.PEEK[]`` (so it stays unseen until its reports are stored), ingested, and
only then moved out of the folder: a crash or a database outage at any point leaves every
message that is not safely stored where it was, and the next run takes it (a report stored
twice is recognised as a duplicate, RFC 8460 §4.4).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal, get_args

from imapclient import DELETED, SEEN, IMAPClient  # type: ignore[import-untyped]
from imapclient.exceptions import (  # type: ignore[import-untyped]
    IMAPClientAbortError,
    IMAPClientError,
    LoginError,
)

from mtasts.i18n import say
from mtasts.protocol.errors import Text
from mtasts.reports.ingest import Outcome, ReportIngestor, Route, Status, StoreUnavailable

Security = Literal["ssl", "starttls", "plain"]
SECURITY_VALUES: tuple[str, ...] = get_args(Security)

# Bodies fetched in one FETCH command: few round trips, bounded memory.
FETCH_BYTES = 32 * 1024 * 1024


def default_port(security: Security) -> int:
    """993 for IMAPS (RFC 8314 implicit TLS), 143 for IMAP (with or without STARTTLS)."""
    return 993 if security == "ssl" else 143


@dataclass(frozen=True)
class RejectedMessage:
    """A message without a usable report: left in place (unseen) or moved aside."""

    uid: int
    reason: str
    moved_to: str | None = None  # the rejected folder, or None when left in place


@dataclass
class FetchSummary:
    """What one run did. ``seen`` messages were found in the folder; each was processed
    (its reports stored or already known, moved to the processed folder), rejected, or
    ``left`` in place because the store was unavailable."""

    folder: str
    processed_folder: str
    seen: int = 0
    stored: int = 0  # reports stored by this run
    duplicate: int = 0  # reports the store already had
    processed: int = 0  # messages moved to the processed folder
    rejected: int = 0  # messages without a usable report
    left: int = 0  # messages not taken because the store was unavailable
    rejected_messages: list[RejectedMessage] = field(default_factory=list)
    store_error: str | None = None

    @property
    def left_behind(self) -> int:
        """Messages still in the folder that need attention: not taken (store down) or
        rejected without a rejected folder to move them to."""
        return self.left + sum(1 for r in self.rejected_messages if r.moved_to is None)

    @property
    def ok(self) -> bool:
        return self.store_error is None and self.left_behind == 0

    def line(self) -> str:
        """One line for people and logs."""
        parts = [
            f"{self.seen} message(s) in {self.folder}",
            f"{self.stored} report(s) stored",
            f"{self.duplicate} already known",
            f"{self.processed} moved to {self.processed_folder}",
            f"{self.rejected} rejected",
        ]
        if self.left:
            parts.append(f"{self.left} left in {self.folder} (store unavailable)")
        return ", ".join(parts)


class ImapError(Exception):
    """The mailbox could not be read: a plain message saying what to do. ``summary`` tells
    what was done before the failure (None when nothing was)."""

    def __init__(self, message: str, summary: FetchSummary | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.summary = summary


def fetch_imap(
    ingestor: ReportIngestor,
    *,
    host: str,
    port: int | None = None,
    username: str,
    password: str,
    folder: str = "INBOX",
    processed_folder: str = "TLSRPT-processed",
    rejected_folder: str | None = None,
    security: Security = "ssl",
    ca_file: str | None = None,
    timeout: float = 30,
    batch: int = 50,
    progress: Callable[[int, int], None] | None = None,
) -> FetchSummary:
    """Take every TLS report in ``folder`` of an IMAP mailbox into the store.

    Messages whose reports are all stored (or already known) are marked seen and moved to
    ``processed_folder`` (created when missing). Messages without a usable report are moved
    to ``rejected_folder`` when given, else left unseen in place; both are listed in the
    summary. When the store is unavailable the run stops at once and that message and all
    after it stay where they are (``summary.left``, ``summary.store_error``).
    ``progress(done, total)`` is called as messages are handled. Raises ImapError when the
    server cannot be reached, refuses the login or the folder, or fails mid-run.
    """
    if security not in SECURITY_VALUES:
        raise ValueError(f"security must be one of {', '.join(SECURITY_VALUES)}")
    if batch < 1:
        raise ValueError("batch must be at least 1")
    if folder in (processed_folder, rejected_folder):
        raise ValueError("the processed and rejected folders must differ from the folder read")
    port = port or default_port(security)
    where = f"{host}:{port}"
    summary = FetchSummary(folder=folder, processed_folder=processed_folder)
    client = _connect(host, port, security, ca_file, timeout)
    try:
        try:
            client.login(username, password)
        except LoginError as exc:
            raise ImapError(
                f"login to {where} as {username!r} failed: {_server_text(exc)} "
                "(check the user name and the password)"
            ) from exc
        _run(
            client,
            ingestor,
            summary,
            where,
            (folder, processed_folder, rejected_folder),
            batch,
            progress,
        )
        return summary
    except ImapError as exc:
        if exc.summary is None and summary.seen:
            exc.summary = summary
        raise
    except (IMAPClientError, OSError) as exc:
        raise ImapError(_describe(exc, where), summary if summary.seen else None) from exc
    finally:
        _close(client)


def _run(
    client: IMAPClient,
    ingestor: ReportIngestor,
    summary: FetchSummary,
    where: str,
    folders: tuple[str, str, str | None],
    batch: int,
    progress: Callable[[int, int], None] | None,
) -> None:
    folder, processed_folder, rejected_folder = folders
    if not client.folder_exists(folder):
        names = ", ".join(sorted(str(f[2]) for f in client.list_folders())) or "none"
        raise ImapError(f"folder {folder!r} does not exist on {where} (folders: {names})")
    for name in (processed_folder, rejected_folder):
        if name is not None:
            _ensure_folder(client, name, where)
    client.select_folder(folder)
    # A message flagged \Deleted was already copied on by an interrupted run.
    uids = sorted(int(u) for u in client.search(["NOT", "DELETED"]))
    summary.seen = total = len(uids)
    if progress:
        progress(0, total)
    max_bytes = ingestor.limits.max_message_bytes
    done = 0
    for start in range(0, total, batch):
        chunk = uids[start : start + batch]
        sizes = {
            int(uid): int(data.get(b"RFC822.SIZE", 0))
            for uid, data in client.fetch(chunk, ["RFC822.SIZE"]).items()
        }
        vanished = len(chunk) - len(sizes)  # expunged meanwhile by another client
        summary.seen -= vanished
        total -= vanished
        accepted: list[int] = []
        rejected: list[tuple[int, str]] = []
        try:
            for uid, raw in _bodies(client, chunk, sizes, max_bytes):
                outcomes = _ingest(ingestor, raw, sizes[uid], max_bytes)
                for o in outcomes:
                    if o.status is Status.STORED:
                        summary.stored += 1
                    elif o.status is Status.DUPLICATE:
                        summary.duplicate += 1
                if all(o.accepted for o in outcomes):
                    accepted.append(uid)
                else:
                    reason = "; ".join(
                        f"{o.code}: {say(o.reason)}" for o in outcomes if not o.accepted
                    )
                    rejected.append((uid, reason))
                done += 1
                if progress:
                    progress(done, total)
        except StoreUnavailable as exc:
            # Nothing of this message was stored: it and all after it stay in place.
            summary.store_error = str(exc)
            summary.left = total - done
            _settle(client, summary, accepted, rejected, processed_folder, rejected_folder)
            return
        gone = len(sizes) - len(accepted) - len(rejected)  # expunged between the FETCHes
        summary.seen -= gone
        total -= gone
        _settle(client, summary, accepted, rejected, processed_folder, rejected_folder)


def _ingest(
    ingestor: ReportIngestor, raw: bytes | None, size: int, max_bytes: int
) -> list[Outcome]:
    if raw is None:
        return [
            Outcome(
                Status.REJECTED,
                code="message-too-large",
                reason=Text(
                    "the message ({size} bytes) exceeds the limit of {limit} bytes",
                    size=size,
                    limit=max_bytes,
                ),
            )
        ]
    return ingestor.ingest_message(raw, route=Route.IMAP)


def _bodies(
    client: IMAPClient, chunk: list[int], sizes: dict[int, int], max_bytes: int
) -> Iterator[tuple[int, bytes | None]]:
    """(uid, message) in ``chunk`` order; None for a message over ``max_bytes`` (never
    downloaded). BODY.PEEK leaves \\Seen alone. Groups of up to FETCH_BYTES per FETCH."""
    group: list[int] = []
    group_bytes = 0

    def flush() -> Iterator[tuple[int, bytes | None]]:
        if not group:
            return
        data = client.fetch(group, ["BODY.PEEK[]"])
        for uid in group:
            body = data.get(uid, {}).get(b"BODY[]")
            if body is not None:
                yield uid, bytes(body)

    for uid in chunk:
        size = sizes.get(uid)
        if size is None:
            continue
        if size > max_bytes:
            yield from flush()
            group, group_bytes = [], 0
            yield uid, None
            continue
        if group and group_bytes + size > FETCH_BYTES:
            yield from flush()
            group, group_bytes = [], 0
        group.append(uid)
        group_bytes += size
    yield from flush()


def _settle(
    client: IMAPClient,
    summary: FetchSummary,
    accepted: list[int],
    rejected: list[tuple[int, str]],
    processed_folder: str,
    rejected_folder: str | None,
) -> None:
    """Move what was decided: accepted messages (now safely stored) to the processed
    folder, marked seen; rejected ones to the rejected folder, unseen, when there is one."""
    if accepted:
        client.add_flags(accepted, [SEEN], silent=True)
        _move(client, accepted, processed_folder)
        summary.processed += len(accepted)
    if rejected and rejected_folder is not None:
        _move(client, [uid for uid, _ in rejected], rejected_folder)
    summary.rejected += len(rejected)
    summary.rejected_messages.extend(
        RejectedMessage(uid, reason, rejected_folder) for uid, reason in rejected
    )


def _move(client: IMAPClient, uids: list[int], folder: str) -> None:
    # RFC 6851 MOVE is atomic; without it COPY, then \Deleted and an expunge of just these
    # messages (RFC 4315 UID EXPUNGE), or as a last resort a plain EXPUNGE (RFC 3501).
    if client.has_capability("MOVE"):
        client.move(uids, folder)
        return
    client.copy(uids, folder)
    client.add_flags(uids, [DELETED], silent=True)
    if client.has_capability("UIDPLUS"):
        client.uid_expunge(uids)
    else:
        client.expunge()


def _ensure_folder(client: IMAPClient, name: str, where: str) -> None:
    if client.folder_exists(name):
        return
    try:
        client.create_folder(name)
    except IMAPClientError as exc:
        raise ImapError(f"cannot create folder {name!r} on {where}: {_server_text(exc)}") from exc
    with contextlib.suppress(IMAPClientError):  # mail clients show subscribed folders
        client.subscribe_folder(name)


def _context(ca_file: str | None) -> ssl.SSLContext:
    # The system store, or the given CAs instead (a private CA, a test server).
    return ssl.create_default_context(cafile=ca_file)


def _connect(
    host: str, port: int, security: Security, ca_file: str | None, timeout: float
) -> IMAPClient:
    where = f"{host}:{port}"
    try:
        context = _context(ca_file) if security != "plain" else None
    except (OSError, ssl.SSLError) as exc:
        raise ImapError(f"cannot read the CA file {ca_file}: {exc}") from exc
    client: IMAPClient | None = None
    try:
        client = IMAPClient(
            host, port=port, ssl=security == "ssl", ssl_context=context, timeout=timeout
        )
        if security == "starttls":
            if not client.has_capability("STARTTLS"):
                raise ImapError(
                    f"{where} does not offer STARTTLS; use --security ssl (port 993) if it "
                    "speaks IMAPS"
                )
            client.starttls(context)
        return client
    except ImapError:
        _close(client)
        raise
    except (IMAPClientError, OSError) as exc:
        _close(client)
        raise ImapError(_describe(exc, where, security)) from exc


def _close(client: IMAPClient | None) -> None:
    if client is None:
        return
    try:
        client.logout()
    except (IMAPClientError, OSError):
        # Closing after an error (or a server that hung up): only the socket matters.
        with contextlib.suppress(OSError):
            client.shutdown()


def _server_text(exc: BaseException) -> str:
    text = str(exc)
    if text.startswith(("b'", 'b"')) and text.endswith(text[1]):
        text = text[2:-1]
    return text


def _describe(exc: BaseException, where: str, security: Security | None = None) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        detail = exc.verify_message or str(exc)
        if exc.verify_code == 62:  # X509_V_ERR_HOSTNAME_MISMATCH
            return (
                f"the TLS certificate of {where} does not name that host ({detail}); "
                "connect with the name the certificate carries"
            )
        return (
            f"the TLS certificate of {where} is not trusted ({detail}); if the server uses "
            "a private or self-signed CA, give its certificate with --ca-file PEM"
        )
    if isinstance(exc, ssl.SSLError):
        hint = ""
        if security == "ssl":
            hint = "; is this the IMAPS port (993)? For port 143 use --security starttls"
        return f"TLS with {where} failed: {exc.reason or exc}{hint}"
    if isinstance(exc, TimeoutError):
        return f"{where} did not answer in time (timed out)"
    if isinstance(exc, ConnectionRefusedError):
        return f"connection to {where} refused: is the IMAP server running on that port?"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host of {where}: {exc.strerror or exc}"
    if isinstance(exc, IMAPClientAbortError):
        return f"the connection to {where} broke: {_server_text(exc) or 'no reason given'}"
    if isinstance(exc, IMAPClientError):
        return f"{where} answered with an error: {_server_text(exc)}"
    if isinstance(exc, OSError):
        return f"cannot talk to {where}: {exc.strerror or exc}"
    return f"{where}: {exc}"
