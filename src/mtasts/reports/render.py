"""`mtasts reports summary` as Rich tables, in plain language."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from mtasts.i18n import _, ngettext

BAR = 30


def _pct(rate: float) -> str:
    return f"{rate * 100:.2f} %"


def print_summary(console: Console, data: dict[str, Any]) -> None:
    t = data["totals"]
    total = t["successful"] + t["failed"]
    console.rule(
        _("TLS reports for {domain}, last {days} days").format(
            domain=data["domain"], days=data["days"]
        )
    )
    if not data["reports"]:
        console.print(
            _(
                "No reports in this period. Senders send them daily once `_smtp._tls` names a "
                "rua you receive (RFC 8460 §3)."
            )
        )
        return
    verdict = (
        _("All TLS sessions to your MX hosts succeeded.")
        if not t["failed"]
        else _(
            "{failed} of {total} sessions failed ({rate}): senders could not set up TLS as "
            "your policy requires."
        ).format(failed=t["failed"], total=total, rate=_pct(t["failure_rate"]))
    )
    console.print(
        ngettext("{n} report", "{n} reports", data["reports"]).format(n=data["reports"])
        + ", "
        + _("{total} sessions: {successful} successful, {failed} failed.").format(
            total=total, successful=t["successful"], failed=t["failed"]
        )
        + " "
        + verdict
    )
    console.print(_("Last report received: {when}").format(when=data["last_report_received"]))

    days = Table(
        _("day"),
        _("successful"),
        _("failed"),
        _("failure rate"),
        "",
        title=_("Sessions per day"),
    )
    peak = max((d["successful"] + d["failed"] for d in data["by_day"]), default=0) or 1
    for d in data["by_day"]:
        n = d["successful"] + d["failed"]
        ok_w = round(BAR * d["successful"] / peak)
        bad_w = round(BAR * d["failed"] / peak) if d["failed"] else 0
        bar = (
            f"[green]{'█' * ok_w}[/][red]{'█' * bad_w}[/]"
            if n
            else "[dim]" + _("no report") + "[/]"
        )
        days.add_row(d["day"], str(d["successful"]), str(d["failed"]), _pct(d["failure_rate"]), bar)
    console.print(days)

    orgs = Table(
        _("sending organisation"),
        _("reports"),
        _("successful"),
        _("failed"),
        _("failure rate"),
        title=_("By sender"),
    )
    for o in data["by_organization"]:
        orgs.add_row(
            o["organization"],
            str(o["reports"]),
            str(o["successful"]),
            str(o["failed"]),
            _pct(o["failure_rate"]),
        )
    console.print(orgs)

    if data["by_policy_type"]:
        policies = Table(_("policy type"), _("successful"), _("failed"), title=_("By policy type"))
        for p in data["by_policy_type"]:
            policies.add_row(p["policy_type"], str(p["successful"]), str(p["failed"]))
        console.print(policies)

    if data["by_result_type"]:
        console.rule(_("What failed, and how to fix it"))
        for r in data["by_result_type"]:
            sessions = ngettext("{n} session", "{n} sessions", r["sessions"]).format(
                n=r["sessions"]
            )
            console.print(f"[bold red]{r['title']}[/] ({r['result_type']}, {sessions}, {r['rfc']})")
            console.print(f"  {r['meaning']}", markup=False)
            console.print("  " + _("Fix:") + " " + r["fix"], markup=False)
        mx = Table(
            _("receiving MX host"),
            _("failed sessions"),
            _("result types"),
            title=_("By MX host"),
        )
        for m in data["by_mx_host"]:
            kinds = ", ".join(f"{k} ({v})" for k, v in m["result_types"].items())
            mx.add_row(m["mx_host"], str(m["failed"]), kinds)
        console.print(mx)
