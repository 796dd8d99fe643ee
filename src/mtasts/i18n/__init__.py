"""The one place that picks the language mtasts speaks, and the catalogues it speaks it from.

English is the default and costs nothing: its messages are the msgids in the code. Spanish
comes from ``locale/es/LC_MESSAGES/mtasts.po`` in this package, read with Babel's ``read_po``
the first time a Spanish message is needed and kept in memory (no compiled ``.mo`` to build,
so ``pip install`` / ``make run`` on a fresh machine is enough; ~50 ms once per process).

Order of choice:

- command line: ``--lang es|en``, then ``MTASTS_LANG``, then the locale (``LC_ALL``,
  ``LC_MESSAGES``, ``LANG``, in POSIX precedence) — :func:`from_cli`;
- dashboard: the user's own setting, then the choice made while signed out (kept in the
  session cookie), then ``Accept-Language`` — :func:`from_accept_language`, :func:`choose`;
- API: ``message``/``fix`` prose follows ``Accept-Language`` only when the client sends it.

Codes, JSON keys and values never change with the language; only prose does.

Marking strings: ``_("...")`` translates now; ``N_("...")`` marks a module-level string
that is translated where it is used (``_(TEMPLATES[code])``); the protocol layer builds
``Text("template", field=...)`` (English, with its template) and interfaces ``say()`` it.
Placeholders are ``{name}`` (``str.format`` after translation), never f-strings inside
``_()``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from importlib import resources
from typing import Final

LANGUAGES: Final = ("en", "es")
DEFAULT: Final = "en"
NAMES: Final = {"en": "English", "es": "Español"}
DOMAIN: Final = "mtasts"

_process_language = DEFAULT
_request_language: ContextVar[str | None] = ContextVar("mtasts_language", default=None)


def normalize(value: str | None) -> str | None:
    """``es``, ``es_ES.UTF-8``, ``es-MX`` → ``es``; ``C``/``POSIX``/unknown → None."""
    if not value:
        return None
    base = value.split(".", 1)[0].split("@", 1)[0].replace("-", "_").split("_", 1)[0]
    base = base.strip().lower()
    return base if base in LANGUAGES else None


def from_environment(environ: Mapping[str, str] | None = None) -> str:
    """``MTASTS_LANG``, then the locale: the first of ``LC_ALL``, ``LC_MESSAGES``, ``LANG``
    that is set decides (POSIX precedence); an unsupported locale means English."""
    env = os.environ if environ is None else environ
    chosen = normalize(env.get("MTASTS_LANG"))
    if chosen:
        return chosen
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(name)
        if value:
            return normalize(value) or DEFAULT
    return DEFAULT


def from_cli(option: str | None, environ: Mapping[str, str] | None = None) -> str:
    """``--lang``, then :func:`from_environment`."""
    return normalize(option) or from_environment(environ)


def from_accept_language(header: str | None) -> str | None:
    """The best supported language of an ``Accept-Language`` header (RFC 9110 §12.5.4),
    or None when the header is absent or names none (``*`` means the default)."""
    if not header:
        return None
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")):
        tag, _sep, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            key, _eq, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        tag = tag.strip()
        language = DEFAULT if tag == "*" else normalize(tag)
        if language and quality > 0:
            ranked.append((-quality, index, language))
    return min(ranked)[2] if ranked else None


def set_language(language: str) -> None:
    """The process-wide language (the command line sets it once)."""
    global _process_language
    _process_language = normalize(language) or DEFAULT


def current() -> str:
    """The language of this request (see :func:`use`) or else of the process."""
    return _request_language.get() or _process_language


@contextmanager
def use(language: str | None) -> Iterator[str]:
    """Speak ``language`` inside the block (one web request, one test); None keeps the
    current language."""
    chosen = normalize(language) or current()
    token = _request_language.set(chosen)
    try:
        yield chosen
    finally:
        _request_language.reset(token)


def choose(language: str | None) -> None:
    """Speak ``language`` for the rest of the current :func:`use` block (the dashboard
    refines a request's language once it knows who is signed in); None changes nothing."""
    chosen = normalize(language)
    if chosen:
        _request_language.set(chosen)


@cache
def catalogue(language: str) -> Mapping[str | tuple[str, str], str | tuple[str, ...]]:
    """msgid (or (singular, plural)) → translation, without fuzzy or empty entries."""
    if language == DEFAULT:
        return {}
    from babel.messages.pofile import read_po  # lazy: only a Spanish run pays for Babel

    path = resources.files(__package__).joinpath("locale", language, "LC_MESSAGES", f"{DOMAIN}.po")
    with path.open("rb") as fh:
        po = read_po(fh, locale=language, domain=DOMAIN)
    out: dict[str | tuple[str, str], str | tuple[str, ...]] = {}
    for message in po:
        if not message.id or message.fuzzy:
            continue
        if isinstance(message.id, tuple | list):
            strings = tuple(str(s) for s in message.string or ())
            if all(strings):
                out[(str(message.id[0]), str(message.id[1]))] = strings
        elif message.string:
            out[str(message.id)] = str(message.string)
    return out


def gettext(message: str) -> str:
    """``message`` in the current language (itself when untranslated or English)."""
    language = current()
    if language == DEFAULT:
        return message
    found = catalogue(language).get(message)
    return found if isinstance(found, str) else message


def ngettext(singular: str, plural: str, n: int) -> str:
    """The singular or plural form for ``n`` (English and Spanish: n == 1 is singular)."""
    language = current()
    forms = catalogue(language).get((singular, plural)) if language != DEFAULT else None
    if isinstance(forms, tuple) and len(forms) >= 2:
        return forms[0] if n == 1 else forms[1]
    return singular if n == 1 else plural


def say(text: str) -> str:
    """``text`` in the current language: a protocol ``Text`` (template and fields, see
    mtasts.protocol.errors) is translated with its fields; any other string is itself."""
    template = getattr(text, "template", None)
    fields = getattr(text, "fields", None)
    if not isinstance(template, str) or not isinstance(fields, dict) or current() == DEFAULT:
        return str(text)
    said = {k: say(v) if isinstance(v, str) else v for k, v in fields.items()}
    translated = gettext(template)
    return translated.format(**said) if said else translated


_ = gettext


def speak_for_libraries() -> None:
    """Click (inside Typer) says its own words ("Options", "default: …") through the
    standard library's gettext, in its default domain: from here on that domain answers
    from mtasts' catalogue in the current language (:func:`current`; English and words
    not in the catalogue are unchanged). Once per process; the command line calls it
    before any help is written. The words are listed in mtasts.i18n.commands."""
    import gettext as stdlib

    if getattr(stdlib.dgettext, "__wrapped__", None) is not None:
        return
    original = stdlib.dgettext

    def dgettext(domain: str, message: str) -> str:
        language = current()
        if domain == "messages" and language != DEFAULT:
            found = catalogue(language).get(message)
            if isinstance(found, str):
                return found
        return original(domain, message)

    dgettext.__wrapped__ = original  # type: ignore[attr-defined]
    stdlib.dgettext = dgettext


def N_(message: str) -> str:
    """Marks a string for extraction; it is translated where it is used."""
    return message


__all__ = [
    "DEFAULT",
    "LANGUAGES",
    "NAMES",
    "N_",
    "choose",
    "current",
    "from_accept_language",
    "from_cli",
    "from_environment",
    "gettext",
    "ngettext",
    "normalize",
    "say",
    "set_language",
    "use",
]


def lang_argument(argv: Sequence[str]) -> str | None:
    """The value of ``--lang X`` / ``--lang=X`` anywhere on a command line (before any
    ``--``): help texts are written when a parser is built, so the language is read
    before the parser runs (which still checks the value)."""
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg == "--lang" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--lang="):
            return arg.removeprefix("--lang=")
    return None
