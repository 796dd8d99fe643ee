"""`mtasts reports summary` as Rich tables, in plain language."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

BAR = 30


def _pct(rate: float) -> str:
    return f"{rate * 100:.2f} %"


def print_summary(console: Console, data: dict[str, Any]) -> None:
    t = data["totals"]
    total = t["successful"] + t["failed"]
    console.rule(f"TLS reports for {data['domain']}, last {data['days']} days")
    if not data["reports"]:
        console.print(
            "No reports in this period. Senders send them daily once `_smtp._tls` names a "
            "rua you receive (RFC 8460 §3)."
        )
        return
    verdict = (
        "All TLS sessions to your MX hosts succeeded."
        if not t["failed"]
        else f"{t['failed']} of {total} sessions failed ({_pct(t['failure_rate'])}): "
        "senders could not set up TLS as your policy requires."
    )
    console.print(
        f"{data['reports']} report(s), {total} sessions: {t['successful']} successful, "
        f"{t['failed']} failed. {verdict}"
    )
    console.print(f"Last report received: {data['last_report_received']}")

    days = Table("day", "successful", "failed", "failure rate", "", title="Sessions per day")
    peak = max((d["successful"] + d["failed"] for d in data["by_day"]), default=0) or 1
    for d in data["by_day"]:
        n = d["successful"] + d["failed"]
        ok_w = round(BAR * d["successful"] / peak)
        bad_w = round(BAR * d["failed"] / peak) if d["failed"] else 0
        bar = f"[green]{'█' * ok_w}[/][red]{'█' * bad_w}[/]" if n else "[dim]no report[/]"
        days.add_row(d["day"], str(d["successful"]), str(d["failed"]), _pct(d["failure_rate"]), bar)
    console.print(days)

    orgs = Table(
        "sending organisation", "reports", "successful", "failed", "failure rate", title="By sender"
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
        policies = Table("policy type", "successful", "failed", title="By policy type")
        for p in data["by_policy_type"]:
            policies.add_row(p["policy_type"], str(p["successful"]), str(p["failed"]))
        console.print(policies)

    if data["by_result_type"]:
        console.rule("What failed, and how to fix it")
        for r in data["by_result_type"]:
            console.print(
                f"[bold red]{r['title']}[/] ({r['result_type']}, {r['sessions']} sessions, "
                f"{r['rfc']})"
            )
            console.print(f"  {r['meaning']}", markup=False)
            console.print(f"  Fix: {r['fix']}", markup=False)
        mx = Table("receiving MX host", "failed sessions", "result types", title="By MX host")
        for m in data["by_mx_host"]:
            kinds = ", ".join(f"{k} ({v})" for k, v in m["result_types"].items())
            mx.add_row(m["mx_host"], str(m["failed"]), kinds)
        console.print(mx)
