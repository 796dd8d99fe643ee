"""The `mtasts` console script. `mtasts policyd ...` goes straight to the sending side's
command line, without importing the rest of the CLI (hosting, reports, dashboard): the
daemon runs next to every Postfix and should stay small. Everything else is `mtasts.cli`."""

from __future__ import annotations

import sys


def main() -> None:
    argv = sys.argv[1:]
    if argv[:1] == ["policyd"]:
        from mtasts.sender.cli import main as policyd_main

        sys.exit(policyd_main(argv[1:]))
    from mtasts import i18n

    # Help texts are set when the CLI is imported: pick the language before that.
    i18n.set_language(i18n.from_cli(_lang_argument(argv)))
    from mtasts.cli import main as cli_main

    cli_main()


def _lang_argument(argv: list[str]) -> str | None:
    """The value of ``--lang X`` / ``--lang=X`` anywhere on the command line (Typer still
    parses and checks it; this only decides the language of the help texts)."""
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg == "--lang" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--lang="):
            return arg.removeprefix("--lang=")
    return None
