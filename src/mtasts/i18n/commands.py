"""The words the command line's framework says itself (Typer, with Click inside), in the
chosen language: the help option's text, the "Usage:" prefix and usage errors ("No such
option", "Missing argument"...) through the command classes below (every mtasts command and
group uses them), the headings and notes of the help page ("Options", "default: …") through
the standard library's gettext, which Click calls (:func:`mtasts.i18n.speak_for_libraries`).
In English every word is Click's own, unchanged."""

from __future__ import annotations

import re
import sys
from typing import IO, Any

from typer._click import exceptions as click_errors  # typer < 0.29 vendors Click
from typer.core import TyperCommand, TyperGroup

from mtasts import i18n
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


# Click's reasons a value is refused (types.py, typer/models.py), said again in Spanish
_REASONS = (
    (
        re.compile(r"(.+) is not a valid int(?:eger)?(?: range)?\.$"),
        N_("{value} is not a whole number."),
    ),
    (re.compile(r"(.+) is not a valid float(?: range)?\.$"), N_("{value} is not a number.")),
    (re.compile(r"(.+) is not in the range (.+)\.$"), N_("{value} is not in the range {range}.")),
    (re.compile(r"(.+) is not one of (.+)\.$"), N_("{value} is not one of {range}.")),
    (re.compile(r"(?:File|Directory|Path) (.+) does not exist\.$"), N_("{value} does not exist.")),
)


def _reason(text: str) -> str:
    for pattern, template in _REASONS:
        found = pattern.match(text)
        if found:
            fields = found.groups()
            return _(template).format(value=fields[0], range=fields[-1])
    return text  # a reason Click words otherwise: as Click says it


def _hint(exc: click_errors.BadParameter) -> str:
    if exc.param_hint is not None:
        hint = exc.param_hint
        return " / ".join(repr(h) for h in hint) if not isinstance(hint, str) else hint
    if exc.param is not None:
        return str(exc.param.get_error_hint(exc.ctx))  # type: ignore[arg-type]
    return ""


def _message(exc: click_errors.UsageError) -> str:
    """``exc``'s message in the current language."""
    if isinstance(exc, click_errors.NoSuchOption):
        said = _("No such option: {name}").format(name=exc.option_name)
        if exc.possibilities:
            options = ", ".join(sorted(exc.possibilities))
            said += " " + _("(Possible options: {options})").format(options=options)
        return said
    if isinstance(exc, click_errors.MissingParameter):
        template = {
            "argument": N_("Missing argument {name}."),
            "option": N_("Missing option {name}."),
        }.get(
            exc.param_type or (exc.param.param_type_name if exc.param else ""),
            N_("Missing parameter {name}."),
        )
        return _(template).format(name=_hint(exc))
    if isinstance(exc, click_errors.BadParameter):
        return _("Invalid value for {name}: {reason}").format(
            name=_hint(exc), reason=_reason(exc.message)
        )
    takes = re.match(r"Option (.+) requires an argument\.$", exc.message)
    if takes:
        return _("Option {name} needs a value.").format(name=takes.group(1))
    extra = re.match(r"Got unexpected extra argument\(s\) \((.*)\)$", exc.message)
    if extra:
        return _("Unexpected extra arguments: {arguments}").format(arguments=extra.group(1))
    return exc.format_message()


class _SaidUsageError(click_errors.UsageError):
    """A usage error said in the chosen language: the usage line, the hint, the reason."""

    def show(self, file: IO[Any] | None = None) -> None:
        out = file or sys.stderr
        if self.ctx is not None:
            hint = ""
            if self.ctx.command.get_help_option(self.ctx) is not None:
                hint = _("Try '{command} {option}' for help.").format(
                    command=self.ctx.command_path, option=self.ctx.help_option_names[0]
                )
            print(f"{self.ctx.get_usage()}\n{hint}", file=out)
        print(f"Error: {self.format_message()}", file=out)


def _said(exc: click_errors.UsageError) -> click_errors.UsageError:
    if i18n.current() == i18n.DEFAULT or isinstance(exc, _SaidUsageError):
        return exc  # English: Click's own
    return _SaidUsageError(_message(exc), exc.ctx)


class _Words:
    def parse_args(self, ctx, args):  # type: ignore[no-untyped-def]
        try:
            return super().parse_args(ctx, args)  # type: ignore[misc]
        except click_errors.UsageError as exc:
            raise _said(exc) from None

    def resolve_command(self, ctx, args):  # type: ignore[no-untyped-def]
        try:
            return super().resolve_command(ctx, args)  # type: ignore[misc]
        except click_errors.UsageError as exc:
            raise _said(exc) from None

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
