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
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from mtasts import i18n
from mtasts.config import ConfigError
from mtasts.i18n import _
from mtasts.sender.settings import PolicydSettings, load_policyd_settings

if TYPE_CHECKING:
    from mtasts.sender.cache import PolicyStore
    from mtasts.sender.policyd import Explanation
    from mtasts.sender.serve import Running

HELP = (
    "The sending side: an MTA-STS policy server for Postfix (socketmap), a drop-in for "
    "postfix-mta-sts-resolver."
)
SERVE_HELP = "Serve Postfix's smtp_tls_policy_maps over socketmap until SIGTERM."
QUERY_HELP = "Print the answer policyd gives for DOMAIN, the cached policy and why."


def _existing_file(value: str) -> Path:
    path = Path(value)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{value}: no such file")
    return path


def _options(parser: argparse.ArgumentParser, default: object, *, serve: bool) -> None:
    """The options of both commands; ``default`` is None on `policyd` and SUPPRESS on
    `query`, so that an option given before `query` still counts."""
    add = parser.add_argument
    if serve:
        add(
            "--listen",
            default=default,
            metavar="HOST:PORT|unix:PATH",
            help="HOST:PORT or unix:PATH of the socketmap (default 127.0.0.1:8461).",
        )
    add(
        "--data-dir",
        type=Path,
        default=default,
        metavar="DIR",
        help="Where the policy cache lives (default: $XDG_DATA_HOME/mtasts).",
    )
    add(
        "--database-url",
        default=default,
        metavar="URL",
        help="SQLAlchemy URL of a shared cache, e.g. postgresql://u@127.0.0.1/mtasts "
        "(default: SQLite policyd.db in the data directory).",
    )
    add(
        "--nameserver",
        "-n",
        action="append",
        default=default,
        metavar="IP[:PORT]",
        help="DNS server (repeatable; default: the system's).",
    )
    add(
        "--ca-file",
        type=_existing_file,
        default=default,
        metavar="PEM",
        help="PEM file of CAs trusted for policy fetches (default: the system store).",
    )
    add(
        "--config",
        type=_existing_file,
        default=default,
        metavar="FILE",
        help="TOML settings file (default: $MTASTS_POLICYD_CONFIG).",
    )
    if serve:
        add(
            "--metrics",
            default=default,
            metavar="HOST:PORT",
            help="Where to serve Prometheus GET /metrics (default: off).",
        )
    add(
        "--https-port",
        type=int,
        default=default,
        metavar="PORT",
        help="Port of the policy hosts (default 443; for labs).",
    )
    if serve:
        add("--verbose", "-v", action="store_true", help="Log every lookup.")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mtasts policyd",
        description=f"{HELP} {SERVE_HELP}",
        epilog="Postfix main.cf: smtp_tls_policy_maps = socketmap:inet:127.0.0.1:8461:postfix",
    )
    _options(parser, None, serve=True)
    commands = parser.add_subparsers(dest="command", title="commands", metavar="query")
    query = commands.add_parser("query", help=QUERY_HELP, description=QUERY_HELP)
    query.add_argument("domain", metavar="DOMAIN", help="The mail domain Postfix would ask about.")
    _options(query, argparse.SUPPRESS, serve=False)
    query.add_argument(
        "--lang",
        metavar="en|es",
        help="Language of the messages (default: $MTASTS_LANG, then the locale).",
    )
    return parser


def main(argv: Sequence[str]) -> int:
    """Run `mtasts policyd ARGV`; returns the exit status (2: usage or settings)."""
    args = make_parser().parse_args(list(argv))
    if args.command == "query":
        if args.lang is not None and i18n.normalize(args.lang) is None:
            print(f"mtasts: error: --lang: {args.lang!r} (en or es)", file=sys.stderr)
            return 2
        i18n.set_language(i18n.from_cli(args.lang))
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


def serve(settings: PolicydSettings, *, verbose: bool = False) -> int:
    """Serve until SIGTERM/SIGINT."""
    from mtasts.sender.serve import serve as run

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("httpx", "httpcore", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    store = _open_store(settings, sys.stderr)
    if store is None:
        return 1

    def ready(running: Running) -> None:
        line = f"mtasts policyd: socketmap on {running.socketmap.address}"
        if running.metrics is not None:
            line += f", metrics on http://{running.metrics.address}/metrics"
        loop = type(asyncio.get_running_loop()).__module__.split(".")[0]  # uvloop or asyncio
        line += f" (cache {settings.effective_database_url}, event loop {loop})"
        print(line, file=sys.stderr, flush=True)

    try:
        with _runner() as runner:
            runner.run(run(settings, store, ready))
    except OSError as exc:
        print(f"Cannot listen on {settings.listen}: {exc}", file=sys.stderr)
        return 1
    return 0


def _runner() -> asyncio.Runner:
    """The event loop of the daemon: uvloop when it is installed (uvicorn[standard], a
    dependency of mtasts, brings it), as PMR does; it takes about a tenth less CPU per
    domain resolved (bench/policyd.py). The standard loop otherwise."""
    try:
        import uvloop
    except ImportError:
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


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
