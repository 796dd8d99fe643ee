"""`mtasts policyd` (serve) and `mtasts policyd query DOMAIN` (explain one answer)."""

from __future__ import annotations

import asyncio
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from mtasts import i18n
from mtasts.config import ConfigError
from mtasts.i18n import _
from mtasts.sender.settings import PolicydSettings, load_policyd_settings

policyd_app = typer.Typer(
    help="The sending side: an MTA-STS policy server for Postfix (socketmap), a drop-in "
    "for postfix-mta-sts-resolver.",
    invoke_without_command=True,
)

ListenOpt = Annotated[
    str | None,
    typer.Option(
        "--listen", help="HOST:PORT or unix:PATH of the socketmap (default 127.0.0.1:8461)."
    ),
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Where the policy cache lives (default: ./mtasts-data)."),
]
DatabaseOpt = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="SQLAlchemy URL of a shared cache, e.g. postgresql://u@127.0.0.1/mtasts "
        "(default: SQLite policyd.db in the data directory).",
    ),
]
NameserverOpt = Annotated[
    list[str] | None,
    typer.Option("--nameserver", "-n", help="DNS server IP[:PORT] (repeatable; default: system)."),
]
CaFileOpt = Annotated[
    Path | None,
    typer.Option("--ca-file", help="PEM file of CAs trusted for policy fetches.", exists=True),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", help="TOML settings file (default: $MTASTS_POLICYD_CONFIG).", exists=True
    ),
]
MetricsOpt = Annotated[
    str | None,
    typer.Option("--metrics", help="HOST:PORT for Prometheus GET /metrics (default: off)."),
]
LangOpt = Annotated[
    str | None,
    typer.Option(
        "--lang",
        help=_("Language of the messages: en or es (default: $MTASTS_LANG, then the locale)."),
    ),
]
HttpsPortOpt = Annotated[
    int | None,
    typer.Option("--https-port", help="Port of the policy hosts (default 443; for labs)."),
]


def _settings(**overrides: object) -> PolicydSettings:
    config = overrides.pop("config")
    try:
        return load_policyd_settings(config, None, **overrides)  # type: ignore[arg-type]
    except ConfigError as exc:
        print(f"mtasts: error: configuration: {exc}", file=sys.stderr)
        raise typer.Exit(2) from exc


@policyd_app.callback()
def policyd(
    ctx: typer.Context,
    listen: ListenOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DatabaseOpt = None,
    nameserver: NameserverOpt = None,
    ca_file: CaFileOpt = None,
    config: ConfigOpt = None,
    metrics: MetricsOpt = None,
    https_port: HttpsPortOpt = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every lookup.")] = False,
) -> None:
    """Serve Postfix's smtp_tls_policy_maps over socketmap until SIGTERM."""
    if ctx.invoked_subcommand is not None:
        return
    from mtasts.sender.serve import open_store, serve

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("httpx", "httpcore", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    settings = _settings(
        config=config,
        listen=listen,
        data_dir=data_dir,
        database_url=database_url,
        nameservers=nameserver,
        ca_file=str(ca_file) if ca_file else None,
        metrics_listen=metrics,
        https_port=https_port,
    )
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        store = open_store(settings)
    except Exception as exc:
        err.print(f"[red]Cannot open the cache store {settings.effective_database_url}:[/] {exc}")
        raise typer.Exit(1) from exc

    def ready(running: object) -> None:
        from mtasts.sender.serve import Running

        assert isinstance(running, Running)
        line = f"mtasts policyd: socketmap on {running.socketmap.address}"
        if running.metrics is not None:
            line += f", metrics on http://{running.metrics.address}/metrics"
        err.print(line + f" (cache {settings.effective_database_url})")

    try:
        asyncio.run(serve(settings, store, ready))
    except OSError as exc:
        err.print(f"[red]Cannot listen on {settings.listen}:[/] {exc}")
        raise typer.Exit(1) from exc


@policyd_app.command()
def query(
    domain: Annotated[str, typer.Argument(help="The mail domain Postfix would ask about.")],
    data_dir: DataDirOpt = None,
    database_url: DatabaseOpt = None,
    nameserver: NameserverOpt = None,
    ca_file: CaFileOpt = None,
    config: ConfigOpt = None,
    https_port: HttpsPortOpt = None,
    lang: LangOpt = None,
) -> None:
    """Print the answer policyd gives for DOMAIN, the cached policy and why."""
    from mtasts.sender.serve import build_daemon, open_store

    if lang is not None and i18n.normalize(lang) is None:
        print(f"mtasts: error: --lang: {lang!r} (en or es)", file=sys.stderr)
        raise typer.Exit(2)
    i18n.set_language(i18n.from_cli(lang))
    settings = _settings(
        config=config,
        data_dir=data_dir,
        database_url=database_url,
        nameservers=nameserver,
        ca_file=str(ca_file) if ca_file else None,
        https_port=https_port,
    )
    out = Console(highlight=False, soft_wrap=True)
    try:
        store = open_store(settings)
    except Exception as exc:
        out.print(
            "[red]"
            + escape(
                _("Cannot open the cache store {url}:").format(url=settings.effective_database_url)
            )
            + f"[/] {escape(str(exc))}"
        )
        raise typer.Exit(1) from exc
    daemon = build_daemon(settings, store)
    daemon.load()

    async def run() -> None:
        explanation = await daemon.explain(domain)
        await daemon.drain()
        print_explanation(out, explanation)

    try:
        asyncio.run(run())
    finally:
        store.close()


def _when(ts: float) -> str:
    return f"{datetime.fromtimestamp(ts, UTC):%Y-%m-%d %H:%M:%SZ}"


def print_explanation(out: Console, ex: object) -> None:
    from mtasts.sender.policyd import Explanation

    assert isinstance(ex, Explanation)
    reply = ex.reply
    out.print(f"[bold]{ex.domain}[/]")
    answer = escape(f"{reply.kind} {reply.data}".rstrip())
    out.print("  " + escape(_("answer:  {answer}")).format(answer=answer))
    entry = ex.entry
    if entry is not None and entry.outcome is not None:
        o = entry.outcome
        out.print(
            "  "
            + escape(
                _("outcome: {result} {code}: {message}").format(
                    result=o.result, code=o.code, message=o.message
                )
            )
        )
    cached = entry.cached if entry is not None else None
    if cached is not None:
        line = _("cached policy: id {id}, fetched {fetched}, in force until {until}").format(
            id=cached.policy_id, fetched=_when(cached.fetched_at), until=_when(cached.expires_at)
        )
        out.print("  " + escape(line))
        for text in cached.text.splitlines():
            out.print(f"    {escape(text)}")
        if (
            entry is not None
            and entry.outcome is not None
            and entry.outcome.code != (f"policy-{cached.policy.mode}")
        ):
            # RFC 8461 §5.1: a cached policy counts until max_age, whatever DNS says now.
            stays = _("the cached policy stays in force until {until}")
            out.print("  " + escape(stays.format(until=_when(cached.expires_at))))
    else:
        out.print("  " + escape(_("cached policy: none")))
    if entry is not None and entry.failures:
        failures = _("fetch failures in a row: {count}; next try {when}").format(
            count=entry.failures, when=_when(entry.retry_at)
        )
        out.print("  " + escape(failures))
    if ex.findings:
        out.print("  " + escape(_("why (diagnosis findings):")))
        for f in ex.findings:
            out.print(f"    {f.severity:<7} {f.code}: {escape(f.message)}")
