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

from mtasts.i18n import N_, _

if TYPE_CHECKING:
    from rich.console import Console

    from mtasts.reports.imap import Security

PASSWORD_ENV = "MTASTS_IMAP_PASSWORD"  # noqa: S105 - the variable's name, not a password
# The command's help (its docstring, in the chosen language: mtasts/cli.py registers it).
HELP = N_(
    "Fetch TLS reports from an IMAP mailbox (the rua=mailto: address) into the store.\n"
    "\n"
    "Each message is read without marking it seen; once its reports are stored it is marked\n"
    "seen and moved to --processed-folder, so running this again (e.g. from cron) takes only\n"
    "new mail. Exit status: 0 when nothing was left behind, 1 when the store was unavailable,\n"
    "the server failed or messages without a usable report stayed in the folder, 2 on usage\n"
    "errors."
)


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
            cannot = _("cannot read the password file {path}:").format(path=password_file)
            err.print(f"[red]{escape(cannot)}[/] {escape(str(exc))}")
            raise typer.Exit(2) from exc
        password = text.rstrip("\r\n")  # the file's final newline is not part of it
    else:
        password = os.environ.get(PASSWORD_ENV, "")
    if not password:
        what = _("no IMAP password:")
        how = _(
            "give --password-file FILE or set ${env} (never on the command line, where other "
            "users can read it)"
        ).format(env=PASSWORD_ENV)
        err.print(f"[red]{escape(what)}[/] {escape(how)}")
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
    host: Annotated[str, typer.Option("--host", help=_("The IMAP server, e.g. imap.example.com."))],
    user: Annotated[str, typer.Option("--user", help=_("The mailbox's login name."))],
    password_file: Annotated[
        Path | None,
        typer.Option(
            "--password-file",
            help=_("File holding the password (default: ${env}).").format(env=PASSWORD_ENV),
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option("--port", min=1, max=65535, help=_("Default: 993 for ssl, 143 otherwise.")),
    ] = None,
    security: Annotated[
        SecurityChoice,
        typer.Option(
            "--security",
            help=_("ssl: IMAPS (implicit TLS); starttls: IMAP then STARTTLS; plain: no TLS."),
        ),
    ] = SecurityChoice.ssl,
    ca_file: Annotated[
        Path | None,
        typer.Option(
            "--ca-file",
            help=_("PEM file of trusted CAs instead of the system store (private CA)."),
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    folder: Annotated[str, typer.Option("--folder", help=_("Folder to read."))] = "INBOX",
    processed_folder: Annotated[
        str,
        typer.Option("--processed-folder", help=_("Where taken messages go (created if missing).")),
    ] = "TLSRPT-processed",
    rejected_folder: Annotated[
        str | None,
        typer.Option(
            "--rejected-folder",
            help=_("Where messages without a usable report go (default: left unseen in place)."),
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.1, help=_("Seconds to wait for the server."))
    ] = 30.0,
    batch: Annotated[
        int, typer.Option("--batch", min=1, max=10_000, help=_("Messages per round of FETCH."))
    ] = 50,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help=_("TOML settings file (default: $MTASTS_CONFIG; see README)."),
            exists=True,
        ),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help=_(
                "Where the SQLite store lives (default: $MTASTS_DATA_DIR, the config file, "
                "else ~/.local/share/mtasts)."
            ),
        ),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help=_("SQLAlchemy URL, e.g. postgresql://user@127.0.0.1/mtasts (default: SQLite)."),
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
        differ = _("--processed-folder and --rejected-folder must differ from --folder")
        err.print(f"[red]{escape(differ)}")
        raise typer.Exit(2)
    sec = SECURITY[security]
    if sec == "plain" and not _is_loopback(host):
        plain = _("--security plain sends the password to {host} unencrypted").format(host=host)
        warning = escape(_("warning:"))
        err.print(f"[yellow]{warning}[/] {escape(plain)}")
    notice = store_notice(settings, expected=True)
    if notice:
        warning = escape(_("warning:"))
        err.print(f"[yellow]{warning}[/] {escape(notice)}")
    url = settings.effective_database_url
    try:
        engine = make_engine(url)
        migrate(engine)
    except Exception as exc:  # any driver or migration error: say which store, then stop
        cannot = _("Cannot open the store {url}:").format(url=url)
        err.print(f"[red]{escape(cannot)}[/] {exc}")
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
            err.print(_("partly done: {summary}").format(summary=exc.summary.line()))
        imap_error = escape(_("IMAP error:"))
        err.print(f"[red]{imap_error}[/] {escape(exc.message)}")
        raise typer.Exit(1) from exc
    finally:
        engine.dispose()
    for r in summary.rejected_messages:
        where = (
            _("moved to {folder}").format(folder=r.moved_to)
            if r.moved_to
            else _("left unseen in {folder}").format(folder=folder)
        )
        rejected = escape(_("rejected"))
        err.print(f"[yellow]{rejected}[/] UID {r.uid} ({escape(where)}): {escape(r.reason)}")
    if summary.store_error:
        unavailable = _("store unavailable:")
        left = _("{error}; {n} message(s) left in {folder} for the next run").format(
            error=summary.store_error, n=summary.left, folder=folder
        )
        err.print(f"[red]{escape(unavailable)}[/] {escape(left)}")
    elif summary.left_behind:
        stay = _(
            "{n} message(s) without a usable report stay in {folder}; --rejected-folder "
            "moves them aside"
        ).format(n=summary.left_behind, folder=folder)
        err.print(escape(stay))
    err.print(summary.line())
    raise typer.Exit(0 if summary.ok else 1)
