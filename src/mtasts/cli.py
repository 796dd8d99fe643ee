"""The `mtasts` command line.

Start-up matters (bulk checks start many processes): this module imports only what every
command needs to be parsed. Each command imports what it uses when it runs, so `check`,
`generate` and `--help` never load the ORM or the web stack (bench/startup.py).
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from mtasts import generate as gen
from mtasts import i18n
from mtasts.check.names import normalize_domain
from mtasts.i18n import _, ngettext
from mtasts.protocol.policy import MAX_AGE_LIMIT, MAX_POLICY_BYTES, Mode
from mtasts.reports.imap_cli import fetch_imap_command
from mtasts.web.users_cli import users_app

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from mtasts.check.checker import CheckOptions
    from mtasts.check.result import CheckResult
    from mtasts.config import Settings
    from mtasts.net.dns import Resolver


def utcnow() -> datetime:
    return datetime.now(UTC)


class Lang(StrEnum):
    en = "en"
    es = "es"


def _set_lang(value: Lang | None) -> Lang | None:
    """--lang, then MTASTS_LANG, then the locale (mtasts.i18n). Called on every run, with
    None when the option is absent, so each command decides afresh."""
    i18n.set_language(i18n.from_cli(value.value if value else None))
    return value


LangOption = Annotated[
    Lang | None,
    typer.Option(
        "--lang",
        callback=_set_lang,
        is_eager=True,
        help=_("Language of the messages: en or es (default: $MTASTS_LANG, then the locale)."),
    ),
]

app = typer.Typer(
    help=_("Diagnose, generate and host SMTP MTA-STS (RFC 8461) and TLS reporting (RFC 8460)."),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: Rich's help formatter alone costs ~150 ms to load
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"mtasts {version('mtasts')}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help=_("Print the version and exit.")
        ),
    ] = False,
    lang: LangOption = None,
) -> None:
    """Diagnose, generate and host SMTP MTA-STS (RFC 8461) and TLS reporting (RFC 8460)."""


class Format(StrEnum):
    text = "text"
    json = "json"
    jsonl = "jsonl"
    csv = "csv"


def _usage_error(message: str) -> NoReturn:
    """Bad input: one line on stderr, exit status 2, no traceback."""
    print(f"mtasts: error: {message}", file=sys.stderr)
    raise typer.Exit(2)


def _read_domains(args: list[str], file: Path | None) -> list[str | CheckResult]:
    """The domains to check, in input order. An argument that is not a domain name is a
    usage error; a line of ``file`` that is not one becomes an ``input-invalid`` result
    carrying its line number, and the run goes on."""
    from mtasts.check.result import input_invalid

    entries: list[str | CheckResult] = []
    for arg in args:
        try:
            normalize_domain(arg)
        except ValueError as exc:
            _usage_error(str(exc))
        entries.append(arg)
    if file is None:
        return entries
    try:
        data = sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes()
        text = data.decode("utf-8")
    except OSError as exc:
        _usage_error(f"--file {file}: {exc.strerror or exc}")
    except UnicodeDecodeError as exc:
        _usage_error(
            _("--file {file}: not UTF-8 text (byte {offset})").format(file=file, offset=exc.start)
        )
    for n, line in enumerate(text.splitlines(), 1):
        content = line.split("#", 1)[0].strip()
        if not content:
            continue
        name = content.split(",")[0].strip()  # a CSV line: the domain comes first
        try:
            normalize_domain(name)
        except ValueError as exc:
            entries.append(input_invalid(name, n, str(exc)))
            continue
        entries.append(name)
    return entries


def _check_ca_file(path: Path) -> None:
    import ssl

    try:
        data = path.read_bytes()
    except OSError as exc:
        _usage_error(f"--ca-file {path}: {exc.strerror or exc}")
    if b"-----BEGIN CERTIFICATE-----" not in data:
        _usage_error(
            _("--ca-file {path}: no PEM certificate in it (-----BEGIN CERTIFICATE-----)").format(
                path=path
            )
        )
    try:
        ssl.create_default_context(cafile=str(path))
    except (ssl.SSLError, ValueError) as exc:
        _usage_error(f"--ca-file {path}: not usable PEM: {exc}")


def _resolver(nameserver: list[str] | None, timeout: float) -> Resolver:
    from mtasts.net.dns import Resolver

    try:
        return Resolver(nameserver or None, timeout=timeout)
    except ValueError as exc:  # the reason is a Text of mtasts.net.dns
        _usage_error("--nameserver: " + i18n.say(exc.args[0] if exc.args else str(exc)))


@app.command(
    help=_(
        "Check domains the way a sending MTA does: the _mta-sts TXT record, the HTTPS policy, "
        "every MX (STARTTLS, TLS >= 1.2, certificate) and the TLS-RPT record.\n\n"
        "Prints the verdict senders reach (STSFetchResult NONE, FETCH_ERROR or VALID), every "
        "problem and the exact text to paste to fix it. Exit status: 0 when no finding is an "
        "error, 1 otherwise, 2 on usage errors."
    )
)
def check(
    domains: Annotated[list[str] | None, typer.Argument(help=_("Mail domains to check."))] = None,
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", help=_("File with one domain per line ('-' for stdin).")),
    ] = None,
    fmt: Annotated[Format, typer.Option("--format", help=_("Output format."))] = Format.text,
    nameserver: Annotated[
        list[str] | None,
        typer.Option(
            "--nameserver",
            "-n",
            help=_("DNS server IP[:PORT] to ask (repeatable; default: system)."),
        ),
    ] = None,
    ca_file: Annotated[
        Path | None,
        typer.Option("--ca-file", help=_("PEM file of trusted CAs instead of the system store.")),
    ] = None,
    concurrency: Annotated[
        int,
        typer.Option("--concurrency", "-c", min=1, max=1000, help=_("Domains checked at once.")),
    ] = 32,
    timeout: Annotated[
        float,
        typer.Option("--timeout", min=0.1, help=_("Seconds for each DNS lookup, fetch and probe.")),
    ] = 10.0,
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs", "-j", min=1, max=64, help=_("Worker processes for bulk checks (CPU cores).")
        ),
    ] = 1,
    no_smtp: Annotated[
        bool, typer.Option("--no-smtp", help=_("Skip the STARTTLS probe of the MX hosts."))
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help=_("Show info findings."))
    ] = False,
    lang: LangOption = None,
    https_port: Annotated[int, typer.Option(hidden=True)] = 443,
    smtp_port: Annotated[int, typer.Option(hidden=True)] = 25,
) -> None:
    """Check domains the way a sending MTA does: the _mta-sts TXT record, the HTTPS policy,
    every MX (STARTTLS, TLS >= 1.2, certificate) and the TLS-RPT record.

    Prints the verdict senders reach (STSFetchResult NONE, FETCH_ERROR or VALID), every
    problem and the exact text to paste to fix it. Exit status: 0 when no finding is an
    error, 1 otherwise, 2 on usage errors.
    """
    from mtasts.check.checker import CheckOptions

    entries = _read_domains(domains or [], file)
    if not entries:
        _usage_error(_("give at least one domain, or --file"))
    if ca_file is not None:
        _check_ca_file(ca_file)
    options = CheckOptions(
        ca_file=str(ca_file) if ca_file else None,
        timeout=timeout,
        probe_mx=not no_smtp,
        https_port=https_port,
        smtp_port=smtp_port,
    )
    resolver = _resolver(nameserver, timeout)
    import asyncio

    results = asyncio.run(_run_checks(entries, resolver, options, concurrency, jobs, fmt, verbose))
    raise typer.Exit(0 if all(r.ok for r in results) else 1)


async def _run_checks(
    entries: list[str | CheckResult],
    resolver: Resolver,
    options: CheckOptions,
    concurrency: int,
    jobs: int,
    fmt: Format,
    verbose: bool,
) -> list[CheckResult]:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from mtasts.check import output
    from mtasts.check.checker import Checker
    from mtasts.check.result import CheckResult

    checker = Checker(resolver, options)
    out = Console(soft_wrap=fmt is not Format.text, highlight=False)
    err = Console(stderr=True)
    # lines that are not domains come as results already; check the others
    results: list[CheckResult | None] = [e if isinstance(e, CheckResult) else None for e in entries]
    positions = [i for i, e in enumerate(entries) if isinstance(e, str)]
    names = [e for e in entries if isinstance(e, str)]
    next_out = 0

    def flush() -> None:
        # stream in input order: print every result that is now next in line
        nonlocal next_out
        while next_out < len(results) and results[next_out] is not None:
            done = results[next_out]
            assert done is not None
            if fmt is Format.jsonl:
                print(output.to_jsonl_line(done), flush=True)
            elif fmt is Format.csv:
                print(output.to_csv_row(done), flush=True)
            elif fmt is Format.text:
                output.render_text(done, out, verbose=verbose)
            next_out += 1

    if fmt is Format.csv:
        print(output.csv_header(), flush=True)
    flush()
    with Progress(
        TextColumn("[bold]checking"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=err,
        transient=True,
        disable=len(names) < 2 or not err.is_terminal,
    ) as progress:
        task = progress.add_task("", total=len(names))
        if names:
            async for index, result in checker.check_parallel(names, concurrency, jobs):
                results[positions[index]] = result
                progress.update(task, advance=1, description=result.domain)
                flush()
    final = [r for r in results if r is not None]
    if fmt is Format.json:
        print(output.to_json(final))
    return final


@app.command(
    help=_(
        "Build the policy file from the live MX set, with the _mta-sts and _smtp._tls records "
        "and nginx/Caddy configuration that serve it correctly (text/plain, no redirect)."
    )
)
def generate(
    domain: Annotated[str, typer.Argument(help=_("The mail domain."))],
    mode: Annotated[Mode, typer.Option(help=_("Policy mode; start with testing."))] = Mode.TESTING,
    max_age: Annotated[
        int,
        typer.Option(
            help=_("Seconds senders cache the policy ({low} to {high}, as the API takes).").format(
                low=gen.MIN_MAX_AGE, high=MAX_AGE_LIMIT
            )
        ),
    ] = gen.DEFAULT_MAX_AGE,
    rua: Annotated[
        list[str] | None,
        typer.Option(help=_("TLS-RPT report address (mailto: or https:), repeatable.")),
    ] = None,
    write: Annotated[
        Path | None,
        typer.Option(help=_("Write the policy, records and server snippets into this directory.")),
    ] = None,
    nameserver: Annotated[
        list[str] | None, typer.Option("--nameserver", "-n", help=_("DNS server IP[:PORT]."))
    ] = None,
    timeout: Annotated[float, typer.Option(min=0.1, help=_("Seconds for the MX lookup."))] = 10.0,
    lang: LangOption = None,
) -> None:
    """Build the policy file from the live MX set, with the _mta-sts and _smtp._tls records
    and nginx/Caddy configuration that serve it correctly (text/plain, no redirect)."""
    try:
        name = normalize_domain(domain)
    except ValueError as exc:
        _usage_error(str(exc))
    if not gen.MIN_MAX_AGE <= max_age <= MAX_AGE_LIMIT:
        # the range the API takes; RFC 8461 §3.2 allows up to 31557600
        _usage_error(
            _(
                "--max-age {value}: give {low} (one day) to {high} (about a year, RFC 8461 §3.2)"
            ).format(value=max_age, low=gen.MIN_MAX_AGE, high=MAX_AGE_LIMIT)
        )
    for uri in rua or []:
        if not uri.startswith(("mailto:", "https:")):
            _usage_error(
                _("--rua {uri}: use mailto: or https: (RFC 8460 §3)").format(uri=repr(uri))
            )
    if write is not None:
        try:  # before any lookup: a place that cannot be written is bad input
            write.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            _usage_error(f"--write {write}: {exc.strerror or exc}")
        if not os.access(write, os.W_OK | os.X_OK):
            _usage_error(_("--write {directory}: not writable").format(directory=write))
    import asyncio

    from rich.console import Console

    from mtasts.net.dns import DnsStatus

    err = Console(stderr=True, soft_wrap=True)
    answer = asyncio.run(_resolver(nameserver, timeout).mx(name))
    if answer.status is DnsStatus.OK:
        hosts = [m.exchange for m in answer.records if m.exchange]
        if not hosts:
            # RFC 7505: the same answer as `mtasts check` (null MX: no policy needed)
            err.print(
                "[red]"
                + _(
                    "{domain} publishes a null MX: it receives no mail (RFC 7505), so no "
                    "MTA-STS policy is needed."
                ).format(domain=name)
            )
            raise typer.Exit(1)
    elif answer.status is DnsStatus.NODATA:
        hosts = [name]  # RFC 5321 §5.1: implicit MX
        err.print(
            "[yellow]"
            + _("{domain} has no MX record; using the implicit MX {domain}.").format(domain=name)
        )
    else:
        err.print(
            "[red]"
            + _("MX lookup of {domain} failed: {status} {error}").format(
                domain=name, status=answer.status, error=answer.error or ""
            )
        )
        raise typer.Exit(1)
    pub = gen.publication(name, hosts, utcnow(), mode=mode, max_age=max_age, rua=rua or ())
    policy_text = pub.policy.serialize()
    if len(policy_text.encode()) > MAX_POLICY_BYTES:  # RFC 8461 §3.3
        err.print(
            "[red]"
            + _(
                "The policy for {count} MX hosts is {size} bytes; senders read at most "
                "{limit}. Cover the MX hosts with wildcards (mx: *.example.com) and write the "
                "policy by hand."
            ).format(count=len(hosts), size=len(policy_text.encode()), limit=MAX_POLICY_BYTES)
        )
        raise typer.Exit(1)
    files = {
        ".well-known/mta-sts.txt": policy_text,
        "dns-records.txt": f"{pub.sts_record}\n{pub.tlsrpt_record}\n",
        "nginx-mta-sts.conf": pub.nginx + "\n",
        "Caddyfile": pub.caddy + "\n",
    }
    if write is not None:
        for rel, content in files.items():
            path = write / rel
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(content.encode("utf-8"))
            except OSError as exc:
                _usage_error(f"--write {write}: cannot write {path}: {exc.strerror or exc}")
        err.print(
            "[green]"
            + _("Wrote {files} under {directory}").format(files=", ".join(files), directory=write)
        )
    out = Console(highlight=False, soft_wrap=True)
    out.rule(_("DNS records"))
    out.print(pub.sts_record, markup=False)
    out.print(pub.tlsrpt_record, markup=False)
    out.rule(_("Policy file: {url} (text/plain, CRLF)").format(url=pub.policy_url))
    out.print(policy_text.replace("\r\n", "\n").rstrip("\n"), markup=False)
    out.rule("nginx")
    out.print(pub.nginx, markup=False)
    out.rule("Caddy")
    out.print(pub.caddy, markup=False)
    out.print(
        _(
            "Publish the policy first, then the _mta-sts record; change the id whenever the "
            "policy changes (RFC 8461 §3.1, §8.1)."
        ),
        style="italic",
    )


ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", help=_("TOML settings file (default: $MTASTS_CONFIG; see README)."), exists=True
    ),
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help=_(
            "Where the SQLite store lives (default: $MTASTS_DATA_DIR, the config file, "
            "else ~/.local/share/mtasts)."
        ),
    ),
]
DatabaseOpt = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help=_("SQLAlchemy URL, e.g. postgresql://user@127.0.0.1/mtasts (default: SQLite)."),
    ),
]


def _settings(config: Path | None, *, expect_store: bool = True, **overrides: object) -> Settings:
    # the commands that read settings open the store in data_dir: what they create there
    # (database, secrets, keys) is the operator's alone (0600 files, 0700 directories)
    from mtasts.config import ConfigError, load_settings, store_notice

    os.umask(0o077)
    try:
        settings = load_settings(config, None, **overrides)
    except ConfigError as exc:
        print(_("mtasts: error: configuration: {error}").format(error=exc), file=sys.stderr)
        raise typer.Exit(2) from exc
    notice = store_notice(settings, expected=expect_store)
    if notice:
        print(_("mtasts: warning: {notice}").format(notice=notice), file=sys.stderr)
    return settings


@app.command()
def serve(
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DatabaseOpt = None,
    listen: Annotated[
        str | None,
        typer.Option(
            help=_("HOST:PORT for HTTP: API, policy host, /tls/ask (default 127.0.0.1:8000).")
        ),
    ] = None,
    dns: Annotated[
        list[str] | None,
        typer.Option(
            "--dns",
            help=_(
                "HOST:PORT for the authoritative DNS server of the zone; repeatable or "
                "comma-separated, e.g. 192.0.2.53:53,[2001:db8::53]:53."
            ),
        ),
    ] = None,
    zone: Annotated[
        str | None,
        typer.Option(
            help=_("Service zone the customers' CNAMEs point into (e.g. sts.example.net).")
        ),
    ] = None,
    smtp: Annotated[
        str | None,
        typer.Option("--smtp", help=_("HOST:PORT for the TLS report receiver (SMTP, STARTTLS).")),
    ] = None,
    nameserver: Annotated[
        list[str] | None,
        typer.Option("--nameserver", "-n", help=_("DNS server for MX lookups and verification.")),
    ] = None,
) -> None:
    """Host MTA-STS policies for many domains: REST API, policy host, DNS and the `ask`
    endpoint for Caddy's on-demand certificates."""
    import logging

    from rich.console import Console
    from rich.markup import escape

    from mtasts.config import DEFAULT_ZONE
    from mtasts.web.serve import open_service
    from mtasts.web.serve import serve as run_server

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    from mtasts.net.guard import raise_nofile

    soft, hard = raise_nofile()  # every slow client holds a descriptor
    logging.getLogger("mtasts.serve").warning("open files limit %d (hard %d)", soft, hard)
    settings = _settings(
        config,
        expect_store=False,
        data_dir=data_dir,
        database_url=database_url,
        listen=listen,
        dns_listen=dns,
        smtp_listen=smtp,
        zone=zone,
        nameservers=nameserver,
    )
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        service = open_service(settings, cached_ok=True)
    except Exception as exc:
        url = settings.effective_database_url
        cannot = _("Cannot open the store {url}:").format(url=url)
        err.print(f"[red]{escape(cannot)}[/] {exc}")
        raise typer.Exit(1) from exc
    # the start-up lines speak the operator's language (--lang, MTASTS_LANG, the locale)
    host, port = settings.listen_host_port()
    base = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
    url = settings.effective_database_url
    served = len(service.snapshot.hosts)
    err.print(_("mtasts serve: {base}  (store {url})").format(base=base, url=url))
    err.print(
        "  "
        + ngettext(
            "zone {zone}; {n} domain served", "zone {zone}; {n} domains served", served
        ).format(zone=settings.zone_name, n=served)
    )
    if settings.zone_name == DEFAULT_ZONE:
        placeholder = _("zone is the placeholder {zone}: set --zone or MTASTS_ZONE")
        err.print("  [yellow]" + escape(placeholder.format(zone=DEFAULT_ZONE)))
    token = service.first_admin_token() if service.store_up else None
    err.print("  " + _("Dashboard: {base}/   API docs: {base}/api/docs").format(base=base))
    if token:
        import secrets

        from mtasts.web.dashboard.auth import set_password

        password = secrets.token_urlsafe(12)
        set_password(service, "admin@localhost", password, admin=True)
        err.print("  " + _("First start: created the admin user admin@localhost (shown once):"))
        err.print(
            "    " + _("dashboard password: {password}").format(password=f"[bold]{password}[/]")
        )
        err.print("    " + _("API token:          {token}").format(token=f"[bold]{token}[/]"))
        curl = f"curl -H 'Authorization: Bearer {token}' {base}/api/v1/domains"
        err.print("  " + _("Try: {command}").format(command=curl))
        err.print(
            "  "
            + _("New password any time: {command}").format(
                command="mtasts users set-password --email admin@localhost"
            )
        )
    # A server speaks each client's language (the API: Accept-Language), never the locale
    # of the shell that started it.
    i18n.set_language(i18n.DEFAULT)
    run_server(service)


tokens_app = typer.Typer(help=_("API tokens."), no_args_is_help=True)
app.add_typer(tokens_app, name="tokens")


@tokens_app.command("create")
def tokens_create(
    email: Annotated[str, typer.Option(help=_("The user's e-mail (created if new)."))],
    admin: Annotated[bool, typer.Option("--admin", help=_("Give the user admin rights."))] = False,
    label: Annotated[str, typer.Option(help=_("A note to recognise the token by."))] = "",
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DatabaseOpt = None,
    lang: LangOption = None,
) -> None:
    """Print a new API token (only the token) for `Authorization: Bearer`."""
    from mtasts.hosting.tenants import ServiceError
    from mtasts.web.serve import open_service

    settings = _settings(config, data_dir=data_dir, database_url=database_url)
    try:
        token = open_service(settings).create_token(email, admin=admin, label=label)
    except ServiceError as exc:
        print(f"mtasts: error: {exc.message}", file=sys.stderr)
        raise typer.Exit(2) from exc
    print(token)


app.add_typer(users_app, name="users")


@app.command(
    "policyd",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def policyd(ctx: typer.Context) -> None:
    """The sending side: an MTA-STS policy server for Postfix (socketmap), a drop-in for
    postfix-mta-sts-resolver. `mtasts policyd --help` tells more."""
    # Its own command line (argparse), imported only when used (bench/startup.py).
    from mtasts.sender.cli import main as policyd_main

    raise typer.Exit(policyd_main(ctx.args))


reports_app = typer.Typer(help=_("TLS reports (RFC 8460): import and read."), no_args_is_help=True)
app.add_typer(reports_app, name="reports")
reports_app.command("fetch-imap")(fetch_imap_command)


def _report_sessions(settings: Settings) -> sessionmaker[Session]:
    from mtasts.store.db import make_engine, migrate, session_factory

    engine = make_engine(settings.effective_database_url, settings.db_timeout)
    migrate(engine)
    return session_factory(engine)


@reports_app.command("import")
def reports_import(
    paths: Annotated[
        list[Path],
        typer.Argument(help=_(".json, .json.gz, .eml files, mbox files or (Maildir) folders.")),
    ],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DatabaseOpt = None,
    lang: LangOption = None,
) -> None:
    """Import TLS reports from files; importing the same report again changes nothing."""
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from mtasts.reports.files import discover, import_items
    from mtasts.reports.ingest import StoreUnavailable, ingestor_for

    err = Console(stderr=True, highlight=False)
    for path in paths:
        if not path.exists():
            _usage_error(_("{path}: no such file or directory").format(path=path))
    settings = _settings(config, data_dir=data_dir, database_url=database_url)
    try:
        items = discover(paths)
    except FileNotFoundError as exc:
        err.print(f"[red]{exc}")
        raise typer.Exit(2) from exc
    ingestor = ingestor_for(settings, _report_sessions(settings))  # report_* limits
    progress = Progress(
        TextColumn(escape(_("importing"))),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )
    try:
        with progress:
            task = progress.add_task("import", total=len(items))
            summary = import_items(ingestor, items, lambda _item: progress.advance(task))
    except StoreUnavailable as exc:
        stopped = _("{error}; nothing after the last stored report was imported.")
        err.print("[red]" + escape(stopped.format(error=exc)))
        raise typer.Exit(1) from exc
    for where, reason in summary.rejected:
        skipped = escape(_("skipped"))
        err.print(f"[yellow]{skipped}[/] {escape(f'{where}: {reason}')}", markup=True)
    err.print(
        _(
            "{stored} report(s) stored, {duplicate} already known, {skipped} skipped "
            "(of {items} item(s))"
        ).format(
            stored=summary.stored,
            duplicate=summary.duplicate,
            skipped=len(summary.rejected),
            items=len(items),
        )
    )
    raise typer.Exit(1 if summary.rejected else 0)


class SummaryFormat(StrEnum):
    text = "text"
    json = "json"


@reports_app.command(
    "summary",
    help=_("Sessions and failures per day, sending organisation, result type and MX host."),
)
def reports_summary(
    domain: Annotated[str, typer.Argument(help=_("The domain the reports are about."))],
    days: Annotated[int, typer.Option(min=1, max=366, help=_("How many days back."))] = 30,
    fmt: Annotated[SummaryFormat, typer.Option("--format", help=_("Output format."))] = (
        SummaryFormat.text
    ),
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DatabaseOpt = None,
    lang: LangOption = None,
) -> None:
    """Sessions and failures per day, sending organisation, result type and MX host."""
    import json

    from mtasts.reports.aggregate import summary

    try:
        name = normalize_domain(domain)
    except ValueError as exc:
        _usage_error(str(exc))
    settings = _settings(config, data_dir=data_dir, database_url=database_url)
    with _report_sessions(settings)() as db:
        data = summary(db, name, days, utcnow())
    if fmt is SummaryFormat.json:
        print(json.dumps(data, indent=2))
        return
    from rich.console import Console

    from mtasts.reports.render import print_summary

    print_summary(Console(highlight=False, soft_wrap=True), data)


def main() -> None:
    app()
