"""The CLI against the lab: output formats, input order, exit codes and `generate`."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from tests.lab import World
from typer.testing import CliRunner

from mtasts.cli import app
from mtasts.protocol.policy import Mode, parse_policy

runner = CliRunner()


@pytest.fixture(scope="module")
def domains(lab_world: World) -> list[str]:
    lab_world.add_domain("a-ok.cli.test", mx_count=2)
    lab_world.add_domain("b-broken.cli.test", https="expired")
    lab_world.add_domain("c-ok.cli.test")
    return ["c-ok.cli.test", "b-broken.cli.test", "a-ok.cli.test"]


@pytest.mark.lab
def test_json_keeps_input_order_and_exit_code(lab_world: World, domains: list[str]) -> None:
    result = runner.invoke(app, ["check", *domains, "--format", "json", *lab_world.cli_args()])
    assert result.exit_code == 1  # one domain has an error
    data = json.loads(result.stdout)
    assert [d["domain"] for d in data] == domains
    assert [d["sts_fetch_result"] for d in data] == ["VALID", "FETCH_ERROR", "VALID"]


@pytest.mark.lab
def test_jsonl_csv_and_text(lab_world: World, domains: list[str], tmp_path: Path) -> None:
    listing = tmp_path / "domains.txt"
    listing.write_text("# bulk\n" + "\n".join(domains[::2]) + "\n")
    args = ["check", "--file", str(listing), *lab_world.cli_args()]
    jsonl = runner.invoke(app, [*args, "--format", "jsonl"])
    assert jsonl.exit_code == 0
    assert [json.loads(line)["domain"] for line in jsonl.stdout.splitlines()] == domains[::2]
    rows = list(csv.DictReader(io.StringIO(runner.invoke(app, [*args, "--format", "csv"]).stdout)))
    assert [r["domain"] for r in rows] == domains[::2]
    assert rows[1]["policy_mx"] == "mx1.a-ok.cli.test mx2.a-ok.cli.test"
    assert rows[1]["errors"] == "0"
    text = runner.invoke(app, ["check", domains[1], *lab_world.cli_args()])
    assert text.exit_code == 1
    assert text.stdout.index("STSFetchResult.FETCH_ERROR") < text.stdout.index("Fix:")
    assert "policy-fetch-tls-certificate-expired" in text.stdout


@pytest.mark.lab
def test_generate_from_live_mx(lab_world: World, domains: list[str], tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "generate",
            "a-ok.cli.test",
            "--mode",
            "enforce",
            "--write",
            str(tmp_path),
            "--nameserver",
            lab_world.nameserver,
        ],
    )
    assert result.exit_code == 0, result.output
    policy = parse_policy((tmp_path / ".well-known" / "mta-sts.txt").read_bytes())
    assert policy.mode is Mode.ENFORCE
    assert policy.mx == ("mx1.a-ok.cli.test", "mx2.a-ok.cli.test")
    records = (tmp_path / "dns-records.txt").read_text()
    assert '_mta-sts.a-ok.cli.test. 3600 IN TXT "v=STSv1; id=' in records
    assert "_smtp._tls.a-ok.cli.test." in records
    assert "server_name mta-sts.a-ok.cli.test;" in (tmp_path / "nginx-mta-sts.conf").read_text()
    assert "mx: mx2.a-ok.cli.test" in result.stdout


@pytest.mark.lab
def test_worker_processes_give_the_same_results(lab_world: World, domains: list[str]) -> None:
    args = ["check", *domains, "--format", "json", "--concurrency", "2", *lab_world.cli_args()]
    one = json.loads(runner.invoke(app, args).stdout)
    two = runner.invoke(app, [*args, "--jobs", "2"])
    assert two.exit_code == 1
    parallel = json.loads(two.stdout)
    assert [d["domain"] for d in parallel] == domains
    assert [d["sts_fetch_result"] for d in parallel] == [d["sts_fetch_result"] for d in one]
    assert [[f["code"] for f in d["findings"]] for d in parallel] == [
        [f["code"] for f in d["findings"]] for d in one
    ]


@pytest.mark.lab
def test_generate_refuses_a_policy_over_64_kib(lab_world: World, tmp_path: Path) -> None:
    """RFC 8461 §3.3: senders read at most 64 KiB; a bigger file would be a FETCH_ERROR."""
    domain = f"{'a' * 60}.{'b' * 60}.{'c' * 60}.gen.cli.test"
    for i in range(400):  # 400 lines of ~200 characters
        lab_world.zone.add(domain, "MX", f"{i} mx{i}.{domain}.")
    result = runner.invoke(
        app,
        ["generate", domain, "--write", str(tmp_path), "--nameserver", lab_world.nameserver],
    )
    assert result.exit_code == 1
    assert "65536" in result.output and "wildcard" in result.output
    assert not (tmp_path / ".well-known").exists()


@pytest.mark.lab
def test_check_and_generate_agree_without_mx(lab_world: World, tmp_path: Path) -> None:
    """RFC 5321 §5.1: without MX records the domain itself is the implicit MX, so both
    suggest `mx: <domain>`; RFC 7505: a null MX receives no mail, so neither suggests a
    policy (and check does not call the domain broken for having none)."""
    implicit, null = "implicit.nomx.cli.test", "null.nomx.cli.test"
    lab_world.zone.add(implicit, "A", "127.0.0.1")
    lab_world.zone.add(null, "MX", "0 .")
    checked = runner.invoke(app, ["check", implicit, "--format", "json", *lab_world.cli_args()])
    [result] = json.loads(checked.stdout)
    fixes = "\n".join(f["fix"] or "" for f in result["findings"])
    assert f"mx: {implicit}" in fixes and f"mx: mx.{implicit}" not in fixes
    generated = runner.invoke(app, ["generate", implicit, "-n", lab_world.nameserver])
    assert generated.exit_code == 0, generated.output
    assert f"mx: {implicit}\n" in generated.stdout

    checked = runner.invoke(app, ["check", null, "--format", "json", *lab_world.cli_args()])
    assert checked.exit_code == 0, checked.stdout  # nothing to fix: no mail, no policy
    [result] = json.loads(checked.stdout)
    assert "mx-null" in [f["code"] for f in result["findings"]]
    assert not any("mx: " in (f["fix"] or "") for f in result["findings"])
    generated = runner.invoke(app, ["generate", null, "-n", lab_world.nameserver])
    assert generated.exit_code == 1 and "no MTA-STS policy is needed" in generated.output
