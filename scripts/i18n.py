"""`make i18n`: extract the messages of src/mtasts into the template and merge them into
every catalogue (new messages arrive untranslated; tests/test_i18n.py fails until they are
translated). Catalogues are read at run time (mtasts.i18n): there is nothing to compile."""

from __future__ import annotations

from pathlib import Path

from babel.messages.frontend import CommandLineInterface

ROOT = Path(__file__).resolve().parent.parent
LOCALE = ROOT / "src" / "mtasts" / "i18n" / "locale"
TEMPLATE = LOCALE / "mtasts.pot"
KEYWORDS = ["-k", "_", "-k", "N_", "-k", "ngettext:1,2", "-k", "Text"]


def main() -> None:
    CommandLineInterface().run(
        [
            "pybabel",
            "extract",
            *KEYWORDS,
            "--mapping-file",
            str(ROOT / "babel.cfg"),
            "--no-location",
            "--sort-output",
            "--project",
            "mtasts",
            "--copyright-holder",
            "mtasts contributors",
            "--width",
            "100",
            "-o",
            str(TEMPLATE),
            str(ROOT / "src" / "mtasts"),
        ]
    )
    CommandLineInterface().run(
        [
            "pybabel",
            "update",
            "--domain",
            "mtasts",
            "--input-file",
            str(TEMPLATE),
            "--output-dir",
            str(LOCALE),
            "--no-fuzzy-matching",
            "--ignore-obsolete",
            "--width",
            "100",
        ]
    )


if __name__ == "__main__":
    main()
