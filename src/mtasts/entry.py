"""The `mtasts` console script. `mtasts policyd ...` goes straight to the sending side's
command line, without importing the rest of the CLI (hosting, reports, dashboard): the
daemon runs next to every Postfix and should stay small. Everything else is `mtasts.cli`."""

from __future__ import annotations

import sys


def main() -> None:
    argv = sys.argv[1:]
    if argv[:1] == ["policyd"]:
        from mtasts.sender.cli import policyd_app

        policyd_app(args=argv[1:], prog_name="mtasts policyd")
        return
    from mtasts.cli import main as cli_main

    cli_main()
