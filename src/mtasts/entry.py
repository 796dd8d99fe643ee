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
    i18n.set_language(i18n.from_cli(i18n.lang_argument(argv)))
    i18n.speak_for_libraries()
    from mtasts.cli import main as cli_main

    cli_main()
