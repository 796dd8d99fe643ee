"""The file route: reports saved as .json / .json.gz, e-mails as .eml, mbox files and
Maildir folders (`mtasts reports import`)."""

from __future__ import annotations

import functools
import mailbox
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mtasts.i18n import _, say
from mtasts.reports.ingest import Outcome, Pending, ReportIngestor, Route, Status

MAX_FILE = 64 * 1024 * 1024  # a file larger than this is not read (limits apply after)
BATCH = 200  # reports per transaction when importing


@dataclass
class ImportSummary:
    stored: int = 0
    duplicate: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (where, reason)

    def add(self, where: str, outcomes: list[Outcome]) -> None:
        for o in outcomes:
            if o.status is Status.STORED:
                self.stored += 1
            elif o.status is Status.DUPLICATE:
                self.duplicate += 1
            else:
                self.rejected.append((where, f"{o.code}: {say(o.reason)}"))


@dataclass(frozen=True)
class Item:
    """One thing to import: a report payload or an e-mail."""

    where: str
    kind: str  # "payload" or "message"
    read: Callable[[], bytes]


def _is_maildir(path: Path) -> bool:
    return all((path / sub).is_dir() for sub in ("cur", "new", "tmp"))


def _is_mbox(path: Path) -> bool:
    if path.suffix.lower() == ".mbox":
        return True
    with path.open("rb") as f:
        return f.read(5) == b"From "


def _file_item(path: Path) -> Item:
    name = path.name.lower()
    kind = "message" if name.endswith((".eml", ".msg")) else "payload"
    if kind == "payload" and not name.endswith((".json", ".gz", ".json.gz")):
        with path.open("rb") as f:  # no telling suffix: e-mail headers or a report?
            head = f.read(512).lstrip()
        if head[:1] not in (b"{", b"\x1f"):
            kind = "message"

    def read() -> bytes:
        if path.stat().st_size > MAX_FILE:
            raise ValueError(_("larger than {limit} bytes").format(limit=MAX_FILE))
        return path.read_bytes()

    return Item(str(path), kind, read)


def _mailbox_items(box: mailbox.Mailbox[mailbox.Message], where: str) -> Iterator[Item]:
    for key in box.keys():  # noqa: SIM118 - iterating a Mailbox yields messages
        yield Item(f"{where}#{key}", "message", functools.partial(box.get_bytes, key))


def discover(paths: list[Path]) -> list[Item]:
    """Everything under ``paths``, in a stable order; FileNotFoundError for a missing path."""
    items: list[Item] = []
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(_("{path}: no such file or directory").format(path=path))
        if path.is_dir():
            items += _walk(path)
        elif _is_mbox(path):
            items += _mailbox_items(mailbox.mbox(path, create=False), str(path))
        else:
            items.append(_file_item(path))
    return items


def _walk(directory: Path) -> list[Item]:
    if _is_maildir(directory):
        return list(_mailbox_items(mailbox.Maildir(directory, create=False), str(directory)))
    items: list[Item] = []
    for child in sorted(directory.iterdir()):
        if child.is_dir():
            items += _walk(child)
        elif child.is_file():
            items += (
                _mailbox_items(mailbox.mbox(child, create=False), str(child))
                if _is_mbox(child)
                else [_file_item(child)]
            )
    return items


def import_items(
    ingestor: ReportIngestor,
    items: list[Item],
    progress: Callable[[Item], None] | None = None,
    batch: int = BATCH,
) -> ImportSummary:
    """Ingest ``items``, ``batch`` reports per transaction; re-importing is idempotent
    (duplicates are recognised). StoreUnavailable propagates: the batch that failed and
    everything after it were not imported."""
    summary = ImportSummary()
    pending: list[tuple[str, Pending]] = []

    def flush() -> None:
        outcomes = ingestor.store_many([p for _where, p in pending])
        for (where, _pending), outcome in zip(pending, outcomes, strict=True):
            summary.add(where, [outcome])
        pending.clear()

    for item in items:
        try:
            data = item.read()
        except (OSError, ValueError) as exc:
            summary.rejected.append((item.where, _("unreadable: {error}").format(error=exc)))
        else:
            ready = (
                ingestor.prepare_message(data, route=Route.FILE)
                if item.kind == "message"
                else [ingestor.prepare_payload(data, route=Route.FILE)]
            )
            for r in ready:
                if isinstance(r, Outcome):
                    summary.add(item.where, [r])
                else:
                    pending.append((item.where, r))
            if len(pending) >= batch:
                flush()
        if progress is not None:
            progress(item)
    flush()
    return summary
