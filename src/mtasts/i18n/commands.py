"""The words the command line's framework says itself (Typer, with Click inside), in the
chosen language: the help option's text and the "Usage:" prefix through the command classes
below (every mtasts command and group uses them), the headings and notes of the help page
("Options", "default: …") through the standard library's gettext, which Click calls
(:func:`mtasts.i18n.speak_for_libraries`). Their English is Click's own, unchanged."""

from __future__ import annotations

from typer.core import TyperCommand, TyperGroup

from mtasts.i18n import N_, _

# Said by Click through gettext (typer/core.py); listed here so that `make i18n` keeps them.
CLICK_WORDS = (
    N_("Options"),
    N_("Arguments"),
    N_("Commands"),
    N_("default: {default}"),
    N_("required"),
    N_("env var: {var}"),
    N_("Missing command."),
    N_("No such command {name!r}."),
    N_("Aborted!"),
)
HELP_OPTION = N_("Show this message and exit.")
USAGE = N_("Usage: ")


class _Words:
    def get_help_option(self, ctx):  # type: ignore[no-untyped-def]
        option = super().get_help_option(ctx)  # type: ignore[misc]
        if option is not None:
            option.help = _(HELP_OPTION)
        return option

    def format_usage(self, ctx, formatter) -> None:  # type: ignore[no-untyped-def]
        pieces = self.collect_usage_pieces(ctx)  # type: ignore[attr-defined]
        formatter.write_usage(ctx.command_path, " ".join(pieces), prefix=_(USAGE))


class Command(_Words, TyperCommand):
    """A Typer command whose help option and usage line speak the chosen language."""


class Group(_Words, TyperGroup):
    """A Typer group whose help option and usage line speak the chosen language."""
