"""Check results as text (Rich), JSON, JSON Lines and CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from mtasts.check.findings import Severity, StsFetchResult
from mtasts.check.result import CheckResult
from mtasts.i18n import N_, _, ngettext
from mtasts.net.certs import format_duration

if TYPE_CHECKING:  # Rich is loaded only to draw text (JSON and CSV never need it)
    from rich.console import Console, Group
    from rich.table import Table
    from rich.text import Text

CSV_COLUMNS = (
    "domain",
    "sts_fetch_result",
    "record_id",
    "policy_mode",
    "policy_max_age",
    "policy_mx",
    "mx_hosts",
    "tlsrpt_rua",
    "errors",
    "warnings",
    "finding_codes",
)

_VERDICT_STYLE = {
    StsFetchResult.VALID: "bold green",
    StsFetchResult.FETCH_ERROR: "bold red",
    StsFetchResult.NONE: "bold yellow",
}
# The text view's label of each severity (the JSON keeps the value: error, warning, info).
_SEVERITY_LABEL = {
    Severity.ERROR: N_("ERROR"),
    Severity.WARNING: N_("WARNING"),
    Severity.INFO: N_("INFO"),
}
_SEVERITY_STYLE = {
    Severity.ERROR: ("✗", "red"),
    Severity.WARNING: ("!", "yellow"),
    Severity.INFO: ("i", "cyan"),
}


def to_json(results: Sequence[CheckResult]) -> str:
    return json.dumps([r.to_dict() for r in results], indent=2, ensure_ascii=False)


def to_jsonl_line(result: CheckResult) -> str:
    return json.dumps(result.to_dict(), ensure_ascii=False, separators=(",", ":"))


def csv_header() -> str:
    return _csv_row(list(CSV_COLUMNS))


def to_csv_row(r: CheckResult) -> str:
    policy = r.policy
    return _csv_row(
        [
            r.domain,
            r.sts_fetch_result.value if r.checked else "",
            r.record.id if r.record else "",
            policy.mode.value if policy else "",
            str(policy.max_age) if policy else "",
            " ".join(policy.mx) if policy else "",
            " ".join(h.hostname for h in r.mx_hosts),
            " ".join(r.tlsrpt.rua) if r.tlsrpt else "",
            str(r.count(Severity.ERROR)),
            str(r.count(Severity.WARNING)),
            " ".join(f.code for f in r.findings),
        ]
    )


def _csv_row(values: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(values)
    return buf.getvalue().rstrip("\n")


def render_text(result: CheckResult, console: Console, *, verbose: bool = False) -> None:
    """Verdict first, then each problem with its fix, then a compact picture of the setup."""
    from rich.text import Text

    if not result.checked:
        console.rule(style="red")
        for f in result.findings:
            console.print(
                Text(f"✗ {f.code}  {f.message}\n  " + _("Fix:") + f" {f.fix or ''}", style="red"),
                soft_wrap=True,
            )
        return
    verdict = result.sts_fetch_result
    errors, warnings = result.count(Severity.ERROR), result.count(Severity.WARNING)
    head = Text()
    head.append(f"{result.domain}  ", style="bold")
    head.append(f"STSFetchResult.{verdict.value}", style=_VERDICT_STYLE[verdict])
    if errors or warnings:
        summary = (
            ngettext("{n} error", "{n} errors", errors).format(n=errors)
            + ", "
            + ngettext("{n} warning", "{n} warnings", warnings).format(n=warnings)
        )
    else:
        summary = _("all checks passed")
    head.append(f"   {summary}\n", style="dim" if errors or warnings else "green")
    head.append(verdict.meaning, style="italic")
    parts: list[Table | Text | Group] = [head]
    for f in result.findings:
        if f.severity is Severity.INFO and not verbose:
            continue
        mark, style = _SEVERITY_STYLE[f.severity]
        block = Text()
        label = _(_SEVERITY_LABEL[f.severity])
        block.append(f"\n{mark} {label:<7}", style=f"bold {style}")
        block.append(f" {f.code}", style=style)
        block.append(f"  {f.subject}", style="dim")
        block.append(f"  [{f.rfc}]", style="dim")
        if f.tlsrpt_result_type:
            block.append(f"  TLS-RPT: {f.tlsrpt_result_type.value}", style="dim")
        block.append(f"\n  {f.message}")
        if f.fix:
            block.append("\n  " + _("Fix:") + " ", style="bold")
            block.append(f.fix.replace("\n", "\n       "))
        parts.append(block)
    parts.append(_details(result))
    # No panel and no wrapping: a fix must stay copy-pasteable, one record per line.
    border = _VERDICT_STYLE[verdict].split()[-1]
    console.rule(style=border)
    for part in parts:
        console.print(part, soft_wrap=True)


def _details(r: CheckResult) -> Table:
    from rich.markup import escape
    from rich.table import Table

    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    record = r.record.raw if r.record else "—"
    table.add_row("\n_mta-sts", "\n" + escape(record))
    if r.policy:
        p = r.policy
        table.add_row(
            _("policy"), f"mode={p.mode.value}  max_age={p.max_age}  mx={', '.join(p.mx) or '—'}"
        )
    elif r.fetch is not None:
        table.add_row(_("policy"), escape(f"{r.fetch.url}: {r.fetch.error_code or 'invalid'}"))
    for h in r.mx_hosts:
        if not h.probes:
            addrs = ", ".join(h.addresses.addresses) if h.addresses else ""
            table.add_row(f"MX {h.preference}", f"{h.hostname}  {addrs}")
            continue
        for probe in h.probes:
            cert = probe.certificate
            bits = [probe.address]
            if probe.tls_version:
                bits.append(probe.tls_version)
            if cert:
                left = cert.not_after - r.checked_at  # in hours under two days, never "0 d"
                bits.append(
                    _("cert until {date} ({left})").format(
                        date=f"{cert.not_after:%Y-%m-%d}", left=format_duration(left)
                    )
                )
            bits.append("ok" if probe.ok else (probe.error_code or _("certificate name mismatch")))
            cover = {True: _("in policy"), False: _("NOT in policy"), None: ""}[h.matches_policy]
            table.add_row(f"MX {h.preference}", f"{h.hostname}  {cover}  " + "  ".join(bits))
    table.add_row("_smtp._tls", escape(r.tlsrpt.raw) if r.tlsrpt else "—")
    return table
