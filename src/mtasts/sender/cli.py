"""`mtasts policyd` (serve) and `mtasts policyd query DOMAIN` (explain one answer).

The daemon runs next to every Postfix and should stay small, so its command line is the
standard library's argparse: Typer (with pydantic, click and Rich, about 9 MiB resident)
is never loaded by `mtasts policyd` (tests/test_startup_imports.py). `mtasts.cli` forwards
`mtasts ... policyd ARGS` here.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from mtasts import i18n
from mtasts.config import ConfigError
from mtasts.i18n import N_, _
from mtasts.net import event_loop
from mtasts.sender.settings import PolicydSettings, load_policyd_settings

if TYPE_CHECKING:
    from mtasts.sender.cache import PolicyStore
    from mtasts.sender.policyd import Explanation
    from mtasts.sender.serve import Running

HELP = N_(
    "The sending side: an MTA-STS policy server for Postfix (socketmap), a drop-in for "
    "postfix-mta-sts-resolver."
)
SERVE_HELP = N_("Serve Postfix's smtp_tls_policy_maps over socketmap until SIGTERM.")
QUERY_HELP = N_("Print the answer policyd gives for DOMAIN, the cached policy and why.")


def _existing_file(value: str) -> Path:
    path = Path(value)
    if not path.is_file():
        raise argparse.ArgumentTypeError(_("{path}: no such file").format(path=value))
    return path


# argparse's own reasons for a usage error, said through the standard library's gettext
# (mtasts.i18n.speak_for_libraries answers them from mtasts' catalogue); listed here so
# that `make i18n` keeps them
ARGPARSE_WORDS = (
    N_("argument %(argument_name)s: %(message)s"),
    N_("expected one argument"),
    N_("invalid %(type)s value: %(value)r"),
    N_("invalid choice: %(value)r (choose from %(choices)s)"),
    N_("the following arguments are required: %s"),
    N_("unrecognized arguments: %s"),
    N_("ambiguous option: %(option)s could match %(matches)s"),
)


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's own words ("usage:") in the chosen language: its gettext domain has no
    Spanish catalogue, so they come from ours."""

    def add_usage(
        self,
        usage: str | None,
        actions: Iterable[argparse.Action],
        groups: Iterable[argparse._MutuallyExclusiveGroup],
        prefix: str | None = None,
    ) -> None:
        super().add_usage(usage, actions, groups, _("usage: ") if prefix is None else prefix)


class _Parser(argparse.ArgumentParser):
    """An argparse parser whose help option, section titles and "error:" line speak the
    chosen language (English: argparse's own text, unchanged)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(formatter_class=_HelpFormatter, add_help=False, **kwargs)
        self._optionals.title = _("options")
        self._positionals.title = _("positional arguments")
        self.add_argument(
            "-h",
            "--help",
            action="help",
            default=argparse.SUPPRESS,
            help=_("show this help message and exit"),
        )

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        line = _("{prog}: error: {message}").format(prog=self.prog, message=message)
        self.exit(2, line + "\n")


def _options(parser: argparse.ArgumentParser, default: object, *, serve: bool) -> None:
    """The options of both commands; ``default`` is None on `policyd` and SUPPRESS on
    `query`, so that an option given before `query` still counts."""
    add = parser.add_argument
    if serve:
        add(
            "--listen",
            default=default,
            metavar="HOST:PORT|unix:PATH",
            help=_("HOST:PORT or unix:PATH of the socketmap (default 127.0.0.1:8461)."),
        )
    add(
        "--data-dir",
        type=Path,
        default=default,
        metavar="DIR",
        help=_("Where the policy cache lives (default: $XDG_DATA_HOME/mtasts)."),
    )
    add(
        "--database-url",
        default=default,
        metavar="URL",
        help=_(
            "SQLAlchemy URL of a shared cache, e.g. postgresql://u@127.0.0.1/mtasts "
            "(default: SQLite policyd.db in the data directory)."
        ),
    )
    add(
        "--nameserver",
        "-n",
        action="append",
        default=default,
        metavar="IP[:PORT]",
        help=_("DNS server (repeatable; default: the system's)."),
    )
    add(
        "--ca-file",
        type=_existing_file,
        default=default,
        metavar="PEM",
        help=_("PEM file of CAs trusted for policy fetches (default: the system store)."),
    )
    add(
        "--config",
        type=_existing_file,
        default=default,
        metavar="FILE",
        help=_("TOML settings file (default: $MTASTS_POLICYD_CONFIG)."),
    )
    if serve:
        add(
            "--metrics",
            default=default,
            metavar="HOST:PORT",
            help=_("Where to serve Prometheus GET /metrics (default: off)."),
        )
    add(
        "--https-port",
        type=int,
        default=default,
        metavar="PORT",
        help=_("Port of the policy hosts (default 443; for labs)."),
    )
    if serve:
        add("--verbose", "-v", action="store_true", help=_("Log every lookup."))
    add(
        "--lang",
        default=default,
        metavar="en|es",
        help=_("Language of the messages (default: $MTASTS_LANG, then the locale)."),
    )


def make_parser() -> argparse.ArgumentParser:
    """The command line, its help in the current language (set before: see `main`)."""
    parser = _Parser(
        prog="mtasts policyd",
        description=f"{_(HELP)} {_(SERVE_HELP)}",
        epilog=_("Postfix main.cf: {setting}").format(
            setting="smtp_tls_policy_maps = socketmap:inet:127.0.0.1:8461:postfix"
        ),
    )
    _options(parser, None, serve=True)
    commands = parser.add_subparsers(
        dest="command", title=_("commands"), metavar="query", parser_class=_Parser
    )
    query = commands.add_parser("query", help=_(QUERY_HELP), description=_(QUERY_HELP))
    query.add_argument(
        "domain", metavar="DOMAIN", help=_("The mail domain Postfix would ask about.")
    )
    _options(query, argparse.SUPPRESS, serve=False)
    return parser


def main(argv: Sequence[str], language: str | None = None) -> int:
    """Run `mtasts policyd ARGV`; returns the exit status (2: usage or settings).

    The language (``--lang``, then ``language`` (the one `mtasts --lang es policyd` chose),
    then MTASTS_LANG, then the locale, as the rest of the CLI) is chosen before the parser
    is built, so that ``--help`` speaks it; Babel's catalogue is loaded only when it is
    Spanish."""
    lang = i18n.lang_argument(argv) or language
    i18n.set_language(i18n.from_cli(lang))
    i18n.speak_for_libraries()
    if lang is not None and i18n.normalize(lang) is None:
        print(
            _("mtasts: error: --lang: {value} (en or es)").format(value=repr(lang)), file=sys.stderr
        )
        return 2
    args = make_parser().parse_args(list(argv))
    if args.command == "query":
        serving = [
            o
            for o, v in (
                ("--listen", args.listen),
                ("--metrics", args.metrics),
                ("--verbose", args.verbose),
            )
            if v
        ]
        if serving:  # said before `query`, they would change nothing: say so, not ignore
            print(
                _("mtasts: error: {options}: only for serving, not for query").format(
                    options=", ".join(serving)
                ),
                file=sys.stderr,
            )
            return 2
    overrides: dict[str, object] = {
        "data_dir": args.data_dir,
        "database_url": args.database_url,
        "nameservers": args.nameserver,
        "ca_file": str(args.ca_file) if args.ca_file else None,
        "https_port": args.https_port,
    }
    if args.command is None:
        overrides.update(listen=args.listen, metrics_listen=args.metrics)
    try:
        settings = load_policyd_settings(args.config, None, **overrides)
    except ConfigError as exc:
        print(_("mtasts: error: configuration: {error}").format(error=exc), file=sys.stderr)
        return 2
    if args.command == "query":
        return query(settings, args.domain)
    return serve(settings, verbose=args.verbose)


def _open_store(settings: PolicydSettings, out: TextIO) -> PolicyStore | None:
    from mtasts.sender.serve import open_store

    try:
        return open_store(settings)
    except Exception as exc:
        url = settings.effective_database_url
        print(_("Cannot open the cache store {url}:").format(url=url), exc, file=out)
        return None


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class OneLineFormatter(logging.Formatter):
    """Log lines that stay one line each: a message carries what the network sent (an
    HTTP status text, a TLS alert, a policy's words), and a line feed or terminal escape
    in it must not forge a second log line or recolour a terminal. Control characters are
    written as ``\\xNN``; tracebacks below a message keep their lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", record.message)
        return super().formatMessage(record)


def log_handler(stream: TextIO) -> logging.Handler:
    """The daemon's log: one line per event, ``time logger: message``, on ``stream``."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(OneLineFormatter("%(asctime)s %(name)s: %(message)s"))
    return handler


def serve(settings: PolicydSettings, *, verbose: bool = False) -> int:
    """Serve until SIGTERM/SIGINT."""
    from mtasts.sender.serve import serve as run

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, handlers=[log_handler(sys.stderr)]
    )
    for noisy in ("httpx", "httpcore", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    store = _open_store(settings, sys.stderr)
    if store is None:
        return 1

    def ready(running: Running) -> None:
        # the start-up line speaks the operator's language (--lang, MTASTS_LANG, locale)
        line = _("mtasts policyd: socketmap on {address}").format(address=running.socketmap.address)
        if running.metrics is not None:
            metrics = f"http://{running.metrics.address}/metrics"
            line += _(", metrics on {url}").format(url=metrics)
        loop = type(asyncio.get_running_loop()).__module__.split(".")[0]  # uvloop or asyncio
        line += _(" (cache {url}, event loop {loop})").format(
            url=settings.effective_database_url, loop=loop
        )
        print(line, file=sys.stderr, flush=True)
        # The daemon's log lines (each change of outcome, with its reason) stay English,
        # as `mtasts serve`'s do: one language in the logs whoever started the daemon.
        i18n.set_language(i18n.DEFAULT)

    try:
        with event_loop() as runner:
            runner.run(run(settings, store, ready))
    except OSError as exc:
        print(
            _("Cannot listen on {listen}: {error}").format(listen=settings.listen, error=exc),
            file=sys.stderr,
        )
        return 1
    return 0


def query(settings: PolicydSettings, domain: str) -> int:
    """Print the answer for ``domain``, the cached policy and why."""
    from mtasts.sender.serve import build_daemon

    store = _open_store(settings, sys.stdout)
    if store is None:
        return 1
    daemon = build_daemon(settings, store)
    daemon.load()

    async def run() -> Explanation:
        explanation = await daemon.explain(domain)
        await daemon.drain()
        return explanation

    try:
        print_explanation(sys.stdout, asyncio.run(run()))
    finally:
        store.close()
    return 0


def _when(ts: float) -> str:
    return f"{datetime.fromtimestamp(ts, UTC):%Y-%m-%d %H:%M:%SZ}"


def print_explanation(out: TextIO, ex: Explanation) -> None:
    """What `policyd query` prints. Policies, records and server messages come from the
    network: their control characters are printed escaped, never sent to the terminal."""

    def say(line: str) -> None:
        print("".join(c if c.isprintable() else repr(c)[1:-1] for c in line), file=out)

    reply = ex.reply
    say(ex.domain)
    say("  " + _("answer:  {answer}").format(answer=f"{reply.kind} {reply.data}".rstrip()))
    entry = ex.entry
    if entry is not None and entry.outcome is not None:
        o = entry.outcome
        outcome = _("outcome: {result} {code}: {message}")
        say("  " + outcome.format(result=o.result, code=o.code, message=o.message))
    cached = entry.cached if entry is not None else None
    if cached is not None:
        line = _("cached policy: id {id}, fetched {fetched}, in force until {until}")
        fetched, until = _when(cached.fetched_at), _when(cached.expires_at)
        say("  " + line.format(id=cached.policy_id, fetched=fetched, until=until))
        for line in cached.text.splitlines():
            say(f"    {line}")
        if (
            entry is not None
            and entry.outcome is not None
            and entry.outcome.code != (f"policy-{cached.policy.mode}")
        ):
            # RFC 8461 §5.1: a cached policy counts until max_age, whatever DNS says now.
            stays = _("the cached policy stays in force until {until}")
            say("  " + stays.format(until=_when(cached.expires_at)))
    else:
        say("  " + _("cached policy: none"))
    if entry is not None and entry.failures:
        failures = _("fetch failures in a row: {count}; next try {when}")
        say("  " + failures.format(count=entry.failures, when=_when(entry.retry_at)))
    if ex.findings:
        say("  " + _("why (diagnosis findings):"))
        for f in ex.findings:
            say(f"    {f.severity:<7} {f.code}: {f.message}")
