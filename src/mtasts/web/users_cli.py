"""`mtasts users ...`: dashboard users. Registered in the main command with
``app.add_typer(users_app, name="users")``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from mtasts.i18n import _
from mtasts.i18n.commands import Command, Group

users_app = typer.Typer(
    cls=Group, help=_("Dashboard users (sign-in with e-mail and password)."), no_args_is_help=True
)


def _read_password(path: Path) -> str:
    """The first line of ``path`` without its line ending (``-``: standard input)."""
    text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    lines = text.splitlines()
    return lines[0] if lines else ""


@users_app.command(
    "set-password",
    cls=Command,
    help=_("Set the dashboard password of a user; every session of that user ends."),
)
def set_password(
    email: Annotated[str, typer.Option(help=_("The user's e-mail (created if new)."))],
    password_file: Annotated[
        Path | None,
        typer.Option(
            "--password-file",
            help=_(
                "Read the password from the first line of this file ('-': standard input) "
                "instead of prompting."
            ),
        ),
    ] = None,
    admin: Annotated[bool, typer.Option("--admin", help=_("Give the user admin rights."))] = False,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", help=_("TOML settings file (default: $MTASTS_CONFIG)."), exists=True
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
        str | None, typer.Option("--database-url", help=_("SQLAlchemy URL (default: SQLite)."))
    ] = None,
) -> None:
    """Set the dashboard password of a user; every session of that user ends."""
    from rich.console import Console
    from rich.markup import escape

    from mtasts.config import ConfigError, load_settings, store_notice
    from mtasts.hosting.tenants import ServiceError
    from mtasts.web.dashboard.auth import set_password as store_password
    from mtasts.web.serve import open_service

    err = Console(stderr=True, highlight=False)
    if password_file is not None:
        try:
            password = _read_password(password_file)
        except OSError as exc:
            unreadable = _("Cannot read {path}:").format(path=password_file)
            err.print(f"[red]{escape(unreadable)}[/] {escape(str(exc))}")
            raise typer.Exit(2) from exc
    else:
        password = typer.prompt(_("Password"), hide_input=True, confirmation_prompt=True)
    try:
        settings = load_settings(config, None, data_dir=data_dir, database_url=database_url)
    except ConfigError as exc:
        print(_("mtasts: error: configuration: {error}").format(error=exc), file=sys.stderr)
        raise typer.Exit(2) from exc
    notice = store_notice(settings, expected=True)
    if notice:
        warning = _("warning:")
        err.print(f"[yellow]{escape(warning)}[/] {escape(notice)}", markup=True, soft_wrap=True)
    service = open_service(settings)
    try:
        created = store_password(service, email, password, admin=admin)
    except ServiceError as exc:
        err.print(f"[red]{escape(exc.message)}")
        raise typer.Exit(2) from exc
    finally:
        service.close()
    who = email.strip().lower()
    done = _("Created user {email}.") if created else _("Password set for {email}.")
    err.print(escape(done.format(email=who)))
