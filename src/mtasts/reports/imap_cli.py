"""`mtasts reports fetch-imap`: take the TLS reports out of an existing mailbox.

Registered in mtasts/cli.py on the `reports` sub-app. The options that open the store are
declared here rather than imported from mtasts.cli, which imports this module.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mtasts.i18n import _

if TYPE_CHECKING:
    from rich.console import Console

    from mtasts.reports.imap import Security

PASSWORD_ENV = "MTASTS_IMAP_PASSWORD"  # noqa: S105 - the variable's name, not a password


class SecurityChoice(StrEnum):
    ssl = "ssl"
    starttls = "starttls"
    plain = "plain"


SECURITY: dict[SecurityChoice, Security] = {
    SecurityChoice.ssl: "ssl",
    SecurityChoice.starttls: "starttls",
    SecurityChoice.plain: "plain",
}


def _read_password(password_file: Path | None, err: Console) -> str:
    from rich.markup import escape

    if password_file is not None:
        try:
            text = password_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            err.print(f"[red]cannot read the password file {escape(str(password_file))}:[/] {exc}")
            raise typer.Exit(2) from exc
        password = text.rstrip("\r\n")  # the file's final newline is not part of it
    else:
        password = os.environ.get(PASSWORD_ENV, "")
    if not password:
        err.print(
            f"[red]no IMAP password:[/] give --password-file FILE or set ${PASSWORD_ENV} "
            "(never on the command line, where other users can read it)"
        )
        raise typer.Exit(2)
    return password


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def fetch_imap_command(
    host: Annotated[str, typer.Option("--host", help="The IMAP server, e.g. imap.example.com.")],
    user: Annotated[str, typer.Option("--user", help="The mailbox's login name.")],
    password_file: Annotated[
        Path | None,
        typer.Option(
            "--password-file",
            help=f"File holding the password (default: ${PASSWORD_ENV}).",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option("--port", min=1, max=65535, help="Default: 993 for ssl, 143 otherwise."),
    ] = None,
    security: Annotated[
        SecurityChoice,
        typer.Option(
            "--security",
            help="ssl: IMAPS (implicit TLS); starttls: IMAP then STARTTLS; plain: no TLS.",
        ),
    ] = SecurityChoice.ssl,
    ca_file: Annotated[
        Path | None,
        typer.Option(
            "--ca-file",
            help="PEM file of trusted CAs instead of the system store (private CA).",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    folder: Annotated[str, typer.Option("--folder", help="Folder to read.")] = "INBOX",
    processed_folder: Annotated[
        str,
        typer.Option("--processed-folder", help="Where taken messages go (created if missing)."),
    ] = "TLSRPT-processed",
    rejected_folder: Annotated[
        str | None,
        typer.Option(
            "--rejected-folder",
            help="Where messages without a usable report go (default: left unseen in place).",
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.1, help="Seconds to wait for the server.")
    ] = 30.0,
    batch: Annotated[
        int, typer.Option("--batch", min=1, max=10_000, help="Messages per round of FETCH.")
    ] = 50,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="TOML settings file (default: $MTASTS_CONFIG; see README).",
            exists=True,
        ),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="Where the SQLite store lives (default: $MTASTS_DATA_DIR, the config file, "
            "else ~/.local/share/mtasts).",
        ),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="SQLAlchemy URL, e.g. postgresql://user@127.0.0.1/mtasts (default: SQLite).",
        ),
    ] = None,
) -> None:
    """Fetch TLS reports from an IMAP mailbox (the rua=mailto: address) into the store.

    Each message is read without marking it seen; once its reports are stored it is marked
    seen and moved to --processed-folder, so running this again (e.g. from cron) takes only
    new mail. Exit status: 0 when nothing was left behind, 1 when the store was unavailable,
    the server failed or messages without a usable report stayed in the folder, 2 on usage
    errors.
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from mtasts.config import ConfigError, load_settings, store_notice
    from mtasts.reports.imap import ImapError, default_port, fetch_imap
    from mtasts.reports.ingest import ReportIngestor
    from mtasts.store.db import make_engine, migrate, session_factory

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    password = _read_password(password_file, err)
    try:
        settings = load_settings(config, None, data_dir=data_dir, database_url=database_url)
    except ConfigError as exc:
        print(_("mtasts: error: configuration: {error}").format(error=exc), file=sys.stderr)
        raise typer.Exit(2) from exc
    if folder in (processed_folder, rejected_folder):
        err.print("[red]--processed-folder and --rejected-folder must differ from --folder")
        raise typer.Exit(2)
    sec = SECURITY[security]
    if sec == "plain" and not _is_loopback(host):
        err.print(f"[yellow]warning:[/] --security plain sends the password to {host} unencrypted")
    notice = store_notice(settings, expected=True)
    if notice:
        err.print(f"[yellow]warning:[/] {escape(notice)}")
    url = settings.effective_database_url
    try:
        engine = make_engine(url)
        migrate(engine)
    except Exception as exc:  # any driver or migration error: say which store, then stop
        err.print(f"[red]Cannot open the store {escape(url)}:[/] {exc}")
        raise typer.Exit(1) from exc
    ingestor = ReportIngestor(session_factory(engine))
    bar = Progress(
        TextColumn(f"{escape(host)} {escape(folder)}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )
    task = bar.add_task("fetch", total=None)
    try:
        with bar:
            summary = fetch_imap(
                ingestor,
                host=host,
                port=port or default_port(sec),
                username=user,
                password=password,
                folder=folder,
                processed_folder=processed_folder,
                rejected_folder=rejected_folder,
                security=sec,
                ca_file=str(ca_file) if ca_file else None,
                timeout=timeout,
                batch=batch,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    except ImapError as exc:
        if exc.summary is not None:
            err.print(f"partly done: {exc.summary.line()}")
        err.print(f"[red]IMAP error:[/] {escape(exc.message)}")
        raise typer.Exit(1) from exc
    finally:
        engine.dispose()
    for r in summary.rejected_messages:
        where = f"moved to {r.moved_to}" if r.moved_to else f"left unseen in {folder}"
        err.print(f"[yellow]rejected[/] UID {r.uid} ({escape(where)}): {escape(r.reason)}")
    if summary.store_error:
        err.print(
            f"[red]store unavailable:[/] {escape(summary.store_error)}; "
            f"{summary.left} message(s) left in {escape(folder)} for the next run"
        )
    elif summary.left_behind:
        err.print(
            f"{summary.left_behind} message(s) without a usable report stay in "
            f"{escape(folder)}; --rejected-folder moves them aside"
        )
    err.print(summary.line())
    raise typer.Exit(0 if summary.ok else 1)
