"""The Spanish catalogue (issue 13): every message translated, placeholders and literal text
kept, and the one place that picks the language."""

from __future__ import annotations

import re
import string
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from mtasts import i18n

SRC = Path(__file__).resolve().parent.parent / "src" / "mtasts"
CATALOGUE = SRC / "i18n" / "locale" / "es" / "LC_MESSAGES" / "mtasts.po"
KEYWORDS = {"_": None, "N_": None, "ngettext": (1, 2), "Text": None}

MsgId = str | tuple[str, str]


def _mtasts(
    *argv: str, env: dict[str, str], check: bool = True
) -> subprocess.CompletedProcess[str]:
    """`python -m mtasts ARGV` in a process of its own (the language is chosen at start)."""
    return subprocess.run(
        [sys.executable, "-m", "mtasts", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=check,
        env=env,
    )


def source_messages() -> set[MsgId]:
    """Every message id marked in the code and the dashboard's templates (what `make i18n`
    extracts)."""
    found: set[MsgId] = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(SRC),
        method_map=[("**.py", "python"), ("web/templates/**.html", "jinja2.ext:babel_extract")],
        keywords=KEYWORDS,
    ):
        if isinstance(message, tuple):
            found.add((str(message[0]), str(message[1])))
        else:
            found.add(str(message))
    return found


def spanish() -> Catalog:
    with CATALOGUE.open("rb") as fh:
        return read_po(fh, locale="es")


def entries() -> Iterator[Message]:
    for message in spanish():
        if message.id:
            yield message


def key(message: Message) -> MsgId:
    if isinstance(message.id, tuple | list):
        return (str(message.id[0]), str(message.id[1]))
    return str(message.id)


def placeholders(text: str) -> list[tuple[str, str, str]]:
    """``{name!r:>8}`` fields (str.format) and ``%(name)s`` / ``%s`` (python-format)."""
    fields = [
        (name, conversion or "", spec or "")
        for _lit, name, spec, conversion in string.Formatter().parse(text)
        if name is not None
    ]
    percent = [
        (m, "", "%") for m in re.findall(r"%(?:\([^)]*\))?[-#0 +]*\d*(?:\.\d+)?[sdifr]", text)
    ]
    return sorted(fields + percent)


def literals(text: str) -> list[str]:
    """What must reach the reader unchanged: `code` between backticks and indented lines
    (records, policy text, commands and server configuration)."""
    quoted = re.findall(r"`[^`]+`", text)
    lines = [line for line in text.splitlines() if line.startswith("    ")]
    return sorted(quoted) + lines


def test_every_message_has_a_spanish_translation() -> None:
    translated = {key(m) for m in entries() if m.string and not m.fuzzy}
    untranslated = sorted(map(str, source_messages() - translated))
    assert not untranslated, f"run `make i18n` and translate: {untranslated}"
    for message in entries():
        strings = message.string if isinstance(message.string, tuple | list) else [message.string]
        assert all(strings), f"empty translation: {message.id!r}"
        assert not message.fuzzy, f"fuzzy translation: {message.id!r}"


def test_no_stale_entries() -> None:
    """An entry whose message left the code is dead weight that hides a renamed message."""
    stale = sorted(map(str, {key(m) for m in entries()} - source_messages()))
    assert not stale, f"run `make i18n`: {stale}"


def test_translations_keep_every_placeholder() -> None:
    for message in entries():
        ids = message.id if isinstance(message.id, tuple | list) else [message.id]
        strings = message.string if isinstance(message.string, tuple | list) else [message.string]
        want = placeholders(str(ids[-1]))
        for text in strings:
            assert placeholders(str(text)) == want, (message.id, text)


def test_translations_keep_code_records_and_configuration() -> None:
    for message in entries():
        if isinstance(message.id, tuple | list):
            continue
        assert literals(str(message.string)) == literals(str(message.id)), message.id


def test_the_checks_would_catch_a_broken_translation() -> None:
    """The two rules above fail on a dropped or renamed placeholder and on a translated
    configuration line."""
    msgid = "Renew the certificate of {host} (e.g. `certbot renew`)."
    assert placeholders("Renueve el certificado (por ejemplo `certbot renew`).") != placeholders(
        msgid
    )
    assert placeholders("Renueve el certificado de {servidor}.") != placeholders(msgid)
    assert literals("Renueve el certificado de {host} (`certbot renovar`).") != literals(msgid)
    config = "Postfix:\n    smtpd_tls_protocols = >=TLSv1.2"
    assert literals("Postfix:\n    smtpd_tls_protocolos = >=TLSv1.2") != literals(config)


def test_runtime_catalogue_matches_the_file() -> None:
    loaded = i18n.catalogue("es")
    assert loaded["Output format."] == "Formato de salida."
    assert loaded[("{n} error", "{n} errors")] == ("{n} error", "{n} errores")
    with i18n.use("es"):
        assert i18n.ngettext("{n} warning", "{n} warnings", 1) == "{n} aviso"
        assert i18n.ngettext("{n} warning", "{n} warnings", 3) == "{n} avisos"
        assert i18n.gettext("a message nobody marked") == "a message nobody marked"
    assert i18n.gettext("Output format.") == "Output format."  # English outside the block


@pytest.mark.parametrize(
    ("option", "environ", "expected"),
    [
        (None, {}, "en"),
        ("es", {}, "es"),
        ("en", {"MTASTS_LANG": "es"}, "en"),
        (None, {"MTASTS_LANG": "es", "LANG": "en_US.UTF-8"}, "es"),
        (None, {"MTASTS_LANG": "fr", "LANG": "es_AR.UTF-8"}, "es"),
        (None, {"LANG": "es_ES.UTF-8"}, "es"),
        (None, {"LANG": "es_MX"}, "es"),
        (None, {"LC_MESSAGES": "es_ES.UTF-8", "LANG": "C.UTF-8"}, "es"),
        (None, {"LC_ALL": "C.UTF-8", "LC_MESSAGES": "es_ES.UTF-8"}, "en"),
        (None, {"LC_ALL": "", "LANG": "es_CL.UTF-8"}, "es"),
        (None, {"LANG": "de_DE.UTF-8"}, "en"),
        (None, {"LANG": "C"}, "en"),
    ],
)
def test_command_line_choice(option: str | None, environ: dict[str, str], expected: str) -> None:
    assert i18n.from_cli(option, environ) == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("es", "es"),
        ("es-ES,es;q=0.9,en;q=0.8", "es"),
        ("en-GB,en;q=0.9,es;q=0.8", "en"),
        ("fr-FR,fr;q=0.9,es;q=0.5", "es"),
        ("fr, de", None),
        ("es;q=0, en", "en"),
        ("en;q=0.2, es;q=0.8", "es"),
        ("*", "en"),
        ("es;q=bogus, en", "en"),
    ],
)
def test_accept_language(header: str | None, expected: str | None) -> None:
    assert i18n.from_accept_language(header) == expected


def test_english_runs_never_load_babel() -> None:
    """English is the msgids themselves: no catalogue and no Babel import at start-up."""
    code = (
        "import sys, runpy\n"
        "sys.argv = ['mtasts', 'check', '--help']\n"
        "try:\n    runpy.run_module('mtasts', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('babel')))"
    )
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env=env,
    ).stdout
    assert out.strip().splitlines()[-1] == "[]", out


def test_spanish_help_comes_from_the_catalogue() -> None:
    """`--lang es` anywhere on the line decides the language of the help texts, which are
    set when the CLI is imported."""
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    for argv in (["--lang", "es", "check", "--help"], ["check", "--help", "--lang=es"]):
        out = _mtasts(*argv, env=env).stdout
        assert "Comprueba dominios tal como lo hace un MTA remitente" in out, out
        assert "Formato de salida." in out
    english = _mtasts("check", "--help", env=env).stdout
    assert "Check domains the way a sending MTA does" in english


def test_every_command_is_summed_up_in_spanish() -> None:
    """`mtasts --lang es --help` lists each command with a Spanish summary: none is left as
    it reads in English (serve and policyd were)."""
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "COLUMNS": "200"}

    def commands(*lang: str) -> dict[str, str]:
        out = _mtasts(*lang, "--help", env=env).stdout
        heading = "Órdenes:" if lang else "Commands:"
        listed = out.split(heading, 1)[1].strip().splitlines()
        return dict(line.strip().split(None, 1) for line in listed if line.strip())

    english, spanish = commands(), commands("--lang", "es")
    assert set(english) == set(spanish) and {"serve", "policyd", "check"} <= set(english)
    same = [name for name in english if english[name] == spanish[name]]
    assert same == [], same


COMMANDS: tuple[list[str], ...] = (
    [],
    ["check"],
    ["generate"],
    ["serve"],
    ["tokens"],
    ["tokens", "create"],
    ["users", "set-password"],
    ["reports"],
    ["reports", "import"],
    ["reports", "summary"],
    ["reports", "fetch-imap"],
)
CLICK_ENGLISH = ("Usage:", "Options:", "Arguments:", "Commands:", "Show this message", "[default:")


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "mtasts")
def test_the_frameworks_words_in_help_speak_spanish_too(command: list[str]) -> None:
    """Click's own words on a help page (usage line, headings, the help option, defaults)
    follow --lang es, and stay Click's in English; so does each command's description."""
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "COLUMNS": "120"}

    def page(*lang: str) -> str:
        return _mtasts(*lang, *command, "--help", env=env).stdout

    english, spanish = page(), page("--lang", "es")
    assert english.startswith("Usage: ") and "Show this message and exit." in english
    assert spanish.startswith("Uso: ") and "Muestra esta ayuda y termina." in spanish
    left = [word for word in CLICK_ENGLISH if word in spanish]
    assert left == [], left
    description = english.split("\n\n")[1].strip()  # the paragraph under the usage line
    assert description and description not in spanish, description


USAGE_ERRORS = (
    (["check", "--bogus", "x"], "No existe la opción --bogus", "No such option: --bogus"),
    (
        ["check", "--concurrency", "abc", "x"],
        "Valor no válido para '--concurrency' / '-c': 'abc' no es un número entero.",
        "Invalid value for '--concurrency' / '-c': 'abc' is not a valid int range.",
    ),
    (
        ["check", "--concurrency", "0", "x"],
        "0 no está en el intervalo 1<=x<=1000.",
        "0 is not in the range 1<=x<=1000.",
    ),
    (["generate"], "Falta el argumento 'domain'.", "Missing argument 'domain'."),
    (["tokens", "create"], "Falta la opción '--email'.", "Missing option '--email'."),
    (["reports", "summary", "a", "b"], "Sobran argumentos: b", "unexpected extra argument"),
    (["bogus-command"], "No existe la orden 'bogus-command'.", "No such command"),
)


@pytest.mark.parametrize("argv, spanish, english", USAGE_ERRORS, ids=lambda v: str(v)[:30])
def test_usage_errors_speak_spanish_and_english_is_clicks_own(
    argv: list[str], spanish: str, english: str
) -> None:
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}

    def run(*lang: str) -> str:
        proc = _mtasts(*lang, *argv, env=env, check=False)
        assert proc.returncode == 2, proc.stderr
        return proc.stderr

    said, own = run("--lang", "es"), run()
    assert spanish in said and english not in said, said
    assert "Prueba '" in said and "for help." not in said
    assert english in own and "Try '" in own, own


def test_lang_before_the_command_counts_for_the_command() -> None:
    """`mtasts --lang es check ...`: the command's own --lang, absent, does not undo it."""
    argv = ["--lang", "es", "check", "--no-smtp", "-n", "127.0.0.1:9", "--timeout", "0.2"]
    out = _mtasts(
        *argv,
        "--format",
        "text",
        "example.invalid",
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        check=False,
    ).stdout
    assert "errores" in out and "Los remitentes" in out, out


def test_protocol_text_is_english_and_said_in_spanish() -> None:
    """The protocol layer stays pure (English str with its template); `say` translates it,
    nested fields too, and it survives the trip to a --jobs worker (pickle)."""
    import pickle

    from mtasts.protocol.errors import Text

    inner = Text("it is {length} characters long", length=40)
    outer = Text("{problem}; senders ignore it and see no policy", problem=inner)
    assert outer == "it is 40 characters long; senders ignore it and see no policy"
    assert i18n.say(outer) == outer  # English: the string itself
    with i18n.use("es"):
        assert i18n.say(outer) == (
            "tiene 40 caracteres; los remitentes lo ignoran y no ven ninguna política"
        )
        assert i18n.say("plain text") == "plain text"
    copy = pickle.loads(pickle.dumps(outer))
    assert copy == outer and copy.template == outer.template
    with i18n.use("es"):
        assert i18n.say(copy).startswith("tiene 40 caracteres")
    braces = Text("{raw!r}: x", raw="{not a field}")
    assert pickle.loads(pickle.dumps(braces)) == "'{not a field}': x"


def test_parser_notes_are_said_in_spanish() -> None:
    """An mx line senders accept but that covers no MX host: the note nests the mx
    module's message inside the policy's 'line N:' (both said in Spanish)."""
    from mtasts.protocol.policy import parse_policy

    policy = parse_policy("version: STSv1\r\nmode: testing\r\nmx: 192.0.2.1\r\nmax_age: 86400\r\n")
    [note] = [n for n in policy.notes if n.code == "policy-mx-ip-address"]
    assert note.message.startswith("line 3: '192.0.2.1' looks like an IP address")
    with i18n.use("es"):
        assert i18n.say(note.message) == (
            "línea 3: '192.0.2.1' parece una dirección IP, pero los registros MX nombran "
            "servidores, nunca direcciones (RFC 5321 §5.1): esta línea no cubre ningún "
            "servidor MX"
        )


def test_usage_errors_in_spanish() -> None:
    """Bad input answers one line on stderr (exit 2) in the chosen language."""
    env = {"PATH": "/usr/bin:/bin", "LANG": "es_ES.UTF-8"}
    proc = _mtasts("check", "not a domain", env=env, check=False)
    assert proc.returncode == 2
    assert proc.stderr == (
        "mtasts: error: 'not a domain' no es un nombre de dominio (indique, p. ej., example.com)\n"
    )
